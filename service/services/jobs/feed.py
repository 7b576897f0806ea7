"""One reader of job events per process, shared by every stream that follows a job.

A stream that follows a job first replays its events from the store by itself (``Last-Event-ID``), then
joins the job's *feed*: the events the process's one reader has read for that job, kept in memory. The
reader reads the store when a watcher (``service.store.EventWatcher``: PostgreSQL ``LISTEN/NOTIFY``, or
SQLite's ``data_version`` looked at once per process) says that something was written, and every
``SAFETY_READ_S`` regardless, with one query for every followed job at once. A thousand followers of ten
jobs cost ten feeds and one query per store write, not a thousand polls.

A stream that falls behind its feed's memory (more than ``FEED_KEEP`` events) reads the store by itself
until it has caught up. Per job, events are committed in the order of their ids (see
``service.store.jobs``), so reading after the last id seen never skips one.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import TypeVar, TypeVarTuple, Unpack

import anyio

from service.services.jobs.events import EVENT_BATCH, KEEPALIVE, KEEPALIVE_S, format_event
from service.store import EventRecord, EventWatcher, Store, events_after, events_since, get_job, job_statuses
from service.vocabulary import TERMINAL_STATUSES

log = logging.getLogger("descent.events")

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

# The reader reads the store at least this often (a missed notification costs at most this long), and
# events read in one go are at most READ_BATCH. A feed keeps its last FEED_KEEP events in memory.
SAFETY_READ_S = 1.0
READ_BATCH = 1000
FEED_KEEP = 512
# Store reads of the streams themselves (the check before a stream starts, replays and catch-ups) run in
# at most this many threads at once, however many streams open together: a burst of hundreds would
# otherwise take every thread of the default pool (40), each contending with the event loop for the GIL
# and beyond the store's pool of connections (each one past it opened and closed for a single read).
STREAM_READ_THREADS = 4


class _Feed:
    """The events of one job read by the shared reader: every event with an id above ``base``, each
    formatted once as SSE bytes for all the streams that send it."""

    def __init__(self, after: int) -> None:
        self.base = self.last = after
        self.ids: list[int] = []
        self.chunks: list[bytes] = []
        self.end_id: int | None = None  # the id of the job's 'end' event, once read
        self.ended = False  # no more events will come (its 'end' was read, or the job is gone)
        self.followers = 0
        self.woken = self.updated = time.monotonic()
        self.changed = asyncio.Event()

    def since(self, after: int) -> tuple[bytes, int, bool]:
        """SSE bytes of the events after ``after`` (up to the end), the last id, and whether it is the end."""
        i = bisect.bisect_right(self.ids, after)
        if i == len(self.ids):
            return b"", after, False
        last = len(self.ids) - 1
        if self.end_id is not None:
            last = min(last, bisect.bisect_left(self.ids, self.end_id))
        return b"".join(self.chunks[i : last + 1]), self.ids[last], self.ids[last] == self.end_id

    def add(self, events: list[EventRecord]) -> None:
        for event in events:
            self.ids.append(event.id)
            self.chunks.append(format_event(event))
            if event.kind == "end" and self.end_id is None:
                self.end_id, self.ended = event.id, True
        self.last = events[-1].id
        if len(self.ids) > FEED_KEEP:
            drop = len(self.ids) - FEED_KEEP
            self.base = self.ids[drop - 1]
            del self.ids[:drop], self.chunks[:drop]
        self.updated = time.monotonic()
        self.wake()

    def wake(self) -> None:
        self.woken = time.monotonic()
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()


def _send(events: list[EventRecord]) -> tuple[bytes, int, bool]:
    """SSE bytes of ``events`` up to the first ``end``, the last id sent, and whether ``end`` was sent."""
    end = next((i for i, e in enumerate(events) if e.kind == "end"), None)
    events = events if end is None else events[: end + 1]
    return b"".join(format_event(event) for event in events), events[-1].id, end is not None


class EventHub:
    """The process's shared reader of job events and the feeds of the jobs being followed.

    Parameters
    ----------
    store : Store
    stopping : threading.Event
        Set at shutdown: every stream ends at once (clients resume elsewhere with ``Last-Event-ID``).
    watch : bool
        Start a store watcher for wake-ups; without one the reader reads every ``safety_s``.
    safety_s : float
        The reader reads at least this often.
    keepalive_s : float
        No stream stays silent longer than this: a ``: keep-alive`` comment fills the gaps.
    """

    def __init__(
        self,
        store: Store,
        stopping: threading.Event,
        *,
        watch: bool = True,
        safety_s: float = SAFETY_READ_S,
        keepalive_s: float = KEEPALIVE_S,
    ) -> None:
        self.store, self.stopping, self.watch = store, stopping, watch
        self.safety_s, self.keepalive_s = safety_s, keepalive_s
        self._feeds: dict[str, _Feed] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._reader: asyncio.Task[None] | None = None
        self._stream_reads: anyio.CapacityLimiter | None = None
        self._watcher: EventWatcher | None = None
        self._lock = threading.Lock()
        self.reads = 0  # store reads by the reader, for tests and benchmarks

    # --- the streams -------------------------------------------------------------------------------

    async def read(self, work: Callable[[Unpack[Ts]], T], *args: *Ts) -> T:
        """``work(*args)`` in a worker thread, among at most ``STREAM_READ_THREADS`` stream reads at once."""
        self._bind()
        return await anyio.to_thread.run_sync(work, *args, limiter=self._stream_reads)

    async def follow(self, job_id: str, after: int = 0, status: str | None = None) -> AsyncIterator[bytes]:
        """The job's events after id ``after`` as SSE bytes, until its ``end`` event (as ``event_stream``).

        ``status`` is the job's status when the caller has just read it (before any of its events);
        otherwise it is read here.
        """
        self._bind()
        if status is None:
            # The status before the events: a job seen terminal here has every event committed already.
            status = (await self.read(get_job, self.store, job_id)).status
        terminal, last_sent = status in TERMINAL_STATUSES, time.monotonic()
        feed: _Feed | None = None
        try:
            while not self.stopping.is_set():
                current = self._feeds.get(job_id)
                if feed is not current or (current is not None and after < current.base):
                    self._leave(job_id, feed)  # the feed went, or this stream fell behind it
                    feed = None
                if current is not None and after >= current.base and feed is None:
                    feed = current
                    feed.followers += 1
                if feed is None:
                    # Replay (or catch up) from the store by itself, then join the job's feed.
                    events = await self.read(events_since, self.store, job_id, after, EVENT_BATCH)
                    if events:
                        chunk, after, ended = _send(events)
                        yield chunk
                        last_sent = time.monotonic()
                        if ended:
                            return
                    elif terminal:
                        return  # resumed after the end: nothing is left to send
                    elif current is None:
                        self._open_feed(job_id, after)
                    else:
                        await anyio.sleep(self.safety_s)  # ahead of the store's own reads: unlikely
                    continue
                changed = feed.changed
                chunk, after, ended = feed.since(after)
                if chunk:
                    yield chunk
                    last_sent = time.monotonic()
                    if ended:
                        return
                    continue
                if feed.ended:
                    return  # the job ended without an 'end' this stream could read (it was deleted)
                # No timer per stream: the reader wakes a quiet feed every keepalive_s / 2.
                if time.monotonic() - last_sent >= self.keepalive_s / 2:
                    yield KEEPALIVE
                    last_sent = time.monotonic()
                await changed.wait()
        finally:
            self._leave(job_id, feed)

    def _leave(self, job_id: str, feed: _Feed | None) -> None:
        """A stream stops following ``feed``; the last one out closes it."""
        if feed is not None:
            feed.followers -= 1
            if feed.followers <= 0 and self._feeds.get(job_id) is feed:
                del self._feeds[job_id]

    def _open_feed(self, job_id: str, after: int) -> None:
        """Start reading the job for its followers, from ``after`` on (every earlier event was read)."""
        if job_id not in self._feeds:
            self._feeds[job_id] = _Feed(after)
            self._ring()

    # --- the reader --------------------------------------------------------------------------------

    def _bind(self) -> None:
        """Start the reader (and the watcher) in the running event loop, once per loop."""
        loop = asyncio.get_running_loop()
        if self._loop is loop and self._reader is not None and not self._reader.done():
            return
        self._loop, self._wake, self._feeds = loop, asyncio.Event(), {}
        self._stream_reads = anyio.CapacityLimiter(STREAM_READ_THREADS)
        self._reader = loop.create_task(self._read_forever(), name="descent-event-reader")
        with self._lock:
            if self.watch and self._watcher is None:
                self._watcher = EventWatcher(self.store, self._on_change).start()

    def _on_change(self, _jobs: set[str] | None) -> None:
        """From the watcher's thread: the store may hold new events."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                loop.call_soon_threadsafe(self._ring)

    def _ring(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _read_forever(self) -> None:
        assert self._wake is not None
        last_status_check = time.monotonic()
        tick = min(self.safety_s, self.keepalive_s / 2)
        while True:
            with anyio.move_on_after(tick):
                await self._wake.wait()
            self._wake.clear()
            if self.stopping.is_set():
                for feed in list(self._feeds.values()):
                    feed.wake()
                continue
            try:
                await self._read_once()
                if time.monotonic() - last_status_check >= self.keepalive_s:
                    last_status_check = time.monotonic()
                    await self._end_vanished_feeds()
            except Exception as exc:  # the store is down: streams wait, the reader tries again
                log.warning("reading job events failed: %s", exc)
            # Quiet feeds are woken so that their streams send keep-alive comments.
            now = time.monotonic()
            for feed in list(self._feeds.values()):
                if now - feed.woken >= self.keepalive_s / 2:
                    feed.wake()

    async def _read_once(self) -> None:
        while True:
            feeds = {job_id: feed for job_id, feed in self._feeds.items() if not feed.ended}
            if not feeds:
                return
            cursors = {job_id: feed.last for job_id, feed in feeds.items()}
            events = await anyio.to_thread.run_sync(events_after, self.store, cursors, READ_BATCH)
            self.reads += 1
            by_job: dict[str, list[EventRecord]] = {}
            for event in events:
                by_job.setdefault(event.job_id, []).append(event)
            for job_id, new in by_job.items():
                feed = self._feeds.get(job_id)
                if feed is not None and feed is feeds[job_id]:
                    new = [e for e in new if e.id > feed.last]
                    if new:
                        feed.add(new)
            if len(events) < READ_BATCH:
                return

    async def _end_vanished_feeds(self) -> None:
        """A feed whose job ended or went away without an ``end`` event it could read ends its streams.

        Only a job deleted between its end and the reader's next read can do that; checked rarely.
        """
        quiet = [
            j
            for j, f in self._feeds.items()
            if not f.ended and time.monotonic() - f.updated > self.keepalive_s
        ]
        if not quiet:
            return
        statuses = await anyio.to_thread.run_sync(job_statuses, self.store, quiet)
        await self._read_once()  # after the statuses: an end committed before them is read now
        for job_id in quiet:
            feed = self._feeds.get(job_id)
            if (
                feed is not None
                and not feed.ended
                and statuses.get(job_id, "gone") in (*TERMINAL_STATUSES, "gone")
            ):
                feed.ended = True
                feed.wake()

    def close(self) -> None:
        """Stop the watcher and the reader; streams still open end at their next wake-up."""
        with self._lock:
            if self._watcher is not None:
                self._watcher.stop()
                self._watcher = None
        loop, reader = self._loop, self._reader
        if loop is not None and reader is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(reader.cancel)

    def shutting_down(self) -> None:
        """From any thread, after ``stopping`` was set: wake every stream so that it ends now."""
        self._on_change(None)
