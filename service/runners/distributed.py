"""The distributed runner: the API hands job ids to Celery workers through the broker.

The store stays the source of truth, and a message is only a wake-up: the worker that receives one
claims the first queued job in claim order (interrupted jobs first, then the oldest), whichever job
the message names. A job requeued after its worker died therefore runs as soon as any worker is free,
not behind every message already waiting. Duplicate messages are harmless (a worker finding nothing
to claim acknowledges and waits for the next), and the number of messages only has to keep up with
the number of queued jobs.

The reaper thread (in the API and in every worker) requeues jobs whose heartbeat went stale (their
worker died) and sends wake-ups again when some are really missing: when the broker holds fewer
messages than there are queued jobs, it sends that many more, for jobs unclaimed since their last
dispatch for ``DESCENT_REDISPATCH_AFTER_S``. Dispatches are recorded in the store, and counted and
taken under one lock (``take_redispatch``), so several processes reaping at once never multiply them.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis

from service.errors import StoreUnavailable
from service.runners.celery_app import QUEUE, TASK_NAME, make_celery
from service.runners.liveness import reap_interval
from service.settings import Settings
from service.store import Store, count_queued, reap_stale, take_redispatch

log = logging.getLogger("descent.runner")
# Two looks at the broker and the store this far apart: a worker between taking a message and
# claiming its job (a few milliseconds) is not taken for a missing message.
_SECOND_LOOK_S = 0.2


class CeleryRunner:
    """Submits jobs to Celery workers (``descent worker``) and reaps lost runs."""

    def __init__(self, store: Store, settings: Settings, *, reap: bool = True) -> None:
        self.store, self.settings = store, settings
        self.celery = make_celery(settings)
        self._redis = redis.Redis.from_url(settings.broker_url, socket_timeout=2, socket_connect_timeout=2)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._reap = reap
        # No run can send heartbeats while the store is down: after an outage, the runs get a whole
        # heartbeat timeout to be heard again before any of them is presumed lost.
        self._reap_stale_after = 0.0

    def start(self) -> None:
        if self._reap:
            self._thread = threading.Thread(target=self._reaper, name="descent-reaper", daemon=True)
            self._thread.start()

    def submit(self, job_id: str) -> None:
        """Send a wake-up for ``job_id`` (the store already recorded the dispatch)."""
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

    def begin_stop(self) -> None:
        self._stopping.set()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
        self._redis.close()

    def _broker_location(self) -> str:
        kwargs: dict[str, Any] = self._redis.connection_pool.connection_kwargs
        return f"{kwargs.get('host')}:{kwargs.get('port')}"

    def _waiting_messages(self) -> int:
        return int(self._redis.llen(QUEUE))

    def _may_miss_messages(self) -> bool:
        """Whether the broker holds fewer messages than there are queued jobs, by two looks in a row."""
        if count_queued(self.store) <= self._waiting_messages():
            return False
        time.sleep(_SECOND_LOOK_S)
        return count_queued(self.store) > self._waiting_messages()

    def reap_once(self) -> None:
        """Requeue lost runs, and send again the wake-ups the broker has lost."""
        try:
            timeout = self.settings.heartbeat_timeout_s
            stale = [] if time.monotonic() < self._reap_stale_after else reap_stale(self.store, timeout)
        except StoreUnavailable:
            self._reap_stale_after = time.monotonic() + self.settings.heartbeat_timeout_s
            raise
        for job_id in stale:
            log.warning("job %s lost its worker; queued again", job_id)
            self.submit(job_id)
        if not self._may_miss_messages():
            return
        for job_id in take_redispatch(self.store, self.settings.redispatch_after_s, self._waiting_messages):
            log.info("job %s was not claimed since its last dispatch; sent again", job_id)
            self.submit(job_id)

    def _reaper(self) -> None:
        interval = reap_interval(self.settings.heartbeat_timeout_s)
        while not self._stopping.wait(interval):
            try:
                self.reap_once()
            except Exception as exc:  # the store or broker is down: try again next round
                log.warning("reaper round failed: %s", exc)
