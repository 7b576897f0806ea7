"""``.npz`` encoding of arrays and the ``blobs`` table that holds the bytes.

Arrays are written with ``np.savez`` (an uncompressed zip of ``.npy`` members, each with the fixed zip
timestamp of 1980) and read with ``np.load(..., allow_pickle=False)``. The bytes depend only on the member
names, their order, and each array's dtype, shape and data, so equal arrays always hash to the same sha256;
a test guards that, because dataset and model hashes rely on it.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Mapping

import numpy as np
from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from service.errors import StorageCorrupted
from service.store.db import new_id, utcnow
from service.store.tables import BlobRow, table

# np.savez takes member names as keyword arguments, so these two cannot be member names.
_SAVEZ_ARGUMENTS = ("file", "allow_pickle")


def encode_npz(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Serialise named arrays to ``.npz`` bytes, deterministically and without pickle.

    Parameters
    ----------
    arrays : mapping of str to ndarray
        Member names (non-empty, no ``/``) to arrays of any shape and of a non-object dtype.

    Returns
    -------
    data : bytes
        The ``np.savez`` archive, which ``np.load(io.BytesIO(data), allow_pickle=False)`` reads back bit for
        bit.

    Raises
    ------
    ValueError
        For an empty, path-like or reserved member name, or an array of object dtype (it would need pickle).
    """
    for name, array in arrays.items():
        if not isinstance(name, str) or not name or "/" in name or name in _SAVEZ_ARGUMENTS:
            raise ValueError(
                f"array names must be non-empty strings without '/' other than {list(_SAVEZ_ARGUMENTS)}, "
                f"got {name!r}"
            )
        if np.asarray(array).dtype.hasobject:
            raise ValueError(f"array {name!r} has dtype object, which cannot be stored without pickle")
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


def decode_npz(data: bytes) -> dict[str, np.ndarray]:
    """Read ``.npz`` bytes back into named arrays (never unpickling anything).

    Parameters
    ----------
    data : bytes
        Bytes written by :func:`encode_npz` or ``np.savez``.

    Returns
    -------
    arrays : dict of str to ndarray
        In the archive's order.
    """
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verified(data: bytes | None, sha256: str | None, kind: str, id: str) -> bytes:
    """``data`` when its sha256 is ``sha256``; ``StorageCorrupted`` naming ``kind`` and ``id`` otherwise.

    ``sha256`` None (a row written before hashes were recorded) skips the check. Missing bytes (a blob
    row that is gone) are corrupted too: the record says they exist.
    """
    if data is None:
        raise StorageCorrupted(kind, id, "its stored bytes are missing")
    if sha256 is not None:
        actual = sha256_hex(data)
        if actual != sha256:
            raise StorageCorrupted(
                kind,
                id,
                f"its {len(data)} stored bytes have sha256 {actual[:12]}…, not the recorded {sha256[:12]}…",
            )
    return data


def decode_verified(data: bytes | None, sha256: str | None, kind: str, id: str) -> dict[str, np.ndarray]:
    """:func:`decode_npz` of bytes checked by :func:`verified`; undecodable bytes are ``StorageCorrupted``."""
    checked = verified(data, sha256, kind, id)
    try:
        return decode_npz(checked)
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise StorageCorrupted(kind, id, f"its stored arrays cannot be read: {exc}") from None


_INSERT_BLOB = insert(table(BlobRow))


def put_blob(conn: Session | Connection, data: bytes) -> tuple[str, str]:
    """Insert ``data`` as a new blob in the caller's transaction; returns its id and sha256."""
    blob_id, sha256 = new_id("blob"), sha256_hex(data)
    conn.execute(
        _INSERT_BLOB,
        {"id": blob_id, "sha256": sha256, "nbytes": len(data), "data": data, "created_at": utcnow()},
    )
    return blob_id, sha256


def blob_data(session: Session, blob_id: str) -> bytes | None:
    return session.scalar(select(BlobRow.data).where(BlobRow.id == blob_id))


def delete_blob(session: Session, blob_id: str) -> None:
    session.execute(delete(BlobRow).where(BlobRow.id == blob_id))
