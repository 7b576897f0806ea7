"""The ``Idempotency-Key`` header of the creating POSTs (jobs, datasets): its check, and replays.

A key names one request: sent again with the same request (same fingerprint), the answer is the resource
the key first created, and nothing is created twice; sent with a different request, it is a 409. Keys are
remembered per owner and scope (``"POST /v1/jobs"``), only once the creation succeeded: a refused request
does not use up its key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from service.errors import Conflict, NotFound, field_error
from service.store import Store, recall, remember

R = TypeVar("R")

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255  # the store's column
_LOC = ["header", HEADER.lower()]  # as field_error writes a header's loc


def check_key(key: str | None) -> str | None:
    """The key, or 422 when it is empty, longer than ``MAX_KEY_LENGTH`` or not printable."""
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        msg = f"must be 1 to {MAX_KEY_LENGTH} printable characters, got {len(key)} characters"
        raise field_error(HEADER, msg, source="header")
    return key


@dataclass(frozen=True)
class Scope(Generic[R]):
    """What a key creates, and how the replay logic reads and withdraws it.

    Attributes
    ----------
    name : str
        The scope keys are remembered in, e.g. ``"POST /v1/jobs"``.
    noun : str
        The resource in messages, e.g. ``"job"``.
    id_of : callable
        The id of a created resource.
    fetch : callable
        The resource by id, as the replay answers it; raises ``NotFound`` when it is gone.
    withdraw : callable
        Undoes a creation whose key could not be remembered, or that lost a race to a concurrent
        request with the same key.
    """

    name: str
    noun: str
    id_of: Callable[[R], str]
    fetch: Callable[[str], R]
    withdraw: Callable[[R], None]


def create_once(
    store: Store,
    owner: str,
    scope: Scope[R],
    key: str | None,
    fingerprint: str,
    create: Callable[[], R],
    *,
    status_code: int,
) -> tuple[R, bool]:
    """Run ``create`` unless ``key`` already created a resource; then answer with that one.

    Parameters
    ----------
    store : Store
    owner : str
    scope : Scope
    key : str or None
        The checked key (see :func:`check_key`); None runs ``create`` with no replay.
    fingerprint : str
        What identifies the request (e.g. a hash of its body); a key sent with another is a 409.
    create : callable
        Creates the resource; an exception leaves the key unused.
    status_code : int
        The status of the first answer, remembered with the key.

    Returns
    -------
    resource
    replayed : bool
        True when the key had already created ``resource`` (the same request sent again).

    Raises
    ------
    Conflict
        409 when the key was used with a different request, or its resource has since been deleted.
    """
    if key is None:
        return create(), False
    entry = recall(store, owner, scope.name, key)
    if entry is not None:
        return _replay(scope, key, entry.resource_id, entry.request_hash, fingerprint), True
    resource = create()
    resource_id = scope.id_of(resource)
    try:
        entry = remember(store, owner, scope.name, key, fingerprint, resource_id, status_code)
    except BaseException:
        # The client is told the request failed: what it created must not stay behind its back.
        scope.withdraw(resource)
        raise
    if entry.resource_id != resource_id:
        # A concurrent request with the same key won the race: withdraw this duplicate, answer as a replay.
        scope.withdraw(resource)
        return _replay(scope, key, entry.resource_id, entry.request_hash, fingerprint), True
    return resource, False


def _replay(scope: Scope[R], key: str, resource_id: str, stored: str, fingerprint: str) -> R:
    noun = scope.noun
    if stored != fingerprint:
        raise Conflict(
            f"{HEADER} {key!r} was already used with a different request, which created {noun}"
            f" {resource_id!r}; use a new key for a new {noun}",
            errors=[{"loc": _LOC, "msg": "already used with a different request"}],
        )
    try:
        return scope.fetch(resource_id)
    except NotFound:
        raise Conflict(
            f"{HEADER} {key!r} created {noun} {resource_id!r}, which has since been deleted; use a new key",
            errors=[{"loc": _LOC, "msg": f"its {noun} was deleted"}],
        ) from None
