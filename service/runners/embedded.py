"""The embedded runner: a supervised pool of worker processes beside the API, on one machine.

Each worker process takes the first queued job in claim order (interrupted jobs first, then the
oldest) and calls ``run_job``; after a job it looks again at once, and while idle it sleeps until the
API rings its doorbell (a job was submitted) or a second has passed, so nothing depends on a message
arriving. A supervisor thread in the API process replaces a worker that dies (kill -9, out of
memory) and hands back the job it was running, fenced on the attempt that worker had claimed: the job
resumes from its checkpoint, or fails ``worker_lost`` once its retries are used, or ``resource_exhausted``
when the worker ran out of memory; a job already taken over by another run is left alone. On stop,
workers checkpoint their jobs and leave them queued for the next start; a worker still running when
the shutdown grace ends is killed.

The API process and the workers share only lock-free memory (the shutdown flag and each worker's
slot) and one pipe per worker, its doorbell: the API writes a byte to the pipe of each idle worker
when a job is submitted (without blocking: a full pipe has rung already), and the worker, asleep in
``select`` on it, wakes at once. A ``multiprocessing`` queue or event would not do: their operations
take a semaphore shared by every process, and a worker killed while holding it (an idle worker
waiting on a queue holds one all the time) leaves it taken for good, so that the other workers, and
the API's own shutdown, block on it forever. A pipe has no lock: a dead worker's pipe only refuses
the byte.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import select
import signal
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from typing import Any

from service.errors import DomainError
from service.runners.liveness import reap_interval
from service.runners.memory import (
    EXIT_OUT_OF_MEMORY,
    WorkerOutOfMemory,
    apply_memory_cap,
    out_of_memory_detail,
)
from service.runners.run_job import RunSettings, run_next
from service.store import Store, open_store, reap_stale, release_lost_run

log = logging.getLogger("descent.runner")
_SLOT_BYTES = 64
# An idle worker looks at the store when its doorbell rings, and at least every STORE_LOOK_S.
STORE_LOOK_S = 1.0
# After a look that failed (the store is down), a worker waits this long before the next one.
_RETRY_LOOK_S = 0.5
# How much lower than the API process the workers run (os.nice): training is batch work, so when the
# cores are busy the API's event loop (health checks, small requests, event streams) is scheduled first.
WORKER_NICENESS = 10


@dataclass
class _Worker:
    process: SpawnProcess
    slot: Any  # shared bytes: "<job id>:<attempt>" of the run the worker is in, empty when idle
    bell: Connection  # the API's end of the worker's doorbell pipe (non-blocking)

    def ring(self) -> None:
        """Wake the worker if it sleeps; a full pipe (rung already) or a dead worker's is left as it is."""
        with contextlib.suppress(OSError):
            os.write(self.bell.fileno(), b"\0")


