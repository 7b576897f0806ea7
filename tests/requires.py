"""Tests that need a service (PostgreSQL, Redis): skipped without it on a developer's machine, failed in CI.

With ``CI`` set to a true value (``CI=true``, as CI runs ``.ci/run``), every service must be there: a test
that cannot have one fails with the reason, so that a green run never means that fewer tests ran.

Usage::

    reason = pg.unavailable_reason()
    if reason is not None:
        missing(reason)
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """Whether the tests run in CI (``CI`` set to ``true``, ``1`` or ``yes``)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing(reason: str) -> NoReturn:
    """Skip the calling test for want of a service, or fail it in CI."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: tests that need it fail rather than skip)", pytrace=False)
    pytest.skip(reason)
