"""What following a job yields, and the server-sent-event parsing and bookkeeping behind it.

``GET /v1/jobs/{id}/events`` sends ``status``, ``progress`` and ``end`` events with increasing ids.
A ``progress`` event carries the latest epoch only (progress is recorded at a bounded rate), so
:class:`FollowState` fills in the epochs between two events from ``GET /v1/jobs/{id}/metrics``. It
remembers the last event handled in full and the last epoch yielded: reconnecting with that
``Last-Event-ID`` and skipping epochs already yielded gives every epoch exactly once, across dropped
connections, restarts of the service, and resumed runs that recompute epochs after their checkpoint.

The sync and async clients share this state; they only differ in how they read the stream.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from service.http.schemas.jobs import Best, JobError, LatestMetrics

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
_METRIC_NAMES = ("train_loss", "val_loss", "train_accuracy", "val_accuracy")


@dataclass(frozen=True)
class StatusUpdate:
    """The job changed state (``queued``, ``running``, ``cancelling``…), e.g. a run started or resumed."""

    event_id: int
    status: str
    attempt: int
    data: dict[str, Any] = field(repr=False)

    @property
    def reason(self) -> str | None:
        """Why, when the service says (e.g. a requeue after a lost worker)."""
        reason = self.data.get("reason")
        return None if reason is None else str(reason)


@dataclass(frozen=True)
class EpochUpdate:
    """One finished epoch: its metrics, and the job's pace as last reported."""

    event_id: int
    epoch: int
    total_epochs: int | None
    metrics: LatestMetrics
    elapsed_s: float | None = None
    eta_s: float | None = None
    best: Best | None = None

    @property
    def fraction(self) -> float | None:
        """epoch / total_epochs."""
        return self.epoch / self.total_epochs if self.total_epochs else None


@dataclass(frozen=True)
class EndUpdate:
    """The job ended: ``succeeded``, ``failed`` or ``cancelled``; the last update of a follow."""

    event_id: int
    status: str
    model_id: str | None
    error: JobError | None

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


Update = StatusUpdate | EpochUpdate | EndUpdate


@dataclass(frozen=True)
class ServerEvent:
    """One server-sent event as received: ``id``, ``event`` and the JSON ``data``."""

    id: int
    event: str
    data: dict[str, Any]


class SSEDecoder:
    """Turns the lines of a ``text/event-stream`` into :class:`ServerEvent` objects (comments skipped)."""

    def __init__(self) -> None:
        self._fields: dict[str, str] = {}
        self._data: list[str] = []

    def feed(self, line: str) -> ServerEvent | None:
        """Take one line (without its line break); the event it completes, if any."""
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        else:
            self._fields[name] = value
        return None

    def _dispatch(self) -> ServerEvent | None:
        fields, data = self._fields, self._data
        self._fields, self._data = {}, []
        if not data or "id" not in fields:
            return None
        payload = json.loads("\n".join(data))
        return ServerEvent(int(fields["id"]), fields.get("event", "message"), payload)


@dataclass
class Plan:
    """How to handle one event: ``now`` (status updates), then the epochs of ``rows``, then (when
    ``fetch``) the epochs after the last one yielded from the metric history, up to ``upto`` (None: all
    recorded), then ``after`` (the end)."""

    now: list[Update] = field(default_factory=list)
    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    fetch: bool = False
    upto: int | None = None
    after: list[Update] = field(default_factory=list)


def history_rows(history: dict[str, Any], upto: int | None) -> list[tuple[int, dict[str, Any]]]:
    """``(epoch, metrics)`` pairs of a ``GET /v1/jobs/{id}/metrics`` answer, up to epoch ``upto``."""
    rows = []
    epochs: Iterable[int] = history.get("epochs") or []
    for i, epoch in enumerate(epochs):
        if upto is not None and epoch > upto:
            break
        values = {}
        for name in _METRIC_NAMES:
            column = history.get(name)
            if column is not None and i < len(column):
                values[name] = column[i]
        rows.append((int(epoch), values))
    return rows


@dataclass
class FollowState:
    """Where a follow stands: the last event handled in full and the last epoch yielded.

    Parameters
    ----------
    last_event_id : int
        Resume the stream after this event id (0: from the start of the job).
    last_epoch : int
        Epochs up to this one are not yielded again.
    epochs : bool
        Whether to yield epochs at all (``wait`` needs only the end).
    fetch_interval : float
        Seconds between two reads of the history: the epochs of a progress event that comes sooner
        wait for the next one (or the end), so a fast job costs the service a few reads a second.
    """

    last_event_id: int = 0
    last_epoch: int = 0
    epochs: bool = True
    fetch_interval: float = 0.25
    last_fetch: float = field(default=-math.inf, repr=False)
    total_epochs: int | None = None
    pace: dict[str, Any] = field(default_factory=dict)
    best: Best | None = None
    done: bool = False

    def plan(self, event: ServerEvent) -> Plan:
        """What to do with ``event``; call :meth:`commit` once it has been handled in full."""
        data = event.data
        if event.event == "status":
            status = StatusUpdate(event.id, str(data.get("status")), int(data.get("attempt") or 0), data)
            return Plan(now=[status])
        if event.event == "end":
            error = data.get("error")
            end = EndUpdate(
                event.id,
                str(data.get("status")),
                data.get("model_id"),
                JobError.model_validate(error) if error else None,
            )
            return Plan(fetch=self.epochs, after=[end])
        if event.event != "progress" or not self.epochs:
            return Plan()
        progress = data.get("progress") or {}
        self.total_epochs = progress.get("total_epochs", self.total_epochs)
        self.pace = {key: progress.get(key) for key in ("elapsed_s", "eta_s")}
        if data.get("best"):
            self.best = Best.model_validate(data["best"])
        epoch = int(data.get("epoch") or 0)
        if epoch <= self.last_epoch:
            return Plan()  # a resumed run recomputing epochs already yielded
        if epoch == self.last_epoch + 1 and data.get("metrics"):
            # The event carries this very epoch's metrics: no need to read the history.
            return Plan(rows=[(epoch, data["metrics"])])
        now = time.monotonic()
        if now - self.last_fetch < self.fetch_interval:
            return Plan()  # the next event, or the end, reads these epochs with its own
        self.last_fetch = now
        return Plan(fetch=True, upto=epoch)

    def epoch_updates(
        self, event_id: int, rows: Iterable[tuple[int, dict[str, Any]]]
    ) -> Iterator[EpochUpdate]:
        """An update per epoch of ``rows`` not yielded yet, marked yielded as it is produced."""
        for epoch, metrics in rows:
            if epoch <= self.last_epoch:
                continue
            known = {name: metrics.get(name) for name in _METRIC_NAMES if name in metrics}
            self.last_epoch = epoch
            yield EpochUpdate(
                event_id,
                epoch,
                self.total_epochs,
                LatestMetrics.model_validate(known),
                elapsed_s=self.pace.get("elapsed_s"),
                eta_s=self.pace.get("eta_s"),
                best=self.best,
            )

    def commit(self, event: ServerEvent) -> None:
        """``event`` has been handled in full: a reconnection resumes after it."""
        self.last_event_id = event.id
        if event.event == "end":
            self.done = True
