"""The heavy lane: large requests are parsed, computed and rendered off the event loop, a bounded few at once.

A request whose body is at least ``OFFLOAD_BYTES`` long (and every gradients request, which can ask
for a gradient check) takes one of ``DESCENT_COMPUTE_THREADS`` slots for its whole work. When every
slot is taken it waits, at most ``DESCENT_HEAVY_LANE_WAIT_S`` seconds and behind at most
``DESCENT_HEAVY_LANE_QUEUE`` others; beyond either bound it gets 503 with ``Retry-After``. The pile
of waiting requests (each holding its body in memory) is therefore bounded, and the event loop keeps
answering ``/healthz`` and small requests while the heavy ones run.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import TypeVar, TypeVarTuple, Unpack

import anyio
import anyio.to_process
import anyio.to_thread

from service.errors import ServiceUnavailable

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class LaneFull(ServiceUnavailable):
    """503: every heavy-lane slot is busy and the waiting line is full, or the wait ran out."""

    title, slug, retry_after_s = "Heavy Lane Full", "heavy-lane-full", 2


class WorkerLost(ServiceUnavailable):
    """503: the heavy-lane worker process computing the request died before it answered."""

    title, slug, retry_after_s = "Worker Lost", "worker-lost", 1


class HeavyLane:
    """Bounded concurrency for CPU-heavy request work, with a bounded, time-limited wait.

    Parameters
    ----------
    slots : int
        Requests computed at once (threads).
    queue : int
        Requests that may wait for a slot; one more is refused at once.
    wait_s : float
        How long a request waits for a slot before it is refused.
    """

    def __init__(self, slots: int, queue: int, wait_s: float, *, processes: bool = False) -> None:
        self.limiter = anyio.CapacityLimiter(slots)
        self.processes = processes
        self.queue = queue
        self.wait_s = wait_s
        self.waiting = 0
        self._spool_dir: str | None = None

    def spool_dir(self) -> str:
        """A private folder for the files worker processes write large answers to (made on first use)."""
        if self._spool_dir is None:
            self._spool_dir = tempfile.mkdtemp(prefix="descent-answers-")
        return self._spool_dir

    def close(self) -> None:
        """Remove the answer folder and any file still in it (the lane has no requests left)."""
        if self._spool_dir is not None:
            shutil.rmtree(self._spool_dir, ignore_errors=True)
            self._spool_dir = None

    @property
    def busy(self) -> int:
        """Slots taken now."""
        return int(self.limiter.borrowed_tokens)

    def _refuse(self, why: str) -> LaneFull:
        retry = max(1, math.ceil(self.wait_s))
        return LaneFull(
            f"{why}; retry after {retry} s (DESCENT_COMPUTE_THREADS requests are computed at once, "
            f"DESCENT_HEAVY_LANE_QUEUE wait)",
            retry_after=retry,
        )

    async def run(self, work: Callable[[], T]) -> T:
        """Run ``work`` in a worker thread once a slot is free; 503 if none frees up in time."""
        await self._acquire()
        try:
            return await anyio.to_thread.run_sync(work)
        finally:
            self.limiter.release()

    async def run_in_process(self, work: Callable[[Unpack[Ts]], T], *args: *Ts) -> T:
        """Run ``work(*args)`` in a worker process (arguments and result pickled) once a slot is free."""
        await self._acquire()
        try:
            return await anyio.to_process.run_sync(_at_low_priority, work, *args, cancellable=False)
        except anyio.BrokenWorkerProcess:
            # Killed from outside (the OOM killer, an operator): this request is lost, the lane is not;
            # anyio starts a fresh worker process for the next one.
            raise WorkerLost(
                "the worker process computing this request was lost; retry after 1 s", retry_after=1
            ) from None
        finally:
            self.limiter.release()

    async def _acquire(self) -> None:
        if self.limiter.available_tokens < 1 and self.waiting >= self.queue:
            raise self._refuse(
                f"all {self.busy} heavy-request slots are busy and {self.waiting} requests wait"
            )
        self.waiting += 1
        try:
            with anyio.move_on_after(self.wait_s) as scope:
                await self.limiter.acquire()
        finally:
            self.waiting -= 1
        if scope.cancelled_caught:
            raise self._refuse(f"no heavy-request slot came free within {self.wait_s:g} s")


# How much lower than the API process the heavy-lane worker processes run (os.nice): when the cores
# are busy, the event loop (health checks, small requests, event streams) is scheduled first.
WORKER_NICENESS = 10
_lowered = False


def _at_low_priority(work: Callable[[Unpack[Ts]], T], *args: *Ts) -> T:
    """In a heavy-lane worker process: lower its priority once, then run ``work(*args)``."""
    global _lowered
    if not _lowered:
        os.nice(WORKER_NICENESS)
        _lowered = True
    return work(*args)
