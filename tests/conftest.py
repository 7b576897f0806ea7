"""Suite-wide settings: pytest-timeout's per-test limit, scaled by ``DESCENT_TEST_TIMEOUT_SCALE``.

See ``tests/timing.py``.
"""

from __future__ import annotations

import os

import pytest

from tests.timing import limit


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # pytest-timeout's limit from pyproject.toml, scaled; a --timeout or PYTEST_TIMEOUT given by hand wins.
    if config.getoption("timeout", None) is not None or os.environ.get("PYTEST_TIMEOUT"):
        return
    base = float(config.getini("timeout") or 0)
    if base <= 0:
        return
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(limit(base)))
