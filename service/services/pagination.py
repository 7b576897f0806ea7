"""Pages of a list, newest first: ``{"items": [...], "next_cursor": id or null}``, for every resource.

A cursor is the id of the last item of the previous page; the store reads the page after it. A bad
cursor is the same 422 on every resource.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from service.errors import field_error

R = TypeVar("R")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


def page(
    read: Callable[[int, str | None], tuple[Sequence[R], str | None]],
    limit: int,
    cursor: str | None,
    render: Callable[[Sequence[R]], list[dict[str, Any]]],
) -> dict[str, Any]:
    """One page: ``read(limit, cursor)`` from the store, each record rendered as the API shows it.

    Parameters
    ----------
    read : callable
        The store's list function for one owner: ``(limit, cursor) -> (records, next_cursor)``, raising
        ``ValueError`` for a cursor that is not an id of its kind.
    limit : int
        1 to ``MAX_LIMIT`` (the query parameter's bounds).
    cursor : str or None
        The previous page's ``next_cursor``; None for the first page.
    render : callable
        The records of the page to their API documents (all at once, so that one query can serve a page).

    Raises
    ------
    InvalidInput
        422 at ``["query", "cursor"]`` for a bad cursor, worded alike on every resource.
    """
    try:
        records, next_cursor = read(limit, cursor)
    except ValueError as exc:
        # limit (and any filter) is checked by the query parameter's type; only the cursor is left.
        # The store says "cursor must be a job id, …"; the error names the parameter itself.
        raise field_error("cursor", str(exc).removeprefix("cursor "), source="query") from None
    return {"items": render(records), "next_cursor": next_cursor}
