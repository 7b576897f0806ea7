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
import time

from service.errors import STORE_OUTAGES, NotFound, StaleAttempt
from service.store import Store, heartbeat

log = logging.getLogger("descent.jobs")


class Heartbeat:
    """Refresh the heartbeat of ``job_id``'s run ``attempt`` every ``interval_s`` until :meth:`stop`.

    The beats of every run in a process are written by one thread of the process's, started with the
    first run and kept for the next ones: a run of a few milliseconds does not pay for starting and
    joining a thread of its own.

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
        self._unreachable = False

    def start(self) -> Heartbeat:
        _BEATS.add(self)
        return self

    def ending(self) -> None:
        """The run is about to end the job itself: a heartbeat refused from now on is no news."""
        self._ending = True

    def stop(self) -> None:
        """No heartbeat of this run is written once this returns."""
        self._done.set()
        _BEATS.remove(self)

    def beat(self) -> bool:
        """Write one heartbeat; False once the run's attempt is stale (no more beats then)."""
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
            return False
        except STORE_OUTAGES as exc:
            # Training goes on; the reaper waits for the store to answer before it judges anyone.
            if not self._unreachable:
                log.warning("job %s attempt %d: heartbeat failed: %s", self.job_id, self.attempt, exc)
            self._unreachable = True
            return True
        except Exception:
            log.exception("job %s attempt %d: heartbeat failed", self.job_id, self.attempt)
            return True
        self._unreachable = False
        self.cancel_requested = self.cancel_requested or cancel
        return True


class _Beats:
    """The thread that writes the heartbeats of the runs of this process, each when it is due."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: dict[Heartbeat, float] = {}
        self._beating: Heartbeat | None = None
        self._thread: threading.Thread | None = None

    def add(self, run: Heartbeat) -> None:
        with self._cond:
            self._due[run] = time.monotonic() + run.interval_s
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._write, name="descent-heartbeats", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def remove(self, run: Heartbeat) -> None:
        """Take ``run`` out; waits for its heartbeat if one is being written."""
        with self._cond:
            self._due.pop(run, None)
            while self._beating is run and threading.current_thread() is not self._thread:
                self._cond.wait()

    def _write(self) -> None:
        with self._cond:
            while True:
                if not self._due:
                    self._cond.wait()
                    continue
                run, due = min(self._due.items(), key=lambda item: item[1])
                wait = due - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                self._due[run] = time.monotonic() + run.interval_s
                self._beating = run
                self._cond.release()
                try:
                    alive = run.beat()
                finally:
                    self._cond.acquire()
                    self._beating = None
                    if not alive:
                        self._due.pop(run, None)
                    self._cond.notify_all()


_BEATS = _Beats()


def reap_interval(heartbeat_timeout_s: float) -> float:
    """How often a reaper looks for runs with stale heartbeats: a tenth of the timeout, within [0.25, 2] s.

    A lost run is therefore requeued at most about 1.1 timeouts after its last heartbeat.
    """
    return max(0.25, min(2.0, heartbeat_timeout_s / 10))
