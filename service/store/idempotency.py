"""Idempotency keys: which resource a client's ``Idempotency-Key`` produced, or is producing.

A key is reserved before anything is created: :func:`reserve` inserts a *pending* row (owner, scope,
key) with the request's hash, in a transaction of its own, and the primary key decides races: exactly
one request wins the reservation. The winner creates its resource and calls :func:`complete` inside the
transaction that creates it, so the resource and the completed row commit together or not at all; a
winner that fails calls :func:`release`, which frees the key for a retry. A pending row holds a random
token in ``resource_id`` so that only its own reservation completes or releases it.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import ColumnElement, and_, delete, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.errors import Conflict
from service.store.db import Store, utcnow
from service.store.records import Remembered
from service.store.tables import IdempotencyKeyRow

PENDING, DONE = "pending", "done"
MAX_KEY_LENGTH = 255  # the column's


class Claim(NamedTuple):
    """A won reservation of a key: pass it to the creating store function, which completes it."""

    owner: str
    scope: str
    key: str
    token: str
    status_code: int


def _where(owner: str, scope: str, key: str) -> ColumnElement[bool]:
    return and_(
        IdempotencyKeyRow.owner == owner, IdempotencyKeyRow.scope == scope, IdempotencyKeyRow.key == key
    )


def _entry(row: IdempotencyKeyRow) -> Remembered:
    if row.state == PENDING:
        return Remembered(row.request_hash, None, None)
    return Remembered(row.request_hash, row.resource_id, row.status_code)


def recall(store: Store, owner: str, scope: str, key: str) -> Remembered | None:
    """What ``key`` is used for in ``scope`` (e.g. "POST /v1/jobs"), or None when it is free.

    Returns
    -------
    entry : Remembered or None
        ``(request_hash, resource_id, status_code)``; ``resource_id`` and ``status_code`` are None while
        the request that reserved the key is still creating its resource.
    """
    with store.read() as session:
        row = session.scalar(select(IdempotencyKeyRow).where(_where(owner, scope, key)))
        return None if row is None else _entry(row)


def reserve(
    store: Store,
    owner: str,
    scope: str,
    key: str,
    request_hash: str,
    status_code: int,
    *,
    stale_before: datetime | None = None,
) -> Claim | Remembered:
    """Reserve ``key`` for a request, unless it is already used; one transaction of its own.

    Parameters
    ----------
    store : Store
    owner, scope, key : str
    request_hash : str
        What identifies the request; a later request with the same key compares its own with it.
    status_code : int
        The status the first answer will have, recorded on completion.
    stale_before : datetime, optional
        A pending reservation made before this time is presumed abandoned (its process died) and is
        taken over.

    Returns
    -------
    Claim
        The key is this request's: create the resource, then :func:`complete` (or :func:`release`).
    Remembered
        The key is taken: by a completed request, or (``resource_id`` None) by one still creating.
    """
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"idempotency key must have 1 to {MAX_KEY_LENGTH} characters, got {len(key)}")
    claim = Claim(owner, scope, key, secrets.token_hex(16), status_code)
    try:
        with store.write() as session:
            row = session.scalar(select(IdempotencyKeyRow).where(_where(owner, scope, key)).with_for_update())
            if row is not None:
                if not (row.state == PENDING and stale_before is not None and row.created_at < stale_before):
                    return _entry(row)
                session.delete(row)
                session.flush()
            session.add(
                IdempotencyKeyRow(
                    owner=owner,
                    scope=scope,
                    key=key,
                    state=PENDING,
                    request_hash=request_hash,
                    resource_id=claim.token,
                    status_code=status_code,
                    created_at=utcnow(),
                )
            )
            session.flush()
    except IntegrityError:
        # A concurrent request inserted the key first (PostgreSQL: the unique index waited for it).
        with store.read() as session:
            row = session.scalar(select(IdempotencyKeyRow).where(_where(owner, scope, key)))
            if row is None:
                raise Conflict(f"idempotency key {key!r} is being used concurrently; retry") from None
            return _entry(row)
    return claim


def complete(session: Session | Connection, claim: Claim, resource_id: str) -> None:
    """Record, inside the creating transaction (an ORM session or a Core connection), that ``claim``'s key
    produced ``resource_id``.

    Raises
    ------
    Conflict
        When the reservation is no longer this request's (it was presumed abandoned and taken over):
        the creating transaction must roll back.
    """
    done = session.execute(
        update(IdempotencyKeyRow)
        .where(
            _where(claim.owner, claim.scope, claim.key),
            IdempotencyKeyRow.state == PENDING,
            IdempotencyKeyRow.resource_id == claim.token,
        )
        .values(state=DONE, resource_id=resource_id, status_code=claim.status_code)
        .execution_options(synchronize_session=False)
    )
    if getattr(done, "rowcount", 0) != 1:
        raise Conflict(f"the reservation of idempotency key {claim.key!r} was lost; retry the request")


def release(store: Store, claim: Claim) -> None:
    """Free the key of a reservation whose creation failed, so that a retry can use it."""
    with store.write() as session:
        session.execute(
            delete(IdempotencyKeyRow)
            .where(
                _where(claim.owner, claim.scope, claim.key),
                IdempotencyKeyRow.state == PENDING,
                IdempotencyKeyRow.resource_id == claim.token,
            )
            .execution_options(synchronize_session=False)
        )
