"""NumPy ``.npz`` archives as request bodies: read member by member, never unpickled.

Each member's ``.npy`` header is read before its data, so an object array or an array over the limit is
refused before anything is decompressed. Dataset uploads and model imports both read their ``.npz``
bodies here.
"""

from __future__ import annotations

import io
import math
import zipfile
from typing import Any

import numpy as np

from service.errors import InvalidInput, PayloadTooLarge

Array = np.ndarray[Any, Any]


def read_npz(raw: bytes, *, max_elements: int) -> dict[str, Array]:
    """Read an uploaded ``.npz`` archive (``numpy.savez``) without ever unpickling.

    Each member's ``.npy`` header is read first, so an object array or an array over the limit is
    refused before its data is decompressed.

    Parameters
    ----------
    raw : bytes
    max_elements : int
        Most elements one member may hold.

    Returns
    -------
    arrays : dict of str to ndarray
        By member name (without ``.npy``), in archive order.

    Raises
    ------
    InvalidInput
        422 for bytes that are not an ``.npz`` archive, members that are not ``.npy`` arrays, and
        object or structured dtypes.
    PayloadTooLarge
        413 for a member with more than ``max_elements`` elements.
    """
    if not raw.startswith(b"PK"):
        raise npz_error("the body is not an .npz archive (a zip of .npy files, as numpy.savez writes)")
    arrays: dict[str, Array] = {}
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    raise npz_error(f"member {info.filename!r} is not an .npy array")
                key = info.filename.removesuffix(".npy")
                with archive.open(info) as member:
                    shape = _npy_shape(member, key)
                    size = math.prod(shape)
                    if size > max_elements:
                        raise PayloadTooLarge(
                            f"npz member {key!r} holds {size} elements; the limit is {max_elements}",
                            errors=[
                                {
                                    "loc": ["body", key],
                                    "msg": f"holds {size} elements; the limit is {max_elements}",
                                }
                            ],
                        )
                with archive.open(info) as member:
                    arrays[key] = np.lib.format.read_array(member, allow_pickle=False)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as exc:
        raise npz_error(f"the body is not a readable .npz archive: {exc}") from None
    return arrays


def _npy_shape(member: Any, key: str) -> tuple[int, ...]:
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(member)
    else:
        raise npz_error(f"member {key!r} uses .npy format version {version}; versions 1.0 and 2.0 are read")
    if dtype.hasobject:
        raise npz_error(
            f"member {key!r} holds Python objects (dtype object), which are never unpickled; save numeric"
            " (or fixed-width string) arrays"
        )
    if dtype.fields is not None:
        raise npz_error(f"member {key!r} is a structured array (dtype {dtype}); save plain arrays")
    return tuple(int(n) for n in shape)


def npz_error(msg: str) -> InvalidInput:
    """422 about the archive as a whole (``loc`` is the body)."""
    return InvalidInput(msg, errors=[{"loc": ["body"], "msg": msg}])
