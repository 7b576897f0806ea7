"""``descent worker``: a Celery worker that runs training jobs, one at a time.

A message is a wake-up: the task claims the first queued job in claim order (interrupted jobs
first, then the oldest), which need not be the job the message names. On SIGTERM (``docker stop``)
the running job checkpoints at its next epoch and goes back to the queue, and this worker sends a
wake-up for it. The worker runs under the memory cap (``DESCENT_WORKER_MEMORY_MB``); after a job
that ran out of memory, it acknowledges that job's message and replaces itself with a fresh process
(``exec``, same pid), since the old one may hold on to fragments of what it allocated.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

from celery import signals
from celery.worker import state as worker_state

from service.runners.celery_app import QUEUE, TASK_NAME, make_celery
from service.runners.distributed import CeleryRunner
from service.runners.memory import WorkerOutOfMemory, apply_memory_cap
from service.runners.run_job import RunSettings, run_next
from service.settings import Settings
from service.store import Store, open_store

log = logging.getLogger("descent.worker")
settings = Settings()
celery_app = make_celery(settings)
_shutdown = threading.Event()
_state: dict[str, Any] = {}


def _store() -> Store:
    if "store" not in _state:
        _state["store"] = open_store(settings.database_url)
    store: Store = _state["store"]
    return store


@celery_app.task(name=TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True)
def run_job_task(self: Any, job_id: str) -> None:
    """Wake up for ``job_id``: run the first job this worker can claim, if any."""
    try:
        run = run_next(_store(), settings=RunSettings.from_settings(settings), shutdown=_shutdown)
    except (WorkerOutOfMemory, MemoryError):
        log.error("a job ran out of memory; this worker replaces itself once the message is acknowledged")
        _state["replace"] = True
        worker_state.should_stop = 0  # a warm stop, right after this task (EX_OK)
        return
    if run is None:
        log.debug("woken up for job %s, but no queued job was left to claim", job_id)
    elif run.status == "queued":
        # Given back at shutdown: wake another worker to resume it from its checkpoint.
        celery_app.send_task(TASK_NAME, args=[run.job_id], queue=QUEUE)


@signals.worker_shutting_down.connect
def _on_shutdown(**_: Any) -> None:
    _shutdown.set()


@signals.worker_ready.connect
def _on_ready(**_: Any) -> None:
    # Every worker also reaps, so lost jobs are recovered even while no API process runs.
    runner = CeleryRunner(_store(), settings)
    runner.start()
    _state["reaper"] = runner


def main(argv: list[str] | None = None) -> None:
    """Start the worker: solo pool (the job runs in this process), one job at a time."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    _store()  # run migrations before taking jobs
    apply_memory_cap(settings.worker_memory_mb)
    try:
        celery_app.worker_main(
            [
                "worker",
                "--pool=solo",
                "--concurrency=1",
                f"--queues={QUEUE}",
                f"--loglevel={settings.log_level.upper()}",
                "--without-mingle",
                "--without-gossip",
                *(argv or []),
            ]
        )
    finally:
        if _state.get("replace"):
            log.warning("restarting the worker process after a job ran out of memory")
            sys.stdout.flush()
            sys.stderr.flush()
            os.execv(sys.executable, sys.orig_argv)
