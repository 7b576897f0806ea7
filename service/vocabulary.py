"""The service's fixed words, each defined once: dataset tasks, job statuses, job error types, event kinds.

Each vocabulary is a ``Literal`` type (what the schemas and type hints use) and the tuple of its values
(what the store's CHECK constraints and runtime checks use), the tuple derived from the type. This module
is a leaf: it imports only ``typing``, so every layer, the store included, may import it.
"""

from __future__ import annotations

from typing import Literal, get_args

# multilabel: several 0/1 labels per sample (y of shape (n_samples, n_labels)); a regression may have
# several targets too.
Task = Literal["binary", "multiclass", "multilabel", "regression"]
TASKS: tuple[Task, ...] = get_args(Task)

# A class name (a string label) has at most this many characters.
MAX_CLASS_NAME_LENGTH = 256

# A dataset holds at least this many samples (rows of X), however it is sent or drawn.
MIN_SAMPLES = 2

# A job is active until it reaches a terminal status, which never changes afterwards.
RunStatus = Literal["running", "cancelling"]
ActiveStatus = Literal["queued", RunStatus]
TerminalStatus = Literal["succeeded", "failed", "cancelled"]
JobStatus = Literal[ActiveStatus, TerminalStatus]
JOB_STATUSES: tuple[JobStatus, ...] = get_args(JobStatus)
ACTIVE_STATUSES: tuple[ActiveStatus, ...] = get_args(ActiveStatus)
RUN_STATUSES: tuple[RunStatus, ...] = get_args(RunStatus)
TERMINAL_STATUSES: tuple[TerminalStatus, ...] = get_args(TerminalStatus)

# Why a job failed (its ``error.type``).
ErrorType = Literal[
    "diverged",
    "deadline_exceeded",
    "invalid_data",
    "worker_lost",
    "resource_exhausted",
    "storage_corrupted",
    "internal",
]
ERROR_TYPES: tuple[ErrorType, ...] = get_args(ErrorType)

# The kinds of a job's events (the ``event:`` line of the server-sent event stream).
EventKind = Literal["status", "progress", "end"]
EVENT_KINDS: tuple[EventKind, ...] = get_args(EventKind)
