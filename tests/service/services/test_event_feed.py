"""The shared event reader: many streams of a job, one reader, every event once, woken by the store.

The hub's own periodic read is set to an hour, so a stream that receives an event before the test's
bound was woken by the store (SQLite's data_version seen by the watcher, or PostgreSQL's NOTIFY), not by
a poll. Events are written by a second ``Store`` (other connections, as a worker process would).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from service.services.jobs import feed as feed_module
from service.services.jobs.events import KEEPALIVE
from service.services.jobs.feed import EventHub
from service.store import Store, claim_job, events_since, finish_job, open_store, record_progress
from tests import pg
from tests.service.store.factories import make_dataset, make_job
from tests.service.test_jobs_e2e import parse_sse
from tests.timing import JOB_S

pytestmark = pytest.mark.anyio
HOUR = 3600.0


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    yield from pg.database_fixture()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("postgres_url")
    pg.truncate_all(url)
    return url


@pytest.fixture
def stores(database_url: str) -> Iterator[tuple[Store, Store]]:
    """The API's store (read by the hub) and a writer's store on other connections."""
    api, writer = open_store(database_url), open_store(database_url, migrate_schema=False)
    yield api, writer
    writer.close()
    api.close()


def progress(writer: Store, job_id: str, attempt: int, epoch: int) -> None:
    record_progress(
        writer,
        job_id,
        attempt,
        rows=[{"epoch": epoch, "train_loss": 1.0 / epoch}],
        progress={"epoch": epoch, "total_epochs": 5},
        metrics={"train_loss": 1.0 / epoch},
        best=None,
    )


async def collect(hub: EventHub, job_id: str, after: int = 0) -> list[tuple[int, str, dict[str, Any]]]:
    chunks = [chunk async for chunk in hub.follow(job_id, after)]
    assert KEEPALIVE not in chunks
    return parse_sse(b"".join(chunks).decode())


async def test_many_streams_share_one_reader_and_each_gets_every_event_once(
    stores: tuple[Store, Store],
) -> None:
    api, writer = stores
    job = make_job(api, make_dataset(api).id)
    hub = EventHub(api, threading.Event(), safety_s=HOUR)
    n_streams = 40
    received: list[list[tuple[int, str, dict[str, Any]]]] = [[] for _ in range(n_streams)]

    async def follower(i: int) -> None:
        received[i] = await collect(hub, job.id)

    try:
        with anyio.fail_after(JOB_S):
            async with anyio.create_task_group() as tg:
                for i in range(n_streams):
                    tg.start_soon(follower, i)
                # Every stream has replayed the queued event and is following the job's feed.
                while sum(f.followers for f in hub._feeds.values()) < n_streams:
                    await anyio.sleep(0.01)
                attempt = await anyio.to_thread.run_sync(claim_job, writer, job.id)
                assert attempt == 1
                for epoch in range(1, 6):
                    await anyio.to_thread.run_sync(progress, writer, job.id, attempt, epoch)
                    await anyio.sleep(0.02)
                await anyio.to_thread.run_sync(lambda: finish_job(writer, job.id, 1, status="succeeded"))
    finally:
        hub.close()
    stored = [(e.id, e.kind, e.data) for e in events_since(api, job.id, 0, 100)]
    assert [kind for _, kind, _ in stored] == ["status", "status", *["progress"] * 5, "status", "end"]
    assert all(events == stored for events in received)
    # One reader read the store for all of them: far fewer reads than streams times writes.
    assert 1 <= hub.reads <= 4 * 7, hub.reads
    assert hub._feeds == {}  # the last stream out closed the feed


async def test_a_stream_that_falls_behind_the_feed_reads_the_store_and_misses_nothing(
    stores: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, writer = stores
    monkeypatch.setattr(feed_module, "FEED_KEEP", 2)
    job = make_job(api, make_dataset(api).id)
    hub = EventHub(api, threading.Event(), safety_s=HOUR)
    fast_chunks: list[bytes] = []
    try:
        with anyio.fail_after(JOB_S):
            fast, slow = hub.follow(job.id, 0), hub.follow(job.id, 0)
            slow_chunks = [await slow.__anext__()]

            async def run_fast() -> None:
                fast_chunks.extend([chunk async for chunk in fast])

            async with anyio.create_task_group() as tg:
                tg.start_soon(run_fast)
                while job.id not in hub._feeds:  # the fast stream has replayed and opened the feed
                    await anyio.sleep(0.01)
                attempt = await anyio.to_thread.run_sync(claim_job, writer, job.id)
                assert attempt is not None
                slow_chunks.append(await slow.__anext__())  # 'running', read from the job's feed
                assert job.id in hub._feeds
                for epoch in range(1, 6):
                    await anyio.to_thread.run_sync(progress, writer, job.id, attempt, epoch)
                await anyio.to_thread.run_sync(lambda: finish_job(writer, job.id, 1, status="succeeded"))
            # The feed kept only its last two events, long past where the slow stream is.
            assert hub._feeds[job.id].base > parse_sse(slow_chunks[-1].decode())[-1][0]
            slow_chunks += [chunk async for chunk in slow]
    finally:
        hub.close()
    expected = [(e.id, e.kind, e.data) for e in events_since(api, job.id, 0, 100)]
    assert parse_sse(b"".join(fast_chunks).decode()) == expected
    assert parse_sse(b"".join(slow_chunks).decode()) == expected
    assert hub._feeds == {}


async def test_streams_resume_after_an_id_and_close_at_once_after_the_end(
    stores: tuple[Store, Store],
) -> None:
    api, writer = stores
    job = make_job(api, make_dataset(api).id)
    attempt = claim_job(writer, job.id)
    assert attempt is not None
    progress(writer, job.id, attempt, 1)
    finish_job(writer, job.id, attempt, status="succeeded")
    full = [(e.id, e.kind, e.data) for e in events_since(api, job.id, 0, 100)]
    hub = EventHub(api, threading.Event(), safety_s=HOUR)
    try:
        with anyio.fail_after(JOB_S):
            for cut in range(len(full)):
                assert await collect(hub, job.id, full[cut][0]) == full[cut + 1 :]
            assert await collect(hub, job.id) == full
    finally:
        hub.close()


async def test_streams_send_keepalives_and_end_at_shutdown(stores: tuple[Store, Store]) -> None:
    api, _ = stores
    job = make_job(api, make_dataset(api).id)  # stays queued: its streams never end by themselves
    stopping = threading.Event()
    hub = EventHub(api, stopping, safety_s=HOUR, keepalive_s=0.1)
    try:
        with anyio.fail_after(JOB_S):
            stream = hub.follow(job.id, 0)
            assert b"event: status" in await stream.__anext__()
            assert await stream.__anext__() == KEEPALIVE
            stopping.set()
            hub.shutting_down()
            rest = [chunk async for chunk in stream]
    finally:
        hub.close()
    assert set(rest) <= {KEEPALIVE}
    assert hub._feeds == {}


async def test_a_burst_of_streams_reads_the_store_in_a_few_threads_while_the_default_pool_is_full(
    stores: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Streams opening together never take more than STREAM_READ_THREADS threads for their store reads,
    # and never wait for the default thread pool, which other requests may hold whole.
    api, writer = stores
    job = make_job(api, make_dataset(api).id)
    attempt = claim_job(writer, job.id)
    assert attempt is not None
    progress(writer, job.id, attempt, 1)
    finish_job(writer, job.id, attempt, status="succeeded")
    full = [(e.id, e.kind, e.data) for e in events_since(api, job.id, 0, 100)]
    running = most = 0
    lock = threading.Lock()

    def counted_events_since(*args: Any) -> Any:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            time.sleep(0.02)  # long enough for the reads of a burst to overlap
            return events_since(*args)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(feed_module, "events_since", counted_events_since)
    release = threading.Event()
    hub = EventHub(api, threading.Event(), safety_s=HOUR)
    try:
        async with anyio.create_task_group() as pool_holders:
            default = anyio.to_thread.current_default_thread_limiter()
            for _ in range(int(default.total_tokens)):
                pool_holders.start_soon(anyio.to_thread.run_sync, release.wait)
            with anyio.fail_after(JOB_S):
                while default.available_tokens:
                    await anyio.sleep(0.01)
                results: list[list[tuple[int, str, dict[str, Any]]]] = []

                async def one() -> None:
                    results.append(await collect(hub, job.id))

                async with anyio.create_task_group() as streams:
                    for _ in range(5 * feed_module.STREAM_READ_THREADS):
                        streams.start_soon(one)
            release.set()
    finally:
        release.set()
        hub.close()
    assert results == [full] * (5 * feed_module.STREAM_READ_THREADS)
    assert 1 < most <= feed_module.STREAM_READ_THREADS
