"""The memory cap of worker processes: a backstop that does not trust any estimate.

Each worker process (embedded or Celery) limits its address space with ``setrlimit(RLIMIT_AS)`` to
its footprint when the cap is applied plus ``DESCENT_WORKER_MEMORY_MB``. An allocation beyond it
fails at once with ``MemoryError`` instead of growing the process until the host swaps or the kernel
kills something: the job that asked for it ends ``failed`` with error type ``resource_exhausted``,
and the worker process is replaced by a fresh one, since a process that ran out of memory may hold
on to fragments of it. Other jobs and the host are not touched.

The cap is on address space, not resident memory: it counts what a process reserves, which is
at least what it uses, so it is a safe upper bound of the worker's memory.
"""

from __future__ import annotations

import logging
import resource
from pathlib import Path

log = logging.getLogger("descent.runner")
MiB = 1024 * 1024
# Exit code of an embedded worker that ran out of memory (EX_SOFTWARE): its runner fails the job
# 'resource_exhausted' if the worker could not record that itself.
EXIT_OUT_OF_MEMORY = 70


class WorkerOutOfMemory(Exception):
    """A job ran out of memory in this worker; the job is recorded, and the worker must be replaced."""

    def __init__(self, job_id: str, attempt: int) -> None:
        super().__init__(f"job {job_id} attempt {attempt} ran out of memory")
        self.job_id, self.attempt = job_id, attempt


def address_space_bytes() -> int:
    """The address space this process uses now (``VmSize``), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise OSError("VmSize is missing from /proc/self/status")


def apply_memory_cap(memory_mb: int) -> int | None:
    """Cap this process's address space at its current size plus ``memory_mb`` MiB; 0 sets no cap.

    Returns
    -------
    limit : int or None
        The limit in bytes, or None when no cap was set.
    """
    if memory_mb <= 0:
        return None
    limit = address_space_bytes() + memory_mb * MiB
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    log.info("worker memory capped at %d MiB of address space", limit // MiB)
    return limit


def out_of_memory_detail(memory_mb: int, reason: str) -> str:
    """The error detail of a job that ran out of memory, naming the setting and the failed allocation."""
    what = f": {reason}" if reason else ""
    if memory_mb > 0:
        return (
            f"the job needed more memory than a worker allows ({memory_mb} MiB, "
            f"DESCENT_WORKER_MEMORY_MB){what}"
        )
    return f"the worker ran out of memory{what}"
