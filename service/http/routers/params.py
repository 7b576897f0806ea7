"""Parameters shared by several routes: a registry name in the path, a page's limit and cursor, and the
Idempotency-Key header."""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated, Any

from fastapi import Query
from pydantic import WithJsonSchema
from starlette.requests import Request

from service.errors import field_error
from service.http.schemas.common import id_pattern
from service.services.idempotency import KEY_PATTERN, MAX_KEY_LENGTH
from service.services.pagination import DEFAULT_LIMIT, MAX_LIMIT

# The Idempotency-Key's limits are documented here but checked by service.services.idempotency, so that a
# bad key is the same 422 on every route (FastAPI's own check would word it differently).
# A header is absent or a string, never null: the document says string (a null there would be sent as an
# empty header).
IdempotencyKeyHeader = Annotated[
    str | None,
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": KEY_PATTERN}),
]


def registry_name(request: Request, kind: str, allowed: Collection[str]) -> str:
    """The ``name`` path parameter, or 422 naming the unknown value and listing the allowed ones."""
    name: str = request.path_params["name"]
    if name not in allowed:
        msg = f"unknown {kind} {name!r}; allowed: {', '.join(allowed)}"
        raise field_error("name", msg, source="path", detail=msg)
    return name


def LimitQuery(description: str) -> Any:
    """The ``limit`` query parameter of a list: 1 to ``MAX_LIMIT`` items on a page."""
    return Query(ge=1, le=MAX_LIMIT, description=description, examples=[DEFAULT_LIMIT])


def CursorQuery(description: str, example: str) -> Any:
    """The ``cursor`` query parameter of a list: the previous page's ``next_cursor``.

    The document states the shape of an id of the example's kind; the pagination helper checks it,
    so that a bad cursor reads the same on every list.
    """
    pattern = id_pattern(example.split("_", 1)[0])
    return Query(description=description, examples=[example], json_schema_extra={"pattern": pattern})
