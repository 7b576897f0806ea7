"""Request bodies: read the bytes, parse the JSON with orjson, validate the small fields with pydantic.

Big arrays never go through pydantic (``list[float]`` validation is several times slower than
``orjson.loads`` followed by ``np.asarray``): request models declare them as ``Any`` with a JSON
schema for the docs, and ``service.http.arrays.to_array`` converts and checks them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from service.errors import InvalidInput, field_error, validation_error
from service.http.arrays import json_type
from service.http.bytescan import may_hold_non_numbers
from service.http.media import check_json_content_type

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class JSONBody:
    """A parsed request body.

    Attributes
    ----------
    data : dict
        The top-level JSON object.
    scan_booleans : bool
        False when the raw bytes prove that the arrays of the body hold numbers and nested arrays
        only (no ``true``/``false``, null, string or object), so ``to_array`` can convert them
        straight to float64 and skip its per-element checks.
    """

    data: dict[str, Any]
    scan_booleans: bool = True


async def read_json_bytes(request: Request) -> bytes:
    """Check the content type and read the whole body (the size limit is enforced by middleware)."""
    content_type = None
    # Straight from the ASGI scope: building request.headers costs more than the rest of a small call.
    for name, value in request.scope["headers"]:
        if name == b"content-type":
            content_type = value.decode("latin-1")
            break
    check_json_content_type(content_type)
    return await request.body()


def parse_json(raw: bytes) -> JSONBody:
    """Parse a JSON object with orjson; 422 naming the position for malformed JSON.

    orjson already rejects ``NaN``/``Infinity`` tokens and numbers that overflow a double (``1e999``).
    """
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # orjson's message ends with "line L column C (char P)"; keep its reason, restate the position.
        reason = exc.msg.split(": line ")[0] if exc.msg else "invalid JSON"
        position = f"line {exc.lineno}, column {exc.colno} (byte {exc.pos})"
        raise InvalidInput(
            f"malformed JSON at {position}: {reason}",
            errors=[{"loc": ["body"], "msg": f"{reason} at {position}"}],
        ) from None
    if not isinstance(data, dict):
        raise field_error("", f"must be a JSON object, got {json_type(data)}")
    if raw.count(b'"') != 2 * _quoted_tokens(data) or b"\\" in raw:
        # orjson keeps the last of repeated keys; a key it dropped leaves its quotes uncounted.
        _refuse_repeated_keys(raw)
    return JSONBody(data, may_hold_non_numbers(raw, data))


def _quoted_tokens(value: Any) -> int:
    """Keys and strings of ``value``, counting lists of numbers (or of lists) as holding none.

    Without escapes, a body with no repeated key has exactly two quote bytes per key and string; a
    list skipped here that does hold strings only sends the body to the exact check.
    """
    if isinstance(value, dict):
        return len(value) + sum(_quoted_tokens(item) for item in value.values())
    if isinstance(value, list):
        if value and isinstance(value[0], str | dict):
            return sum(_quoted_tokens(item) for item in value)
        return 0
    return 1 if isinstance(value, str) else 0


def _refuse_repeated_keys(raw: bytes) -> None:
    """422 naming the first key an object of the body repeats (the exact, slower check)."""

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise field_error("", f"repeats the key {key!r} in one object; each key may appear once")
            seen.add(key)
        return dict(pairs)

    json.loads(raw, object_pairs_hook=pairs_hook)


def validate(model: type[M], body: JSONBody) -> M:
    """Validate the body's small fields with ``model`` (array fields are ``Any`` and pass through).

    An integer field takes an integral number written with a fraction (``10.0``), which JSON Schema
    calls an integer too; a string (``"10"``) or a fraction (``10.5``) stays a 422.
    """
    try:
        return model.model_validate(body.data)
    except ValidationError as exc:
        if _integral_floats_to_int(body.data, exc):
            return validate(model, body)
        raise validation_error(exc.errors(include_input=False, include_url=False), prefix=("body",)) from None


def _integral_floats_to_int(data: Any, exc: ValidationError) -> bool:
    """Replace, in place, each float like ``10.0`` that an integer field refused by the int ``10``.

    Returns whether anything was replaced (else the errors stand as they are).
    """
    replaced = False
    for error in exc.errors(include_url=False):
        value = error.get("input")
        if error["type"] != "int_type" or not isinstance(value, float) or not value.is_integer():
            continue
        container, key = _parent(data, error["loc"])
        if container is not None and container[key] is value:
            container[key] = int(value)
            replaced = True
    return replaced


def _parent(data: Any, loc: tuple[int | str, ...]) -> tuple[Any, Any]:
    """The container and key of ``loc`` in ``data`` (steps naming a union's member are skipped)."""
    container: Any = None
    key: Any = None
    node = data
    for step in loc:
        if isinstance(node, dict) and isinstance(step, str) and step in node:
            container, key, node = node, step, node[step]
        elif isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
            container, key, node = node, step, node[step]
    return container, key
