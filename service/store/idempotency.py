"""Idempotency keys: which resource a client's ``Idempotency-Key`` first produced.

The primary key (owner, scope, key) decides races: of two requests that remember the same key at once,
the first insert wins and the other gets the winner's entry back.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from service.errors import Conflict
from service.store.db import Store, utcnow
from service.store.records import Remembered
from service.store.tables import IdempotencyKeyRow


def recall(store: Store, owner: str, scope: str, key: str) -> Remembered | None:
    """What ``key`` was first used for in ``scope`` (e.g. "POST /v1/jobs"), or None when it is new.

    Returns
    -------
    entry : Remembered or None
        ``(request_hash, resource_id, status_code)``.
    """
    with store.read() as session:
        row = session.scalar(
            select(IdempotencyKeyRow).where(
                IdempotencyKeyRow.owner == owner,
                IdempotencyKeyRow.scope == scope,
                IdempotencyKeyRow.key == key,
            )
        )
        return None if row is None else Remembered(row.request_hash, row.resource_id, row.status_code)


def remember(
    store: Store,
    owner: str,
    scope: str,
    key: str,
    request_hash: str,
    resource_id: str,
    status_code: int,
) -> Remembered:
    """Record that ``key`` produced ``resource_id``, unless it is already recorded.

    Returns
    -------
    entry : Remembered
        The entry now stored: this one, or the one a concurrent or earlier request stored first. A caller
        whose ``resource_id`` differs from the returned one lost the race and should answer with the
        returned resource (or 409 when ``request_hash`` differs).
    """
    if not key or len(key) > 255:
        raise ValueError(f"idempotency key must have 1 to 255 characters, got {len(key)}")
    try:
        with store.write() as session:
            session.add(
                IdempotencyKeyRow(
                    owner=owner,
                    scope=scope,
                    key=key,
                    request_hash=request_hash,
                    resource_id=resource_id,
                    status_code=status_code,
                    created_at=utcnow(),
                )
            )
            session.flush()
    except IntegrityError as exc:
        existing = recall(store, owner, scope, key)
        if existing is None:
            # The key's row was deleted between our failed insert and the read: rare enough to let the
            # client retry rather than loop here.
            raise Conflict(f"idempotency key {key!r} is being used concurrently; retry") from exc
        return existing
    return Remembered(request_hash, resource_id, status_code)
