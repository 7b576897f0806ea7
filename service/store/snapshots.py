"""A running job's latest parameters, kept so that a client can follow its model while it trains.

One row per job, replaced by each progress write of its run (``record_progress``, in the same fenced
transaction, so the snapshot is always of the epoch the progress names) and deleted with the job. The
bytes are the run's own ``.npz`` encoding; this module only stores them.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from service.store.blobs import sha256_hex, verified
from service.store.db import Store, upsert, utcnow
from service.store.records import Snapshot
from service.store.tables import JobSnapshotRow, table

_SNAPSHOTS = table(JobSnapshotRow)
_UPSERT = upsert(_SNAPSHOTS, ("job_id",))


def write_snapshot(conn: Connection, job_id: str, attempt: int, epoch: int, blob: bytes) -> None:
    """Replace the job's snapshot with ``blob``, taken after ``epoch``, in the caller's fenced transaction."""
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise ValueError(f"snapshot must be bytes, got {type(blob).__name__}")
    data = bytes(blob)
    values = {
        "attempt": attempt,
        "epoch": epoch,
        "blob": data,
        "sha256": sha256_hex(data),
        "updated_at": utcnow(),
    }
    conn.execute(_UPSERT[conn.dialect.name], {"job_id": job_id, **values})


def load_snapshot(store: Store, job_id: str) -> Snapshot | None:
    """The job's latest snapshot, or None when its run has written none; ``StorageCorrupted`` when its
    bytes do not have their recorded sha256."""
    with store.read() as session:
        row = session.get(JobSnapshotRow, job_id)
        if row is None:
            return None
        data = verified(row.blob, row.sha256, "snapshot of job", job_id)
        return Snapshot(row.epoch, data, row.updated_at)
