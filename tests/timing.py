"""How long tests wait: generous bounds, all scaled by one setting.

No test asserts that something happens within a short time. A test waits for an event (a process
prints a line, a job reaches a status, a checkpoint shows in the store) and a bound only says how
long to wait before failing with what was last seen. The bounds below hold on a busy 2-core machine
(load average 20); on a slower one, ``DESCENT_TEST_TIMEOUT_SCALE`` multiplies every one of them, the
per-test limit of pytest-timeout included (``DESCENT_TEST_TIMEOUT_SCALE=3 make test``). A bound that
is not reached costs nothing: waits end as soon as their event happens.

Usage::

    from tests.timing import JOB_S, limit

    wait_until(finished, JOB_S, "the job to finish")
    with anyio.fail_after(limit(20)): ...
"""

from __future__ import annotations

import os

SCALE_ENV = "DESCENT_TEST_TIMEOUT_SCALE"


def _scale() -> float:
    text = os.environ.get(SCALE_ENV, "").strip()
    if not text:
        return 1.0
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{SCALE_ENV} must be a positive number, got {text!r}") from None
    if not value > 0:
        raise ValueError(f"{SCALE_ENV} must be a positive number, got {text!r}")
    return value


SCALE = _scale()


def limit(seconds: float) -> float:
    """``seconds`` times :data:`SCALE`: the bound on one wait."""
    return seconds * SCALE


# A process (a server, a worker, a database) starting until it answers, or exiting when told.
STARTUP_S = limit(120)
# A training job of a test (seconds of work when the machine is idle) reaching a status or epoch.
JOB_S = limit(240)
# One HTTP request or read of a response (also between two chunks of an event stream).
REQUEST_S = limit(60)