def read_slot(slot: Any) -> tuple[str, int] | None:
    """The (job id, attempt) a worker's slot holds, or None when the worker is idle."""
    job_id, _, attempt = bytes(slot.value).decode().partition(":")
    return (job_id, int(attempt)) if job_id and attempt.isdigit() else None


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
        How long workers get to checkpoint at shutdown before they are ended.
    """

    def __init__(
        self,
        store: Store,
        database_url: str,
        workers: int,
        run_settings: RunSettings | None = None,
        *,
        stale_after_s: float = 10.0,
        grace_s: float = 10.0,
    ) -> None:
        self.store, self.database_url, self.n_workers = store, database_url, workers
        self.run_settings = run_settings or RunSettings()
        self.stale_after_s, self.grace_s = stale_after_s, grace_s
        self._ctx = mp.get_context("spawn")
        # Written only by this process, read by the workers: no cross-process lock.
        self._shutdown: Any = self._ctx.Value("b", 0, lock=False)
        # Held while ringing and while a dead worker's doorbell is closed: a closed descriptor's number
        # may be handed out again at once, and a byte must never go to whatever file took it.
        self._bells = threading.Lock()
        self._workers: list[_Worker] = []
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._stopper: threading.Thread | None = None
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
        """Wake the idle workers: the job is in the store, and they claim in claim order.

        A busy worker looks at the queue again as soon as its job ends, so only the idle ones are rung.
        """
        with self._bells:
            for worker in self._workers:
                if read_slot(worker.slot) is None:
                    worker.ring()

    def ready(self) -> bool:
        return not self._stopping.is_set() and any(w.process.is_alive() for w in self._workers)

    def describe_unready(self) -> str:
        return "the runner is stopping" if self._stopping.is_set() else "no worker process is alive"

    def worker_pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if w.process.pid is not None]

    def begin_stop(self) -> None:
        """Tell every worker to stop now, and end those still running when the grace period is over.

        Returns at once (it is called from the signal handler of ``descent serve``); :meth:`stop`
        waits for the end.
        """
        with self._lock:
            if self._stopper is not None:
                return
            self._stopping.set()
            self._shutdown.value = 1
            with self._bells:
                for worker in self._workers:
                    worker.ring()
            deadline = time.monotonic() + self.grace_s
            self._stopper = threading.Thread(
                target=self._end_workers, args=(deadline,), name="descent-stopper", daemon=True
            )
            self._stopper.start()

    def stop(self) -> None:
        self.begin_stop()
        if self._stopper is not None:
            self._stopper.join()
        if self._supervisor is not None:
            self._supervisor.join(5)

    def _end_workers(self, deadline: float) -> None:
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

    def _spawn(self) -> _Worker:
        slot = self._ctx.Array("c", _SLOT_BYTES, lock=False)
        door, bell = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(
            target=worker_main,
            args=(self.database_url, door, self._shutdown, slot, self.run_settings, os.getpid()),
            name="descent-worker",
            daemon=True,
        )
        process.start()
        door.close()  # the worker's end: this process only rings
        os.set_blocking(bell.fileno(), False)
        return _Worker(process, slot, bell)

    def _release(self, worker: _Worker, detail: str, error_type: str | None = None) -> None:
        """Hand back the job a dead worker was running, fenced on that worker's attempt."""
        run = read_slot(worker.slot)
        if run is None:
            # Idle, or dead between its claim and its note of it: the heartbeat reaper finds that job.
            return
        job_id, attempt = run
        try:
            status = release_lost_run(self.store, job_id, attempt, detail, error_type=error_type)
        except Exception:
            log.exception("could not release job %s of a lost worker", job_id)
            return
        if status is None:
            log.warning(
                "job %s attempt %d lost its worker (%s), but the job had already moved on: left alone",
                job_id,
                attempt,
                detail,
            )
            return
        log.warning("job %s attempt %d lost its worker (%s): now %s", job_id, attempt, detail, status)
        if status == "queued" and not self._stopping.is_set():
            self.submit(job_id)

    def _replace_dead_workers(self) -> None:
        with self._lock:
            for i, worker in enumerate(self._workers):
                if worker.process.is_alive() or self._stopping.is_set():
                    continue
                code = worker.process.exitcode
                log.warning("worker %s exited with code %s; starting another", worker.process.pid, code)
                if code == EXIT_OUT_OF_MEMORY:
                    detail = out_of_memory_detail(self.run_settings.worker_memory_mb, "")
                    self._release(worker, detail, error_type="resource_exhausted")
                else:
                    self._release(worker, f"the worker process exited with code {code}")
                replacement = self._spawn()
                with self._bells:
                    self._workers[i] = replacement
                    worker.bell.close()

    def _supervise(self) -> None:
        last_reap = time.monotonic()
        interval = reap_interval(self.stale_after_s)
        while not self._stopping.wait(0.2):
            self._replace_dead_workers()
            if time.monotonic() - last_reap > interval:
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
    """Claim and run the first queued job this worker can get; False when there is none."""

    def note(job_id: str, attempt: int) -> None:
        slot.value = f"{job_id}:{attempt}".encode()[:_SLOT_BYTES]

    try:
        return run_next(store, settings=run_settings, shutdown=stop, on_claim=note) is not None
    except (WorkerOutOfMemory, MemoryError):
        # The job is recorded failed (or, if even that ran out of memory, the runner records it):
        # a fresh process replaces this one, which may still hold fragments of what it allocated.
        log.error("a job ran out of memory; this worker exits and another replaces it")
        os._exit(EXIT_OUT_OF_MEMORY)
    finally:
        slot.value = b""


def worker_main(
    database_url: str, door: Connection, shutdown: Any, slot: Any, run_settings: RunSettings, parent_pid: int
) -> None:
    """A worker process: run queued jobs one at a time until told to stop."""
    # The API process handles the signals and tells workers to stop through `shutdown`; an
    # interrupt typed in the terminal must not kill a worker mid-write.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.nice(WORKER_NICENESS)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # one BLAS thread per worker: the workers are the parallelism
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    store: Store = open_store(database_url, migrate_schema=False)
    apply_memory_cap(run_settings.worker_memory_mb)
    stop = _StopSignal(shutdown, parent_pid)
    doorbell = _Doorbell(door)
    try:
        while not stop.is_set():
            doorbell.answer()
            try:
                if _run_next(store, slot, run_settings, stop):
                    continue  # more may be waiting: look again at once
                wait = STORE_LOOK_S
            except DomainError as exc:
                # The store is down or refused: keep the worker, look again later.
                log.warning("looking for queued jobs failed: %s", exc)
                wait = _RETRY_LOOK_S
            doorbell.wait(wait)
    finally:
        store.close()


class _Doorbell:
    """The worker's end of its doorbell pipe."""

    def __init__(self, door: Connection) -> None:
        self.fd = door.fileno()
        self._door = door  # keeps the pipe open
        os.set_blocking(self.fd, False)
        self.closed = False

    def answer(self) -> None:
        """Empty the pipe: the look that follows sees every job submitted before the rings read here."""
        with contextlib.suppress(BlockingIOError):
            while os.read(self.fd, 4096):
                pass
            # An empty read is the end of the pipe: the API process closed it (it is stopping or gone).
            self.closed = True

    def wait(self, timeout: float) -> None:
        """Sleep until the doorbell rings or ``timeout`` seconds have passed."""
        if self.closed:
            time.sleep(timeout)  # the stop signal ends the worker at its next look
        else:
            select.select([self.fd], [], [], timeout)
