"""Heartbeats from a thread of their own, so that a long epoch is never taken for a dead worker.

The training loop only polls for news between mini-batches (between epochs for full-batch training),
and one of those can take longer than the heartbeat timeout. :class:`Heartbeat` writes the run's
heartbeat every ``interval_s`` from a separate thread instead: NumPy releases the GIL in its heavy
operations (matrix products, element-wise loops over large arrays), so the thread gets its turn while
the loop computes. Each heartbeat is a fenced write: when it is refused, the run's attempt is stale
(the reaper gave the job to another run), and :attr:`Heartbeat.lost` is set for the loop to stop.

The bound: a stale run stops within one heartbeat interval plus what is left of the mini-batch it is
in, since the loop stops between mini-batches. A single mini-batch (or full-batch epoch) of a minute
keeps the stale run computing, writing nothing, for up to that minute.
"""

from __future__ import annotations

import logging
import threading

from service.errors import STORE_OUTAGES, NotFound, StaleAttempt
from service.store import Store, heartbeat

log = logging.getLogger("descent.jobs")


class Heartbeat:
    """Refresh the heartbeat of ``job_id``'s run ``attempt`` every ``interval_s`` until :meth:`stop`.

    Attributes
    ----------
    lost : threading.Event
        Set once a heartbeat is refused: another run owns the job, or the job ended or is gone.
    cancel_requested : bool
        Whether a heartbeat saw the job's cancel flag.
    """

    def __init__(self, store: Store, job_id: str, attempt: int, interval_s: float) -> None:
        self.store, self.job_id, self.attempt, self.interval_s = store, job_id, attempt, interval_s
        self.lost = threading.Event()
        self.cancel_requested = False
        self._done = threading.Event()
        self._ending = False
        self._thread = threading.Thread(target=self._beat, name=f"descent-heartbeat-{job_id}", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def ending(self) -> None:
        """The run is about to end the job itself: a heartbeat refused from now on is no news."""
        self._ending = True

    def stop(self) -> None:
        self._done.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _beat(self) -> None:
        unreachable = False
        while not self._done.wait(self.interval_s):
            try:
                cancel = heartbeat(self.store, self.job_id, self.attempt)
            except (StaleAttempt, NotFound):
                if not (self._done.is_set() or self._ending):
                    log.warning(
                        "job %s attempt %d: another run owns the job now; this run stops",
                        self.job_id,
                        self.attempt,
                    )
                self.lost.set()
                return
            except STORE_OUTAGES as exc:
                # Training goes on; the reaper waits for the store to answer before it judges anyone.
                if not unreachable:
                    log.warning("job %s attempt %d: heartbeat failed: %s", self.job_id, self.attempt, exc)
                unreachable = True
                continue
            except Exception:
                log.exception("job %s attempt %d: heartbeat failed", self.job_id, self.attempt)
                continue
            unreachable = False
            self.cancel_requested = self.cancel_requested or cancel


def reap_interval(heartbeat_timeout_s: float) -> float:
    """How often a reaper looks for runs with stale heartbeats: a tenth of the timeout, within [0.25, 2] s.

    A lost run is therefore requeued at most about 1.1 timeouts after its last heartbeat.
    """
    return max(0.25, min(2.0, heartbeat_timeout_s / 10))
