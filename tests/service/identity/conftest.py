"""Fixtures for identity tests: an app with DESCENT_AUTH=keys and keys for two owners and an admin."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from service.app import create_app
from service.services import identity
from tests.deploy.stack import RedisServer, redis_unavailable_reason
from tests.requires import missing
from tests.service.conftest import Client, make_settings


@dataclass
class Keys:
    """The keys of a keyed app: alice's, bob's, an admin's, and one of alice's that was revoked."""

    alice: str
    bob: str
    admin: str
    revoked: str

    @staticmethod
    def header(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}


def make_keys(client: Client, **alice_limits: Any) -> Keys:
    store = client.app.state.store
    revoked = identity.create(store, owner="alice", note="revoked")
    identity.revoke(store, revoked.record.id)
    return Keys(
        alice=identity.create(store, owner="alice", limits=alice_limits).key,
        bob=identity.create(store, owner="bob").key,
        admin=identity.create(store, owner="ops", admin=True).key,
        revoked=revoked.key,
    )


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server (skipped without one; failed in CI)."""
    reason = redis_unavailable_reason()
    if reason is not None:
        missing(reason)
    with RedisServer(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[Callable[..., Client]]:
    """``keyed(**settings)``: a client on an app with DESCENT_AUTH=keys (keys read on every request)."""
    clients: list[Client] = []

    def make(**overrides: Any) -> Client:
        values: dict[str, Any] = {"auth": "keys", "key_cache_s": 0, **overrides}
        c = Client(create_app(make_settings(tmp_path, **values)))
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()
