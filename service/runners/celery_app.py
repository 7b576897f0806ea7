"""The Celery application as the API sees it: broker settings and the task name, no training code.

The API enqueues ``descent.run_job`` by name; only ``descent worker`` imports the task itself
(``service.runners.celery_worker``). State lives in the store, so Celery keeps no results.
"""

from __future__ import annotations

from celery import Celery

from service.settings import Settings

TASK_NAME = "descent.run_job"
QUEUE = "descent"


def make_celery(settings: Settings) -> Celery:
    """A Celery app configured for at-least-once delivery of training jobs."""
    app = Celery("descent", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        # A job's message is acknowledged only once run_job returns, and given back if the worker
        # process dies; one message at a time per worker, so no job waits behind a busy one.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_backend=None,
        task_default_queue=QUEUE,
        task_serializer="json",
        accept_content=["json"],
        # Above the longest job, so a running job is never delivered twice by timeout; lost runs
        # are found sooner by the reaper through their heartbeats.
        broker_transport_options={"visibility_timeout": settings.broker_visibility_timeout_s},
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        # SIGTERM: running jobs get this long to checkpoint and requeue, then the worker exits.
        worker_soft_shutdown_timeout=settings.shutdown_grace_s,
        worker_enable_soft_shutdown_on_idle=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app
