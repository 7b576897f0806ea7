"""Fast JSON in and out: orjson for the bytes, NumPy for the arrays, pydantic only for the small fields.

Big arrays never go through pydantic (``list[float]`` validation is several times slower than
``orjson.loads`` followed by ``np.asarray``); request models declare them as ``Any`` with a JSON
schema for the docs, and :func:`to_array` converts and checks them.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.to_thread
import numpy as np
import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse as StarletteJSONResponse
from starlette.responses import Response

from service.errors import InvalidInput, UnsupportedMediaType, validation_error

Array = np.ndarray[Any, Any]
M = TypeVar("M", bound=BaseModel)

JSON_MEDIA_TYPE = "application/json"
# Bodies from this size (about 15,000 numbers) are parsed and computed in a worker thread, so that
# large requests never hold the event loop for long; below it the thread hop would cost more.
OFFLOAD_BYTES = 256 * 1024
# Below this size the exact per-element checks are cheaper than counting bytes.
_BYTE_SCAN_MIN = 64 * 1024
_QUOTE = ord('"')
# JSON numbers, brackets, commas and whitespace are all bytes up to "e"; every letter of true, false
# and null but "a" and "e", braces, and non-ASCII bytes are above it.
_ABOVE_E = ord("e")


@dataclass(frozen=True, slots=True)
class JSONBody:
    """A parsed request body.

    Attributes
    ----------
    data : dict
        The top-level JSON object.
    scan_booleans : bool
        False when the raw bytes prove that the arrays of the body hold numbers and nested arrays
        only (no ``true``/``false``, null, string or object), so :func:`to_array` can convert them
        straight to float64 and skip its per-element checks.
    """

    data: dict[str, Any]
    scan_booleans: bool = True


def check_json_content_type(content_type: str | None) -> None:
    """Accept ``application/json`` and ``application/*+json`` (any parameters); 415 otherwise."""
    if content_type == JSON_MEDIA_TYPE:
        return
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == JSON_MEDIA_TYPE or (media.startswith("application/") and media.endswith("+json")):
        return
    shown = repr(content_type) if content_type else "none"
    raise UnsupportedMediaType(f"the request body must be JSON (Content-Type: application/json), got {shown}")


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
        raise field_error("", f"must be a JSON object, got {_json_type(data)}")
    return JSONBody(data, _may_hold_non_numbers(raw, data))


_LOC_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def field_loc(name: str) -> list[str | int]:
    """``"model.parameters[0].weights"`` → ``["body", "model", "parameters", 0, "weights"]``."""
    parts: list[str | int] = ["body"]
    for key, index in _LOC_PART.findall(name):
        parts.append(int(index) if index else key)
    return parts


def field_error(name: str, msg: str) -> InvalidInput:
    """A 422 about one request field: the detail reads "<name> <msg>", the loc starts with "body"."""
    return InvalidInput(f"{name or 'the request body'} {msg}", errors=[{"loc": field_loc(name), "msg": msg}])


def validate(model: type[M], body: JSONBody) -> M:
    """Validate the body's small fields with ``model`` (array fields are ``Any`` and pass through)."""
    try:
        return model.model_validate(body.data)
    except ValidationError as exc:
        raise validation_error(exc.errors(include_input=False, include_url=False), prefix=("body",)) from None


def to_array(
    value: Any,
    name: str,
    *,
    ndim: int | tuple[int, ...] | None = None,
    min_size: int = 1,
    max_elements: int,
    scan_booleans: bool = True,
) -> Array:
    """Convert a JSON number or nested list to a float64 array, or raise 422 naming the field.

    Parameters
    ----------
    value : number or nested list
        As parsed from JSON.
    name : str
        The field's name in messages, e.g. ``"X"`` or ``"model.weights"``.
    ndim : int or tuple of int, optional
        The allowed numbers of dimensions; None allows any (0 for a single number).
    min_size : int
        Fewest elements allowed (1 rejects empty arrays).
    max_elements : int
        Most elements allowed.
    scan_booleans : bool
        Check every element for ``true``/``false``, strings and nulls. Pass ``JSONBody.scan_booleans``,
        which is False when the raw body has proven its arrays hold numbers only: the value is then
        converted straight to float64.

    Returns
    -------
    ndarray of float64, of the value's shape

    Raises
    ------
    InvalidInput
        For ragged nested lists, non-numbers, booleans, the wrong number of dimensions, too few or
        too many elements, and non-finite values.
    """
    known_finite = False
    if isinstance(value, list):
        arr, known_finite = _list_to_array(value, name, scan_booleans)
    elif isinstance(value, bool):
        raise _bad_leaf(name, value)
    elif isinstance(value, int | float):
        arr = np.asarray(_to_float(value, name))
    else:
        raise field_error(name, f"must be a number or a nested array of numbers, got {_json_type(value)}")
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if allowed is not None and arr.ndim not in allowed:
        wanted = " or ".join(str(d) for d in allowed)
        raise field_error(name, f"must have {wanted} dimension(s), got {arr.ndim} (shape {list(arr.shape)})")
    size = arr.size
    if size < min_size:
        msg = "must not be empty" if min_size == 1 else f"must hold at least {min_size} numbers"
        raise field_error(name, f"{msg}, got shape {list(arr.shape)}")
    if size > max_elements:
        raise field_error(name, f"holds {size} numbers; the limit is {max_elements}")
    if not known_finite and not np.isfinite(arr).all():
        raise field_error(name, "must hold finite numbers only, found NaN or infinity")
    return arr


_NUMBER_TYPES = frozenset({float, int})


def _list_to_array(value: list[Any], name: str, scan_booleans: bool) -> tuple[Array, bool]:
    """The float64 array of a nested list, and whether it is already known to be finite."""
    if scan_booleans and set(map(type, value)) <= _NUMBER_TYPES:
        # A flat list of numbers (the usual small request): its element types are all the checks
        # need, numpy converts it without first discovering its type, and as NaN and infinities
        # carry through a sum, a finite sum proves every number finite (an infinite one may be an
        # overflow, which the exact check afterwards tells apart).
        try:
            return np.array(value, dtype=np.float64), math.isfinite(sum(value))
        except OverflowError:
            pass  # an integer beyond float64: the general path below says so
    return _nested_to_array(value, name, scan_booleans), False


def _nested_to_array(value: list[Any], name: str, scan_booleans: bool) -> Array:
    if not scan_booleans:
        try:
            return np.asarray(value, dtype=np.float64)
        except (ValueError, TypeError):
            pass  # ragged, or objects in a list the byte count walked: the exact checks say which
    try:
        # No dtype: numpy's own type discovery flags strings, nulls and objects for us at C speed.
        arr = np.asarray(value)
    except ValueError:
        raise field_error(name, _ragged_message(value, name)) from None
    kind = arr.dtype.kind
    if kind == "f":
        arr = arr.astype(np.float64, copy=False)
    elif kind in "iu":
        arr = arr.astype(np.float64)
    elif kind == "O" and arr.ndim >= 1 and _all_numbers(value):
        # Integers beyond 64 bits make numpy fall back to objects; most still convert to float.
        try:
            return np.asarray(value, dtype=np.float64)
        except OverflowError:
            raise field_error(
                name, "must hold finite numbers only, found an integer beyond float64"
            ) from None
    else:
        raise _first_bad_leaf(value, name)
    if arr.size and bool in _leaf_types(value, arr.ndim):
        raise _first_bad_leaf(value, name)
    return arr


def _to_float(value: int | float, name: str) -> float:
    try:
        return float(value)
    except OverflowError:
        raise field_error(name, "must be finite, got an integer beyond float64") from None


def _leaf_types(value: list[Any], ndim: int) -> set[type]:
    flat: Any = value
    for _ in range(ndim - 1):
        flat = itertools.chain.from_iterable(flat)
    return set(map(type, flat))


def _all_numbers(value: Any) -> bool:
    if isinstance(value, list):
        return all(_all_numbers(v) for v in value)
    return isinstance(value, int | float) and not isinstance(value, bool)


def _bad_leaf(path: str, leaf: Any) -> InvalidInput:
    return field_error(path, f"must be a number, got {_json_type(leaf)}")


def _first_bad_leaf(value: Any, name: str) -> InvalidInput:
    """The first element that is not a number, with its index path."""
    stack: list[tuple[str, Any]] = [(name, value)]
    while stack:
        path, v = stack.pop()
        if isinstance(v, list):
            stack.extend((f"{path}[{i}]", item) for i, item in reversed(list(enumerate(v))))
        elif isinstance(v, bool) or not isinstance(v, int | float):
            return _bad_leaf(path, v)
    return field_error(name, "must be a nested array of numbers")


def _ragged_message(value: list[Any], name: str) -> str:
    """Say where a nested list stops being rectangular."""
    level: list[tuple[str, Any]] = [(name, value)]
    while level:
        lists = [(p, v) for p, v in level if isinstance(v, list)]
        if lists and len(lists) != len(level):
            path, first = level[0]
            odd = next(p for p, v in level if isinstance(v, list) != isinstance(first, list))
            what = "an array" if isinstance(first, list) else "a number"
            return f"is a ragged nested array: {odd} does not match {path}, which is {what}"
        if not lists:
            break
        lengths = {len(v) for _, v in lists}
        if len(lengths) > 1:
            (p0, v0) = lists[0]
            p1, v1 = next((p, v) for p, v in lists if len(v) != len(v0))
            return f"is a ragged nested array: {p1} has {len(v1)} entries but {p0} has {len(v0)}"
        level = [(f"{p}[{i}]", item) for p, v in lists for i, item in enumerate(v)]
    return "is not a rectangular nested array of numbers"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def _may_hold_non_numbers(raw: bytes, data: dict[str, Any]) -> bool:
    """Whether some array of this body may hold something other than numbers and nested arrays.

    Inside an array of numbers every byte is a digit, sign, point, "e"/"E", bracket, comma or
    whitespace: none is above "e" and none is a quote. A boolean, null, string or object brings at
    least one such byte. So counting those bytes in the whole body and comparing with the count
    outside the numeric-looking arrays (keys, strings, literals, braces) proves the arrays clean when
    the two match. An escape could hide a byte (``\\u0074``), so any backslash keeps the exact checks.
    """
    if len(raw) < _BYTE_SCAN_MIN or b"\\" in raw:
        return True
    buf = np.frombuffer(raw, dtype=np.uint8)
    found = (int(np.count_nonzero(buf > _ABOVE_E)), int(np.count_nonzero(buf == _QUOTE)))
    return found != _bytes_outside_arrays(data)


def _high_bytes(text: str) -> int:
    return sum(b > _ABOVE_E for b in text.encode())


_LITERAL_HIGH_BYTES = {True: 3, False: 3, None: 4}  # "tru", "fls", "null"


def _bytes_outside_arrays(value: Any) -> tuple[int, int]:
    """(bytes above "e", quotes) of ``value`` as JSON, skipping every list but lists of objects."""
    if isinstance(value, dict):
        high, quotes = 2, 0  # the braces
        for key, item in value.items():
            item_high, item_quotes = _bytes_outside_arrays(item)
            high += _high_bytes(key) + item_high
            quotes += 2 + item_quotes
        return high, quotes
    if isinstance(value, list):
        # Lists of objects (layers, parameters) are structure; any other list may reach to_array, so
        # it is left out of the count: a string or literal inside it then makes the counts differ.
        if value and isinstance(value[0], dict):
            high = quotes = 0
            for item in value:
                item_high, item_quotes = _bytes_outside_arrays(item)
                high, quotes = high + item_high, quotes + item_quotes
            return high, quotes
        return 0, 0
    if isinstance(value, str):
        return _high_bytes(value), 2
    if value is None or isinstance(value, bool):
        return _LITERAL_HIGH_BYTES[value], 0
    return 0, 0


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return np.ascontiguousarray(obj).tolist() if obj.ndim else obj.item()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, tuple | set | frozenset):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def dumps(content: Any) -> bytes:
    """Serialize with orjson; ndarrays are written natively (no ``.tolist()``)."""
    return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY, default=_default)


class JSONResponse(StarletteJSONResponse):
    """``application/json`` rendered by orjson, with NumPy arrays and scalars serialized natively."""

    def render(self, content: Any) -> bytes:
        return dumps(content)


async def respond_json(
    request: Request, work: Callable[[JSONBody], Mapping[str, Any]], *, offload: bool | None = None
) -> Response:
    """Read a JSON body, run ``work`` on it and answer its result as JSON.

    Parsing, the computation and rendering run in a worker thread when ``offload`` is true, or
    when it is None and the body is at least ``OFFLOAD_BYTES`` long.
    """
    raw = await read_json_bytes(request)

    def run() -> Response:
        return JSONResponse(work(parse_json(raw)))

    if offload or (offload is None and len(raw) >= OFFLOAD_BYTES):
        limiter = getattr(request.app.state, "compute_limiter", None)
        return await anyio.to_thread.run_sync(run, limiter=limiter)
    return run()


def ensure_finite(content: Any) -> None:
    """Raise 422 when a result holds NaN or infinity (orjson would write ``null``), naming the field."""
    path = _non_finite_path(content)
    if path is not None:
        raise _not_finite(path)


_SCALARS = (str, int, bool, type(None))


def _non_finite_path(content: Any) -> list[str | int] | None:
    """The key/index path of the first NaN or infinity in ``content``, or None."""
    kind = type(content)
    if kind is np.ndarray:
        if content.dtype.kind in "fc" and not np.isfinite(content).all():
            return []
    elif kind is float or isinstance(content, np.floating):
        if not math.isfinite(content):
            return []
    elif kind is dict:
        for key, item in content.items():
            if type(item) not in _SCALARS and (sub := _non_finite_path(item)) is not None:
                return [key, *sub]
    elif kind is list or kind is tuple:
        for i, item in enumerate(content):
            if type(item) not in _SCALARS and (sub := _non_finite_path(item)) is not None:
                return [i, *sub]
    return None


def _not_finite(path: list[str | int]) -> InvalidInput:
    name = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".") or "the result"
    return InvalidInput(
        f"result is not finite: {name} overflowed float64 (NaN or infinity); use inputs of smaller magnitude",
        errors=[{"loc": ["response", *path], "msg": "is not finite (NaN or infinity)"}],
    )
