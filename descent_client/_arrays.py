"""NumPy arrays to request bodies and back, and matrices read from files (CSV, .npy, .npz, JSON)."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import orjson

Array = np.ndarray[Any, Any]


def _default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(body: Any) -> bytes:
    """JSON bytes of ``body``; NumPy arrays and scalars become lists and numbers."""
    return orjson.dumps(body, default=_default, option=orjson.OPT_SERIALIZE_NUMPY)


def matrix(X: Any, name: str = "X") -> Array:
    """``X`` as a finite 2-D float64 array (a 1-D array is one sample); ValueError naming what is wrong."""
    array = np.asarray(X)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold numbers, got dtype {array.dtype}")
    array = np.ascontiguousarray(array, dtype=np.float64)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {list(array.shape)}")
    bad = np.argwhere(~np.isfinite(array))
    if len(bad):
        raise ValueError(f"{name} must be finite, got {array[tuple(bad[0])]} at {bad[0].tolist()}")
    return array


def labels(y: Any, name: str = "y") -> Array:
    """``y`` as a 1-D array of numbers or strings."""
    array = np.asarray(y)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D (n_samples,), got shape {list(array.shape)}")
    if array.dtype.kind == "O":
        array = array.astype(str)
    if array.dtype.kind not in "biufU":
        raise ValueError(f"{name} must hold numbers or strings, got dtype {array.dtype}")
    return array


def npz_bytes(**arrays: Array) -> bytes:
    """An ``.npz`` archive (``numpy.savez``, no pickled objects) of the named arrays."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


NPY_MEDIA_TYPE = "application/x-npy"
NPZ_MEDIA_TYPE = "application/x-npz"
#: Requests whose arrays hold more bytes than this go as .npy/.npz rather than JSON.
BINARY_THRESHOLD_BYTES = 64 * 1024


def npy_bytes(array: Any) -> bytes:
    """The ``.npy`` bytes of an array (what ``numpy.save`` writes), in one copy."""
    array = np.asarray(array)
    if not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(array))
    return b"".join([header.getvalue(), array.reshape(-1).view(np.uint8)])


def npy_array(body: bytes) -> Array:
    """The array of an ``.npy`` answer, viewed in place (read-only); never unpickled."""
    stream = io.BytesIO(body[: 12 + 65536])
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
    else:
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream)
    if dtype.hasobject:
        raise ValueError("the answer holds Python objects (dtype object), which are never unpickled")
    count = int(np.prod(shape, dtype=np.int64))
    flat = np.frombuffer(body, dtype=dtype, count=count, offset=stream.tell())
    return flat.reshape(shape[::-1]).T if fortran_order else flat.reshape(shape)


def npz_arrays(body: bytes) -> dict[str, Array]:
    """The members of an ``.npz`` answer by name (never unpickled)."""
    with np.load(io.BytesIO(body), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def unflatten(arrays: dict[str, Array]) -> dict[str, Any]:
    """Members named by dotted JSON paths back into the answer's structure: ``{"gradients.bias": b}``
    → ``{"gradients": {"bias": b}}``; numbers and strings (0-d arrays) become Python values and objects
    keyed 0 … n-1 become lists."""
    root: dict[str, Any] = {}
    for path, value in arrays.items():
        *parents, leaf = path.split(".")
        node = root
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value.item() if value.ndim == 0 else value
    return _lists(root)  # type: ignore[no-any-return]


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    items = {key: _lists(value) for key, value in node.items()}
    if items and all(key.isdigit() for key in items):
        return [items[str(i)] for i in range(len(items))]
    return items


def with_arrays(value: Any) -> Any:
    """A JSON answer with every list of numbers (or of such lists) as an ndarray, as ``unflatten``
    gives them from an ``.npz`` answer."""
    if isinstance(value, dict):
        return {key: with_arrays(item) for key, item in value.items()}
    if isinstance(value, list):
        if value and isinstance(value[0], dict):
            return [with_arrays(item) for item in value]
        return np.asarray(value)
    return value


def split_fields(body: dict[str, Any], prefix: str = "") -> tuple[dict[str, Array], dict[str, str]]:
    """A request body as ``.npz`` members (its arrays, by dotted path) and query parameters (the other
    fields, JSON-encoded)."""
    members: dict[str, Array] = {}
    query: dict[str, str] = {}
    for key, value in body.items():
        name = f"{prefix}{key}"
        if value is None:
            continue
        if isinstance(value, dict):
            m, q = split_fields(value, f"{name}.")
        elif isinstance(value, list | tuple) and value and isinstance(value[0], dict):
            m, q = split_fields({str(i): item for i, item in enumerate(value)}, f"{name}.")
        elif isinstance(value, np.ndarray | list | tuple):
            m, q = {name: np.asarray(value)}, {}
        else:
            m, q = {}, {name: orjson.dumps(value, default=_default).decode()}
        members.update(m)
        query.update(q)
    return members, query


def npz_stored(arrays: dict[str, Array]) -> bytes:
    """An uncompressed ``.npz`` archive of the named arrays (what ``numpy.savez`` writes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            archive.writestr(f"{name}.npy", npy_bytes(array))
    return buffer.getvalue()


def is_large(*arrays: Any) -> bool:
    """Whether these arrays hold more than ``BINARY_THRESHOLD_BYTES`` of numbers (as float64)."""
    return sum(8 * np.size(a) for a in arrays if a is not None) > BINARY_THRESHOLD_BYTES


def label_array(values: list[Any]) -> Array:
    """Labels or predictions from JSON: numbers stay numbers, strings become a str array."""
    if any(isinstance(v, str) for v in values):
        return np.asarray([str(v) for v in values])
    return np.asarray(values)


def _csv_matrix(text: str, source: str) -> Array:
    rows = [row for row in csv.reader(io.StringIO(text)) if row and any(cell.strip() for cell in row)]
    if rows:
        try:
            [float(cell) for cell in rows[0]]
        except ValueError:
            rows = rows[1:]  # a header row
    try:
        return np.asarray([[float(cell) for cell in row] for row in rows], dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"{source}: every cell after the header must be a number ({exc})") from None


def read_matrix(path: str | Path, *, stdin: bytes | None = None) -> Array:
    """Rows of X from a file: CSV (an optional header row), ``.npy``, ``.npz`` (array ``X``) or JSON
    (``{"X": [[...]]}`` or a list of rows). ``stdin`` holds the bytes when ``path`` is ``-`` (JSON or CSV).
    """
    source = str(path)
    if source == "-":
        raw = stdin or b""
        text = raw.decode("utf-8")
        stripped = text.lstrip()
        if stripped.startswith(("{", "[")):
            return matrix(_json_rows(json.loads(text), "stdin"))
        return matrix(_csv_matrix(text, "stdin"))
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix == ".npy":
        return matrix(np.load(file, allow_pickle=False))
    if suffix == ".npz":
        with np.load(file, allow_pickle=False) as archive:
            if "X" not in archive.files:
                raise ValueError(f"{source}: the archive holds {archive.files}, not an array 'X'")
            return matrix(archive["X"])
    if suffix == ".json":
        return matrix(_json_rows(json.loads(file.read_text("utf-8")), source))
    return matrix(_csv_matrix(file.read_text("utf-8"), source))


def _json_rows(document: Any, source: str) -> Any:
    if isinstance(document, dict):
        if "X" not in document:
            raise ValueError(f"{source}: a JSON object must hold 'X', got keys {sorted(document)}")
        return document["X"]
    return document
