"""The ``Idempotency-Key`` header of the creating POSTs (jobs, datasets, models): its check, and replays.

A key names one request: sent again with the same request (same fingerprint), the answer is the resource
the key first created, and nothing is created twice; sent with a different request, it is a 409. Keys are
remembered per owner and scope (``"POST /v1/jobs"``).

The key is reserved in the store before anything is created, so that of N concurrent requests with one
key exactly one creates: the others wait (polling the store, up to ``wait_s``) for it to finish and
answer as a replay, or 409 "in progress" when it takes longer. The creation completes the reservation in
its own transaction; a creation that fails releases it, so a refused request does not use up its key.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Generic, TypeVar

from service.errors import Conflict, NotFound, StoreUnavailable, field_error
from service.store import Claim, Remembered, Store, recall, release, reserve
from service.store.db import utcnow

R = TypeVar("R")

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255  # the store's column
# A key: 1 to MAX_KEY_LENGTH printable ASCII characters (a UUID, say), with no space at either end, which
# HTTP strips from a header's value (" a " would arrive as "a").
KEY_PATTERN = f"^[!-~]([ -~]{{0,{MAX_KEY_LENGTH - 2}}}[!-~])?$"
_KEY = re.compile(KEY_PATTERN)
_LOC = ["header", HEADER.lower()]  # as field_error writes a header's loc
DEFAULT_WAIT_S = 10.0
# A reservation still pending after this long is presumed abandoned (its process died while creating)
# and may be taken over; far above the longest creation (a dataset upload at the body size limit).
ABANDONED_AFTER = timedelta(minutes=5)
_FIRST_POLL_S, _LAST_POLL_S = 0.02, 0.25


def check_key(key: str | None) -> str | None:
    """The key, or 422 unless it matches ``KEY_PATTERN``: 1 to ``MAX_KEY_LENGTH`` printable ASCII
    characters, the first and the last not a space."""
    if key is None:
        return None
    if _KEY.fullmatch(key) is None:
        msg = (
            f"must be 1 to {MAX_KEY_LENGTH} printable ASCII characters, the first and last not a space;"
            f" got {len(key)} characters{_spaced(key)}"
        )
        raise field_error(HEADER, msg, source="header")
    return key


def _spaced(key: str) -> str:
    """What is wrong with a key of the right length and characters: a space at its start or end."""
    if not (1 <= len(key) <= MAX_KEY_LENGTH and key.isascii() and key.isprintable()):
        return ""
    return ", the first a space" if key.startswith(" ") else ", the last a space"


@dataclass(frozen=True)
class Scope(Generic[R]):
    """What a key creates, and how a replay reads it.

    Attributes
    ----------
    name : str
        The scope keys are remembered in, e.g. ``"POST /v1/jobs"``.
    noun : str
        The resource in messages, e.g. ``"job"``.
    fetch : callable
        The resource by id, as the replay answers it; raises ``NotFound`` when it is gone.
    """

    name: str
    noun: str
    fetch: Callable[[str], R]


def create_once(
    store: Store,
    owner: str,
    scope: Scope[R],
    key: str | None,
    fingerprint: str,
    create: Callable[[Claim | None], R],
    *,
    status_code: int,
    wait_s: float = DEFAULT_WAIT_S,
) -> tuple[R, bool]:
    """Run ``create`` unless ``key`` already created a resource; then answer with that one.

    Parameters
    ----------
    store : Store
    owner : str
    scope : Scope
    key : str or None
        The checked key (see :func:`check_key`); None runs ``create(None)`` with no replay.
    fingerprint : str
        What identifies the request (e.g. a hash of its body); a key sent with another is a 409.
    create : callable
        Creates the resource, passing the claim to the store function that creates it (which completes
        the key in the same transaction); an exception releases the key.
    status_code : int
        The status of the first answer, remembered with the key.
    wait_s : float
        How long a request waits for a concurrent one with the same key to finish creating.

    Returns
    -------
    resource
    replayed : bool
        True when the key had already created ``resource`` (the same request sent again, or a concurrent
        one that won the key).

    Raises
    ------
    Conflict
        409 when the key was used with a different request, its resource has since been deleted, or a
        concurrent request with the key is still creating after ``wait_s``.
    """
    if key is None:
        return create(None), False
    deadline = time.monotonic() + wait_s
    delay = _FIRST_POLL_S
    outcome: Claim | Remembered | None = None
    while True:
        if outcome is None:  # the key is free (first pass, or its creator failed and released it)
            stale_before = utcnow() - ABANDONED_AFTER
            outcome = reserve(
                store, owner, scope.name, key, fingerprint, status_code, stale_before=stale_before
            )
        if isinstance(outcome, Claim):
            return _create(store, outcome, create), False
        stored, resource_id, _ = outcome
        if stored != fingerprint:
            raise _used_elsewhere(scope, key, resource_id)
        if resource_id is not None:
            return _replay(scope, key, resource_id), True
        if time.monotonic() >= deadline:
            raise Conflict(
                f"{HEADER} {key!r}: a request with this key is still creating its {scope.noun}; retry",
                errors=[{"loc": _LOC, "msg": "in progress"}],
                headers={"Retry-After": "1"},
            )
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, _LAST_POLL_S)
        # A read while waiting: the creator's write transactions are not held up by the waiters'.
        outcome = recall(store, owner, scope.name, key)


def _create(store: Store, claim: Claim, create: Callable[[Claim | None], R]) -> R:
    try:
        return create(claim)
    except BaseException:
        # The creation rolled back: free the key so that a retry may use it. A store that is down now
        # leaves the reservation pending until it is presumed abandoned.
        with contextlib.suppress(StoreUnavailable):
            release(store, claim)
        raise


def _used_elsewhere(scope: Scope[R], key: str, resource_id: str | None) -> Conflict:
    noun = scope.noun
    created = "" if resource_id is None else f", which created {noun} {resource_id!r}"
    return Conflict(
        f"{HEADER} {key!r} was already used with a different request{created};"
        f" use a new key for a new {noun}",
        errors=[{"loc": _LOC, "msg": "already used with a different request"}],
    )


def _replay(scope: Scope[R], key: str, resource_id: str) -> R:
    try:
        return scope.fetch(resource_id)
    except NotFound:
        raise Conflict(
            f"{HEADER} {key!r} created {scope.noun} {resource_id!r}, which has since been deleted;"
            " use a new key",
            errors=[{"loc": _LOC, "msg": f"its {scope.noun} was deleted"}],
        ) from None
