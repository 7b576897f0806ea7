"""API keys: ``dsk_`` + the key id's 24 hex digits + 43 random URL-safe characters (256 bits).

The id inside the key finds its record; the key is then checked against the stored SHA-256 in
constant time (:func:`hmac.compare_digest`). The key itself is shown once, when it is made, and is
never stored or logged: records, documents and logs carry the id (``key_...``) only.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Mapping
from typing import Any, NamedTuple

from service.errors import Conflict, InvalidInput, Unauthorized
from service.settings import RATE_PATTERN, Settings
from service.store import KeyRecord, Store, create_key, find_key, list_keys, revoke_key
from service.store.db import new_id

KEY_PREFIX = "dsk_"
_KEY = re.compile(r"dsk_(?P<id>[0-9a-f]{24})[A-Za-z0-9_-]{43}")
BOOTSTRAP_OWNER = "admin"
_OWNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")

audit = logging.getLogger("descent.audit")


class NewKey(NamedTuple):
    """A key just made: its record, and the key itself (shown once, stored nowhere)."""

    record: KeyRecord
    key: str


def generate() -> tuple[str, str]:
    """A new key's id and text: ``("key_<24 hex>", "dsk_<24 hex><43 random characters>")``."""
    key_id = new_id("key")
    return key_id, KEY_PREFIX + key_id.removeprefix("key_") + secrets.token_urlsafe(32)


def parse_key(text: str) -> str | None:
    """The id of the key ``text`` (``key_...``), or None when it is not shaped like a key."""
    match = _KEY.fullmatch(text)
    return None if match is None else "key_" + match["id"]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def check_limits(limits: Mapping[str, Any]) -> dict[str, Any]:
    """A key's overrides checked: non-negative numbers for quotas and the rate limit's burst, ``N/unit`` or
    "" for the rate limit."""
    checked: dict[str, Any] = {}
    for name, value in limits.items():
        if value is None:
            continue
        if name == "rate_limit":
            if value != "" and not RATE_PATTERN.fullmatch(str(value)):
                raise InvalidInput(f"rate limit must look like 20/second or 600/minute, got {value!r}")
            checked[name] = str(value)
        elif name in ("jobs", "datasets", "models", "stored_mb", "rate_limit_burst"):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                kind = "limit" if name == "rate_limit_burst" else "quota"
                raise InvalidInput(f"{kind} {name} must be a non-negative number, got {value!r}")
            checked[name] = value if name == "stored_mb" else int(value)
        else:
            raise InvalidInput(f"unknown limit {name!r}")
    return checked


def create(
    store: Store,
    *,
    owner: str,
    admin: bool = False,
    note: str | None = None,
    limits: Mapping[str, Any] | None = None,
) -> NewKey:
    """Make a key for ``owner`` and record its hash; the key itself is returned, once."""
    if not _OWNER.fullmatch(owner):
        raise InvalidInput(
            f"owner must be 1 to 128 letters, digits or ._@- (starting with a letter or digit), got {owner!r}"
        )
    key_id, key = generate()
    record = create_key(
        store,
        key_id=key_id,
        owner=owner,
        secret_sha256=_sha256(key),
        admin=admin,
        note=note,
        limits=check_limits(limits or {}),
    )
    audit.info("key created", extra={"key_id": key_id, "owner": owner, "admin": admin})
    return NewKey(record, key)


def revoke(store: Store, key_id: str) -> KeyRecord:
    """Revoke a key for good (``NotFound`` when there is none with this id)."""
    record = revoke_key(store, key_id)
    audit.info("key revoked", extra={"key_id": key_id, "owner": record.owner})
    return record


def key_document(record: KeyRecord) -> dict[str, Any]:
    """A key as listed: never the key, nor its hash."""
    return {
        "id": record.id,
        "owner": record.owner,
        "admin": record.admin,
        "note": record.note,
        "limits": record.limits,
        "created_at": record.created_at.isoformat(),
        "revoked_at": None if record.revoked_at is None else record.revoked_at.isoformat(),
    }


def list_documents(store: Store, owner: str | None = None) -> list[dict[str, Any]]:
    """Every key (of ``owner``), oldest first, as :func:`key_document` shows them."""
    return [key_document(record) for record in list_keys(store, owner)]


def authenticate(store: Store, presented: str) -> KeyRecord:
    """The record of a valid key.

    Raises
    ------
    Unauthorized
        When ``presented`` is not shaped like a key, or is unknown or revoked.
    """
    key_id = parse_key(presented)
    if key_id is None:
        raise Unauthorized(f"the API key is malformed: expected {KEY_PREFIX} followed by 67 characters")
    record = find_key(store, key_id)
    # compare_digest: how long the comparison takes says nothing of how much of the hash matched.
    if record is None or not hmac.compare_digest(_sha256(presented), record.secret_sha256):
        raise Unauthorized("the API key is not known")
    if record.revoked_at is not None:
        raise Unauthorized("the API key was revoked")
    return record


def ensure_bootstrap_key(store: Store, settings: Settings) -> None:
    """Record DESCENT_BOOTSTRAP_KEY as an admin key of owner ``admin`` unless the store has it.

    A key revoked since stays revoked. Raises ``ValueError`` when the setting is not a key.
    """
    key = "" if settings.bootstrap_key is None else settings.bootstrap_key.get_secret_value().strip()
    if not key:  # unset, or set empty (docker compose without the variable)
        return
    key_id = parse_key(key)
    if key_id is None:
        raise ValueError(
            f"DESCENT_BOOTSTRAP_KEY is not an API key ({KEY_PREFIX} followed by 67 characters); "
            "make one with `descent keys generate`"
        )
    existing = find_key(store, key_id)
    if existing is not None:
        if not hmac.compare_digest(_sha256(key), existing.secret_sha256):
            raise ValueError("DESCENT_BOOTSTRAP_KEY has the id of another key; make a new one")
        return
    try:
        create_key(
            store,
            key_id=key_id,
            owner=BOOTSTRAP_OWNER,
            secret_sha256=_sha256(key),
            admin=True,
            note="bootstrap key (DESCENT_BOOTSTRAP_KEY)",
        )
    except Conflict:  # another replica recorded it first
        return
    audit.info("key created", extra={"key_id": key_id, "owner": BOOTSTRAP_OWNER, "admin": True})
