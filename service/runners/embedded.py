"""The embedded runner: a supervised pool of worker processes beside the API, on one machine.

Each worker process takes the oldest queued job from the store and calls ``run_job``; after a job it
looks again at once, and while idle it looks when the API rings the doorbell (a job was submitted) or
every second, so nothing depends on a message arriving. A supervisor thread in the API process
replaces a worker that dies (kill -9, out of memory) and hands its job back to the queue, to resume
from its checkpoint, or fails it ``worker_lost`` once its retries are used. On stop, workers
checkpoint their jobs and leave them queued for the next start.

The API process and the workers share only lock-free memory (the doorbell counter, the shutdown
flag and each worker's slot). A ``multiprocessing`` queue or event would not do: their operations
take a semaphore shared by every process, and a worker killed while holding it (an idle worker
waiting on a queue holds one all the time) leaves it taken for good, so that the other workers, and
the API's own shutdown, block on it forever.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from dataclasses import dataclass
from multiprocessing.context import SpawnProcess
from typing import Any

from service.errors import DomainError
from service.runners.run_job import RunSettings, run_job
from service.store import Store, get_job, open_store, queued_job_ids, reap_stale
from service.store.runs import release_lost_run

log = logging.getLogger("descent.runner")
_SLOT_BYTES = 64
# An idle worker checks the doorbell this often, and the store at least every STORE_LOOK_S.
IDLE_WAIT_S = 0.05
STORE_LOOK_S = 1.0
# Queued jobs a worker tries to claim per look (several workers race for the oldest ones).
_CLAIM_BATCH = 16


@dataclass
class _Worker:
    process: SpawnProcess
    slot: Any  # shared bytes: the id of the job the worker is running, empty when idle


class EmbeddedRunner:
    """A pool of ``workers`` processes running jobs from the store at ``database_url``.

    Parameters
    ----------
    store : Store
        The API process's store (used by the supervisor).
    database_url : str
        Each worker opens its own connection to it.
    workers : int
    run_settings : RunSettings
    stale_after_s : float
        A running job whose heartbeat is older than this is presumed lost (a hung worker).
    grace_s : float
        How long ``stop`` waits for workers to checkpoint before ending them.
    """

    def __init__(
        self,
        store: Store,
        database_url: str,
        workers: int,
        run_settings: RunSettings | None = None,
        *,
        stale_after_s: float = 60.0,
        grace_s: float = 10.0,
    ) -> None:
        self.store, self.database_url, self.n_workers = store, database_url, workers
        self.run_settings = run_settings or RunSettings()
        self.stale_after_s, self.grace_s = stale_after_s, grace_s
        self._ctx = mp.get_context("spawn")
        # Written only by this process (under _bell_lock), read by the workers: no cross-process lock.
        self._doorbell: Any = self._ctx.Value("Q", 0, lock=False)
        self._shutdown: Any = self._ctx.Value("b", 0, lock=False)
        self._bell_lock = threading.Lock()
        self._workers: list[_Worker] = []
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        # Every run still marked running belongs to a process of an earlier start of this
        # service, all gone now: give those jobs back (or fail them once out of retries).
        for job_id in reap_stale(self.store, 0.0):
            log.info("job %s was running when the service stopped; queued again", job_id)
        for _ in range(self.n_workers):
            self._workers.append(self._spawn())
        self._supervisor = threading.Thread(target=self._supervise, name="descent-supervisor", daemon=True)
        self._supervisor.start()

    def submit(self, job_id: str) -> None:
        """Wake the idle workers: the job is in the store, the oldest queued job runs first."""
        with self._bell_lock:
            self._doorbell.value += 1

    def ready(self) -> bool:
        return not self._stopping.is_set() and any(w.process.is_alive() for w in self._workers)

    def describe_unready(self) -> str:
        return "the runner is stopping" if self._stopping.is_set() else "no worker process is alive"

    def worker_pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if w.process.pid is not None]

    def stop(self) -> None:
        self._stopping.set()
        self._shutdown.value = 1
        deadline = time.monotonic() + self.grace_s
        for worker in self._workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
        for worker in self._workers:
            if worker.process.is_alive():
                log.warning(
                    "worker %s did not stop within %.0f s; ending it", worker.process.pid, self.grace_s
                )
                worker.process.kill()
                worker.process.join(5)
                self._release(worker, "the worker was ended at shutdown")
        if self._supervisor is not None:
            self._supervisor.join(5)

    def _spawn(self) -> _Worker:
        slot = self._ctx.Array("c", _SLOT_BYTES, lock=False)
        process = self._ctx.Process(
            target=worker_main,
            args=(self.database_url, self._doorbell, self._shutdown, slot, self.run_settings, os.getpid()),
            name="descent-worker",
            daemon=True,
        )
        process.start()
        return _Worker(process, slot)

    def _release(self, worker: _Worker, detail: str) -> None:
        """Hand back the job a dead worker was running."""
        job_id = bytes(worker.slot.value).decode()
        if not job_id:
            return
        try:
            job = get_job(self.store, job_id)
            status = release_lost_run(self.store, job_id, job.attempt, detail)
        except Exception:
            log.exception("could not release job %s of a lost worker", job_id)
            return
        log.warning("job %s lost its worker (%s): now %s", job_id, detail, status)
        if status == "queued" and not self._stopping.is_set():
            self.submit(job_id)

    def _supervise(self) -> None:
        last_reap = time.monotonic()
        while not self._stopping.wait(0.2):
            with self._lock:
                for i, worker in enumerate(self._workers):
                    if worker.process.is_alive() or self._stopping.is_set():
                        continue
                    code = worker.process.exitcode
                    log.warning("worker %s exited with code %s; starting another", worker.process.pid, code)
                    self._release(worker, f"the worker process exited with code {code}")
                    self._workers[i] = self._spawn()
            if time.monotonic() - last_reap > max(1.0, self.stale_after_s / 4):
                last_reap = time.monotonic()
                try:
                    for job_id in reap_stale(self.store, self.stale_after_s):
                        self.submit(job_id)
                except Exception:
                    log.exception("reaping stale jobs failed")


class _StopSignal:
    """Set when the runner shuts down or the API process that started this worker is gone."""

    def __init__(self, shutdown: Any, parent_pid: int) -> None:
        self.shutdown, self.parent_pid = shutdown, parent_pid

    def is_set(self) -> bool:
        return bool(self.shutdown.value) or os.getppid() != self.parent_pid


def _run_next(store: Store, slot: Any, run_settings: RunSettings, stop: _StopSignal) -> bool:
    """Claim and run the oldest queued job this worker can get; False when there is none."""
    while not stop.is_set():
        waiting = queued_job_ids(store, limit=_CLAIM_BATCH)
        for job_id in waiting:
            if stop.is_set():
                return False
            slot.value = job_id.encode()[:_SLOT_BYTES]
            try:
                status = run_job(store, job_id, settings=run_settings, shutdown=stop)
            except MemoryError:
                log.error("job %s ran out of memory; the worker exits and the job is retried", job_id)
                os._exit(70)
            finally:
                slot.value = b""
            if status is not None:
                return True
            # Another worker claimed it first: try the next one.
        if len(waiting) < _CLAIM_BATCH:
            return False
    return False


def worker_main(
    database_url: str, doorbell: Any, shutdown: Any, slot: Any, run_settings: RunSettings, parent_pid: int
) -> None:
    """A worker process: run queued jobs one at a time until told to stop."""
    # The API process handles the signals and tells workers to stop through `shutdown`; an
    # interrupt typed in the terminal must not kill a worker mid-write.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # one BLAS thread per worker: the workers are the parallelism
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    store: Store = open_store(database_url, migrate_schema=False)
    stop = _StopSignal(shutdown, parent_pid)
    answered, last_look = -1, 0.0
    try:
        while not stop.is_set():
            rung, now = doorbell.value, time.monotonic()
            if rung != answered or now - last_look >= STORE_LOOK_S:
                answered, last_look = rung, now
                try:
                    if _run_next(store, slot, run_settings, stop):
                        answered = -1  # more may be waiting: look again at once
                        continue
                except DomainError as exc:
                    # The store is down or refused: keep the worker, look again later.
                    log.warning("looking for queued jobs failed: %s", exc)
            time.sleep(IDLE_WAIT_S)
    finally:
        store.close()
