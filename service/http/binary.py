"""Arrays as binary bodies: NumPy ``.npy`` (one array) and ``.npz`` (named arrays), both ways.

A request body of type ``application/x-npy`` is the one array the endpoint names (``x`` of an
activation, ``X`` of forward and predict); ``application/x-npz`` holds the body's arrays as members
named by their JSON path (``X``, ``y``, ``model.weights``, ``model.parameters.0.weights``). The other
fields go in query parameters under the same names, each value read as JSON when it parses
(``derivative=true``, ``l2=0.01``, ``model={"type": "mlp", ...}``) and as a string otherwise
(``reduction=sum``). The fields are then put together into the very object a JSON body would have
given, arrays included, and validated and computed by the same code under the same limits.

An ``application/x-npz`` answer holds every field of the JSON answer under its path: arrays as they
are, numbers and strings as 0-d arrays, lists of strings as string arrays. An ``application/x-npy``
answer is the one array the endpoint names (``y``, ``outputs``, ``predictions``); an answer holding
further arrays (a derivative, intermediates, gradients, probabilities) is a 406 naming them.

Nothing is ever unpickled: member headers are read and checked (dtype, size) before their data, and
only numeric and boolean dtypes are accepted in requests.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from service.errors import NotAcceptable, PayloadTooLarge, UnsupportedMediaType, field_error
from service.http import npy

Array = np.ndarray[Any, Any]

NPY_MEDIA_TYPE = npy.MEDIA_TYPE
NPZ_MEDIA_TYPE = "application/x-npz"
#: Members an ``.npz`` request body may hold (a request has a handful of arrays).
MAX_MEMBERS = 256
_PREFIX_BYTES = 12 + npy.MAX_HEADER_BYTES
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*")


@dataclass(frozen=True, slots=True)
class ArrayFields:
    """The fields a lone ``.npy`` array stands for on one endpoint.

    Attributes
    ----------
    request : str or None
        The field an ``application/x-npy`` request body fills; None when the endpoint needs
        several arrays (send ``.npz``).
    response : str or None
        The field an ``application/x-npy`` answer holds; None when every answer has several arrays.
    """

    request: str | None = None
    response: str | None = None


# ---- requests ------------------------------------------------------------------------------------


def request_fields(
    raw: bytes,
    kind: str,
    query: Iterable[tuple[str, str]],
    fields: ArrayFields,
    max_elements: int,
    max_bytes: int | None = None,
) -> dict[str, Any]:
    """The body object of a binary request: its arrays (``.npy`` or ``.npz``) and its query fields.

    Raises
    ------
    InvalidInput
        422 for a body that is not an acceptable array or archive, a member or query parameter whose
        name is not a field path, a field given twice, and an array over ``max_elements``.
    PayloadTooLarge
        413 for an ``.npz`` archive whose arrays hold more than ``max_bytes`` once decompressed (the
        body-size limit, which a compressed archive must not get round).
    UnsupportedMediaType
        415 for a ``.npy`` body on an endpoint that needs several arrays.
    """
    if kind == "npy":
        if fields.request is None:
            raise UnsupportedMediaType(
                "this endpoint takes several arrays, more than one application/x-npy body holds: send"
                " them as the members of an application/x-npz body (or as JSON)"
            )
        arrays = {fields.request: _npy_body(raw, fields.request, max_elements)}
    else:
        arrays = read_npz(raw, max_elements, max_bytes)
    flat = query_fields(query)
    for name in arrays:
        if name in flat:
            raise field_error(name, "is given twice: as an array of the body and as a query parameter")
    flat.update(arrays)
    return unflatten(flat)


def _npy_body(raw: bytes, name: str, max_elements: int) -> Array:
    try:
        shape, fortran, dtype, offset = npy.read_header(raw)
        count = npy.check_header(shape, dtype)
        _check_size(name, count, max_elements)
        return npy.view(raw, shape, fortran, dtype, offset)
    except npy.NpyError as exc:
        raise field_error(name, f"(the application/x-npy body) {exc}") from None


def _check_size(name: str, count: int, max_elements: int) -> None:
    if count > max_elements:  # as the JSON path words it (arrays.to_array)
        raise field_error(name, f"holds {count} numbers; the limit is {max_elements}")


def read_npz(raw: bytes, max_elements: int, max_bytes: int | None = None) -> dict[str, Array]:
    """The members of an ``.npz`` request body by name, each checked before its data is read."""
    budget = [max_bytes if max_bytes is not None else len(raw)]
    if not raw.startswith(b"PK"):
        raise field_error("", "is not an .npz archive (a zip of .npy files, as numpy.savez writes)")
    arrays: dict[str, Array] = {}
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            members = archive.infolist()
            if len(members) > MAX_MEMBERS:
                raise field_error("", f"holds {len(members)} members; at most {MAX_MEMBERS} are accepted")
            for info in members:
                name = info.filename.removesuffix(".npy")
                if not info.filename.endswith(".npy") or not _NAME.fullmatch(name):
                    raise field_error(
                        "",
                        f"holds member {info.filename!r}: members are .npy arrays named by their field"
                        " path, such as X.npy or model.weights.npy",
                    )
                if name in arrays:
                    raise field_error(name, "is given twice in the archive")
                with archive.open(info) as member:
                    arrays[name] = _npz_member(member, name, max_elements, budget, max_bytes)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, NotImplementedError) as exc:
        raise field_error("", f"is not a readable .npz archive: {exc}") from None
    return arrays


def _npz_member(member: Any, name: str, max_elements: int, budget: list[int], max_bytes: int | None) -> Array:
    prefix = member.read(_PREFIX_BYTES)
    try:
        shape, fortran, dtype, offset = npy.read_header(prefix)
        count = npy.check_header(shape, dtype)
        _check_size(name, count, max_elements)
        budget[0] -= count * dtype.itemsize
        if budget[0] < 0 and max_bytes is not None:
            raise PayloadTooLarge(
                f"the .npz archive's arrays hold more than {max_bytes} bytes once decompressed (at"
                f" member {name}.npy); the limit is the body's, DESCENT_MAX_BODY_BYTES"
            )
        wanted = count * dtype.itemsize - (len(prefix) - offset)
        # One byte more than the header announces, to tell trailing bytes from an exact fit.
        data = prefix[offset:] + member.read(wanted + 1) if wanted >= 0 else prefix[offset:]
        return npy.view(data, shape, fortran, dtype, 0)
    except npy.NpyError as exc:
        raise field_error(name, f"(member {name}.npy) {exc}") from None


def query_fields(query: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Query parameters as fields: each value read as JSON if it parses (``true``, ``0.1``, ``[1, 2]``,
    ``{"type": ...}``), as a string otherwise (``sum``)."""
    fields: dict[str, Any] = {}
    for key, value in query:
        if key in fields:
            raise field_error(key, "is given twice", source="query")
        if not _NAME.fullmatch(_dotted(key)):
            raise field_error(key, "is not a field path such as derivative or model.type", source="query")
        try:
            fields[key] = orjson.loads(value)
        except orjson.JSONDecodeError:
            fields[key] = value
    return fields


