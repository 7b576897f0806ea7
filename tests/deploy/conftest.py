"""Fixtures of the deployment tests: a private Redis and a database on the machine's PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import pg
from tests.deploy.stack import RedisServer, redis_unavailable_reason
from tests.requires import missing


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    reason = redis_unavailable_reason()
    if reason is not None:
        missing(reason)
    with RedisServer(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def shared_postgres_url() -> Iterator[str]:
    """A fresh database on the machine's PostgreSQL, dropped afterwards."""
    yield from pg.database_fixture()
