"""The distributed runner: the API hands job ids to Celery workers through the broker.

The store stays the source of truth. A reaper thread requeues jobs whose heartbeat went stale
(their worker died) and sends queued jobs again when the broker holds fewer messages than there
are queued jobs (a broker restart loses its messages). Duplicate messages are harmless: only one
run can claim a queued job.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis

from service.errors import StoreUnavailable
from service.runners.celery_app import QUEUE, TASK_NAME, make_celery
from service.settings import Settings
from service.store import Store, queued_job_ids, reap_stale

log = logging.getLogger("descent.runner")


class CeleryRunner:
    """Submits jobs to Celery workers (``descent worker``) and reaps lost runs."""

    def __init__(self, store: Store, settings: Settings, *, reap: bool = True) -> None:
        self.store, self.settings = store, settings
        self.celery = make_celery(settings)
        self._redis = redis.Redis.from_url(settings.broker_url, socket_timeout=2, socket_connect_timeout=2)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._reap = reap
        self._resent: dict[str, float] = {}
        # No run can send heartbeats while the store is down: after an outage, the runs get a whole
        # heartbeat timeout to be heard again before any of them is presumed lost.
        self._reap_stale_after = 0.0

    def start(self) -> None:
        if self._reap:
            self._thread = threading.Thread(target=self._reaper, name="descent-reaper", daemon=True)
            self._thread.start()

    def submit(self, job_id: str) -> None:
        try:
            self.celery.send_task(TASK_NAME, args=[job_id], queue=QUEUE, retry=False)
        except Exception as exc:
            # The job is stored as queued: the reaper sends it once the broker is back.
            log.warning("could not send job %s to the broker (%s); it stays queued", job_id, exc)

    def ready(self) -> bool:
        try:
            return bool(self._redis.ping())
        except redis.RedisError:
            return False

    def describe_unready(self) -> str:
        return f"the broker at {self._broker_location()} does not answer"

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
        self._redis.close()

    def _broker_location(self) -> str:
        kwargs: dict[str, Any] = self._redis.connection_pool.connection_kwargs
        return f"{kwargs.get('host')}:{kwargs.get('port')}"

    def reap_once(self) -> None:
        """Requeue lost runs, and send again queued jobs the broker may have lost."""
        try:
            timeout = self.settings.heartbeat_timeout_s
            stale = [] if time.monotonic() < self._reap_stale_after else reap_stale(self.store, timeout)
            queued = queued_job_ids(self.store, limit=10_000)
        except StoreUnavailable:
            self._reap_stale_after = time.monotonic() + self.settings.heartbeat_timeout_s
            raise
        for job_id in stale:
            log.warning("job %s lost its worker; queued again", job_id)
            self.submit(job_id)
        if not queued:
            self._resent.clear()
            return
        if self._redis.llen(QUEUE) >= len(queued):
            return
        now = time.monotonic()
        for job_id in queued:
            # Some of these may still be in the broker; a duplicate cannot run twice, but
            # re-sending the same job over and over would fill the queue.
            if now - self._resent.get(job_id, 0.0) >= self.settings.heartbeat_timeout_s:
                self._resent[job_id] = now
                self.submit(job_id)
        self._resent = {k: v for k, v in self._resent.items() if k in set(queued)}

    def _reaper(self) -> None:
        interval = max(0.5, min(5.0, self.settings.heartbeat_timeout_s / 4))
        while not self._stopping.wait(interval):
            try:
                self.reap_once()
            except Exception as exc:  # the store or broker is down: try again next round
                log.warning("reaper round failed: %s", exc)