def _dotted(path: str) -> str:
    """``model.parameters[0].weights`` (as messages write it) → ``model.parameters.0.weights``."""
    return path.replace("[", ".").replace("]", "")


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted paths to the nested object: ``{"model.parameters.0.bias": b}`` →
    ``{"model": {"parameters": [{"bias": b}]}}``. 0-d arrays become Python numbers; objects whose keys
    are the indices 0 … n-1 become lists."""
    root: dict[str, Any] = {}
    for path, value in flat.items():
        *parents, leaf = _dotted(path).split(".")
        node = root
        for i, key in enumerate(parents):
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise field_error(
                    ".".join(parents[: i + 1]), f"is given twice (as a value and through {path})"
                )
            node = child
        if leaf in node:
            raise field_error(path, "is given twice")
        node[leaf] = value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value
    return _listify(root, "")  # type: ignore[no-any-return]


def _listify(node: Any, path: str) -> Any:
    if not isinstance(node, dict):
        return node
    items = {key: _listify(value, f"{path}.{key}".lstrip(".")) for key, value in node.items()}
    if items and all(key.isdigit() for key in items):
        indices = sorted(int(key) for key in items)
        if indices != list(range(len(indices))):
            raise field_error(path, f"has entries {indices}; a list's entries are numbered 0, 1, 2, …")
        return [items[str(i)] for i in indices]
    return items


# ---- responses -----------------------------------------------------------------------------------


def npz_bytes(content: Mapping[str, Any]) -> bytes:
    """An uncompressed ``.npz`` archive of every field of ``content`` (see ``flatten``)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in flatten(content).items():
            archive.writestr(f"{name}.npy", npy.dumps(array))
    return buffer.getvalue()


def flatten(content: Mapping[str, Any], prefix: str = "") -> dict[str, Array]:
    """Every field of a JSON answer as an array named by its dotted path (nulls are left out)."""
    out: dict[str, Array] = {}
    for key, value in content.items():
        name = f"{prefix}{key}"
        if value is None:
            continue
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, list | tuple) and value and isinstance(value[0], Mapping):
            for i, item in enumerate(value):
                out.update(flatten(item, f"{name}.{i}."))
        else:
            out[name] = np.asarray(value)
    return out


def npy_parts(content: Mapping[str, Any], fields: ArrayFields) -> tuple[bytes, memoryview]:
    """The ``.npy`` answer, as its header and the array's bytes (``npy.parts``): the endpoint's one
    array; 406 when the answer holds other arrays too."""
    others = [key for key, value in content.items() if key != fields.response and _is_array(value)]
    if fields.response is None or others:
        held = ", ".join([k for k in (fields.response,) if k] + others)
        raise NotAcceptable(
            f"this answer holds several arrays ({held}), more than one application/x-npy array can;"
            " accept application/x-npz (one member each) or application/json"
        )
    return npy.parts(np.asarray(content[fields.response]))


def _is_array(value: Any) -> bool:
    """An array, or an object or list of objects holding one (not a shape, classes or parameters)."""
    if isinstance(value, np.ndarray):
        return True
    if isinstance(value, Mapping):
        return any(_is_array(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(isinstance(item, Mapping) and _is_array(item) for item in value)
    return False
