"""NumPy's ``.npy`` format on the wire: read only after the header is trusted, written in one copy.

``np.load`` on a request body is unsafe even with ``allow_pickle=False``: it allocates the array a
hostile header claims before it reads the bytes that should fill it, accepts trailing bytes, and
parses the header with ``ast.literal_eval``. Here a body is trusted only after its header is:

1. the magic string and a format version of 1.0 or 2.0;
2. a header of at most ``MAX_HEADER_BYTES``, read by NumPy's own header reader;
3. a dtype from ``ALLOWED_DTYPES`` (no object, structured, void or string dtypes), either byte order;
4. the number of dimensions the field expects, and at most ``max_elements`` elements, counted in
   Python integers (no overflow);
5. exactly ``elements × itemsize`` bytes after the header: truncated bodies and trailing bytes are
   refused, and nothing is allocated from the header's word alone.

Only then does ``np.frombuffer`` view the bytes (zero-copy, read-only). Every refusal is a
``NpyError`` naming what is wrong; the HTTP layer turns it into a 422 problem.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
from numpy.lib import format as npy_format

Array = np.ndarray[Any, Any]

MAGIC = b"\x93NUMPY"
#: A plain array's header is about 118 bytes; NumPy's own cap is 10,000.
MAX_HEADER_BYTES = 1024
#: Kinds and sizes a request may send: floats, integers and booleans.
ALLOWED_DTYPES = frozenset({"f8", "f4", "i8", "i4", "u1", "b1"})
MEDIA_TYPE = "application/x-npy"


class NpyError(ValueError):
    """A body that is not an acceptable ``.npy`` array; the message names why."""


def _allowed(dtype: np.dtype[Any]) -> bool:
    return dtype.fields is None and not dtype.subdtype and f"{dtype.kind}{dtype.itemsize}" in ALLOWED_DTYPES


def read_header(body: bytes | memoryview) -> tuple[tuple[int, ...], bool, np.dtype[Any], int]:
    """Shape, Fortran order, dtype and the offset of the data, from a trusted-size header.

    Raises
    ------
    NpyError
        Not an npy body, an unsupported version, a header that is too long or malformed.
    """
    view = memoryview(body)
    if bytes(view[:6]) != MAGIC:
        raise NpyError("is not a .npy array: it does not start with the magic string \\x93NUMPY")
    if len(view) < 10:
        raise NpyError("is a truncated .npy array: the header is incomplete")
    version = (view[6], view[7])
    if version not in {(1, 0), (2, 0)}:
        raise NpyError(f"has .npy format version {version[0]}.{version[1]}; 1.0 and 2.0 are accepted")
    length_bytes = 2 if version == (1, 0) else 4
    header_length = int.from_bytes(view[8 : 8 + length_bytes], "little")
    if header_length > MAX_HEADER_BYTES:
        raise NpyError(
            f"has a {header_length}-byte .npy header; at most {MAX_HEADER_BYTES} bytes are accepted"
        )
    offset = 8 + length_bytes + header_length
    if len(view) < offset:
        raise NpyError("is a truncated .npy array: the header is incomplete")
    stream = io.BytesIO(view[:offset])
    try:
        npy_format.read_magic(stream)
        reader = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        shape, fortran_order, dtype = reader(stream, max_header_size=MAX_HEADER_BYTES)
    except (ValueError, SyntaxError, TypeError) as exc:
        raise NpyError(f"has a malformed .npy header ({exc})") from None
    return tuple(shape), bool(fortran_order), dtype, offset


def loads(
    body: bytes | memoryview, *, ndim: int | tuple[int, ...] | None = None, max_elements: int | None = None
) -> Array:
    """The array in an ``.npy`` body, viewed in place after every check passed (read-only).

    Parameters
    ----------
    body : bytes or memoryview
        The whole body.
    ndim : int or tuple of int, optional
        The number(s) of dimensions the field accepts.
    max_elements : int, optional
        Most elements accepted.

    Raises
    ------
    NpyError
        With a message naming the first check that failed.
    """
    shape, fortran_order, dtype, offset = read_header(body)
    check_header(shape, dtype, ndim=ndim, max_elements=max_elements)
    return view(body, shape, fortran_order, dtype, offset)


def check_header(
    shape: tuple[int, ...],
    dtype: np.dtype[Any],
    *,
    ndim: int | tuple[int, ...] | None = None,
    max_elements: int | None = None,
) -> int:
    """The number of elements a header announces, once its dtype, dimensions and size are accepted.

    Raises
    ------
    NpyError
        An object, structured, string or other refused dtype; the wrong number of dimensions; too
        many elements.
    """
    if dtype.hasobject:
        raise NpyError(
            "holds Python objects (dtype object), which are never unpickled; send numbers: float64,"
            " float32, int64, int32, uint8 or bool"
        )
    if not _allowed(dtype):
        raise NpyError(
            f"has dtype {dtype.str!r}; accepted: float64, float32, int64, int32, uint8 and bool"
            " (either byte order)"
        )
    if ndim is not None:
        accepted = (ndim,) if isinstance(ndim, int) else ndim
        if len(shape) not in accepted:
            wanted = " or ".join(str(n) for n in accepted)
            raise NpyError(f"has {len(shape)} dimensions (shape {list(shape)}); expected {wanted}")
    count = math.prod(shape)
    if max_elements is not None and count > max_elements:
        raise NpyError(f"has {count} elements; at most {max_elements} are accepted")
    return count


def view(
    body: bytes | memoryview, shape: tuple[int, ...], fortran_order: bool, dtype: np.dtype[Any], offset: int
) -> Array:
    """The array of ``shape`` whose data starts at ``offset`` and fills the rest of ``body`` exactly.

    Raises
    ------
    NpyError
        When the data is shorter (truncated) or longer (trailing bytes) than the shape needs.
    """
    count = math.prod(shape)
    expected = count * dtype.itemsize
    actual = len(body) - offset
    if actual != expected:
        problem = "is truncated" if actual < expected else "has trailing bytes"
        raise NpyError(
            f"{problem}: shape {list(shape)} of {dtype.name} needs {expected} bytes of data, got {actual}"
        )
    flat = np.frombuffer(body, dtype=dtype, count=count, offset=offset)
    if fortran_order:
        return flat.reshape(shape[::-1]).T
    return flat.reshape(shape)


def dumps(array: Array) -> bytes:
    """The ``.npy`` bytes of an array: NumPy's header, then the data, in one copy."""
    header, data = parts(array)
    return b"".join([header, data])


def parts(array: Array) -> tuple[bytes, memoryview]:
    """NumPy's ``.npy`` header for an array, and a view of the array's bytes (no copy when it is
    C-contiguous): sent one after the other, they are the ``.npy`` file."""
    array = np.asarray(array)
    if not array.flags.c_contiguous:  # (ascontiguousarray would also turn a 0-d array into 1-d)
        array = np.ascontiguousarray(array)
    header = io.BytesIO()
    npy_format.write_array_header_1_0(header, npy_format.header_data_from_array_1_0(array))
    data: Any = array.reshape(-1).view(np.uint8)  # a view of the bytes (C-contiguous, any dtype)
    return header.getvalue(), memoryview(data)
