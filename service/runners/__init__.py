"""Where jobs run. The API only asks a runner to ``submit`` a queued job's id; the runner decides where
``run_job`` executes: a local pool of worker processes (embedded) or Celery workers (distributed)."""

from __future__ import annotations

from typing import Protocol


class Runner(Protocol):
    """What the API needs of a runner."""

    def start(self) -> None:
        """Begin running jobs (and pick up the ones already queued)."""

    def submit(self, job_id: str) -> None:
        """Hand a queued job to a worker; losing this message loses nothing, only time."""

    def begin_stop(self) -> None:
        """Start stopping without waiting (called at SIGTERM, while the HTTP server drains)."""

    def stop(self) -> None:
        """Stop taking jobs, let running ones checkpoint and return to the queue, then exit."""

    def ready(self) -> bool:
        """Whether the runner can take jobs (workers alive, broker reachable)."""

    def describe_unready(self) -> str:
        """Why ``ready`` is false, for /readyz."""


class NoRunner:
    """Accepts jobs and leaves them queued: for an API-only process (``DESCENT_WORKERS=0``)."""

    def start(self) -> None:
        pass

    def submit(self, job_id: str) -> None:
        pass

    def begin_stop(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def ready(self) -> bool:
        return True

    def describe_unready(self) -> str:
        return ""
