"""``descent worker``: a Celery worker that runs training jobs, one at a time.

The task is ``run_job`` itself. On SIGTERM (``docker stop``) the running job checkpoints at its
next epoch and goes back to the queue, and this worker sends it again for another worker.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import signals

from service.runners.celery_app import QUEUE, TASK_NAME, make_celery
from service.runners.distributed import CeleryRunner
from service.runners.run_job import RunSettings, run_job
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
    store = _store()
    status = run_job(
        store,
        job_id,
        settings=RunSettings(settings.progress_interval_s, settings.checkpoint_interval_s),
        shutdown=_shutdown,
    )
    if status == "queued":
        # Given back at shutdown: send it again so another worker resumes it from its checkpoint.
        celery_app.send_task(TASK_NAME, args=[job_id], queue=QUEUE)


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
