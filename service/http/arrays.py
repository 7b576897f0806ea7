"""JSON values to NumPy arrays: nested lists of numbers become float64 arrays, or a 422 naming the element.

The checks are exact (ragged lists, booleans, strings, nulls, objects, integers beyond float64,
non-finite values, sizes) and cheap: numpy's own type discovery runs them at C speed, and a body
whose bytes prove its arrays hold numbers only (``service.http.bytescan``) skips them.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from service.errors import InvalidInput, field_error

Array = np.ndarray[Any, Any]


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
    if isinstance(value, np.ndarray):
        arr, known_finite = _binary_array(value, name)
    elif isinstance(value, list):
        arr, known_finite = _list_to_array(value, name, scan_booleans)
    elif isinstance(value, bool):
        raise _bad_leaf(name, value)
    elif isinstance(value, int | float):
        arr = np.asarray(_to_float(value, name))
    else:
        raise field_error(name, f"must be a number or a nested array of numbers, got {json_type(value)}")
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


def _binary_array(value: Array, name: str) -> tuple[Array, bool]:
    """An array from a binary body as float64 (no copy when it already is), and whether it is known
    finite. Booleans are refused as in JSON; integers are finite."""
    kind = value.dtype.kind
    if kind == "b":
        raise field_error(name, "must hold numbers, got an array of dtype bool")
    if kind in "iu":
        return value.astype(np.float64), True
    if kind != "f":
        raise field_error(name, f"must hold numbers, got an array of dtype {value.dtype}")
    arr = value.astype(np.float64, copy=False)
    with np.errstate(all="ignore"):
        # NaN and infinities carry through a sum: a finite sum proves every element finite in one pass
        # without a temporary (an overflowing sum only sends the array to the exact check).
        total = float(np.add.reduce(arr, axis=None)) if arr.size else 0.0
    return arr, math.isfinite(total)


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
    return field_error(path, f"must be a number, got {json_type(leaf)}")


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


def json_type(value: Any) -> str:
    """How a parsed JSON value reads in a message: "a string", "null", "an array"..."""
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
