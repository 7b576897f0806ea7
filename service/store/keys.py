"""API keys: who they belong to, whether they are an administrator's, their limits, and revocation.

Only the SHA-256 of a key is stored (keys are long random strings, so a fast hash suffices: there is
nothing to guess); the key itself is shown once, by whoever creates it, and never stored or logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from service.errors import Conflict, NotFound
from service.store.db import Store, jsonable, utcnow
from service.store.records import KeyRecord
from service.store.tables import ApiKeyRow


def create_key(
    store: Store,
    *,
    key_id: str,
    owner: str,
    secret_sha256: str,
    admin: bool = False,
    note: str | None = None,
    limits: Mapping[str, Any] | None = None,
) -> KeyRecord:
    """Record a key by its id and the SHA-256 of its text.

    Raises
    ------
    Conflict
        When a key with this id exists already.
    """
    try:
        with store.write() as session:
            row = ApiKeyRow(
                id=key_id,
                owner=owner,
                admin=admin,
                note=note,
                secret_sha256=secret_sha256,
                limits=jsonable(dict(limits)) if limits else None,
                created_at=utcnow(),
                revoked_at=None,
            )
            session.add(row)
            session.flush()
            return KeyRecord.from_row(row)
    except IntegrityError as exc:
        raise Conflict(f"key {key_id!r} exists already") from exc


def find_key(store: Store, key_id: str) -> KeyRecord | None:
    """The key ``key_id`` (revoked or not), or None."""
    with store.read() as session:
        row = session.get(ApiKeyRow, key_id)
        return None if row is None else KeyRecord.from_row(row)


def list_keys(store: Store, owner: str | None = None) -> list[KeyRecord]:
    """Every key (of ``owner``, when given), oldest first."""
    with store.read() as session:
        stmt = select(ApiKeyRow).order_by(ApiKeyRow.id)
        if owner is not None:
            stmt = stmt.where(ApiKeyRow.owner == owner)
        return [KeyRecord.from_row(row) for row in session.scalars(stmt)]


def revoke_key(store: Store, key_id: str) -> KeyRecord:
    """Revoke a key (for good; revoking it again changes nothing).

    Raises
    ------
    NotFound
    """
    with store.write() as session:
        row = session.get(ApiKeyRow, key_id, with_for_update=True)
        if row is None:
            raise NotFound.resource("key", key_id)
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            session.flush()
        return KeyRecord.from_row(row)
