"""Engine, sessions, migrations and the small helpers every repository module shares.

``open_store(url)`` is the one entry point: it builds the engine (SQLite file or PostgreSQL), brings the
schema to the latest Alembic revision and returns a :class:`Store`. The repository functions take that
``Store`` first and open one short transaction each through :meth:`Store.write` or :meth:`Store.read`.
"""

from __future__ import annotations

import contextlib
import math
import re
import secrets
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, Insert, Select, Table, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from service.errors import InsufficientStorage, StorageCorrupted, StoreUnavailable
from service.store.health import StoreHealth
from service.store.space import Reserve
from service.store.writer import WriterLock

DEFAULT_URL = "sqlite:///./data/descent.db"
SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_POOL_SIZE, SQLITE_POOL_OVERFLOW = 16, 32
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Transaction-level advisory lock keys (PostgreSQL): migrations, admission to the queue, re-dispatch.
MIGRATION_LOCK_KEY = 0x64657363_00000001
QUEUE_LOCK_KEY = 0x64657363_00000002
DISPATCH_LOCK_KEY = 0x64657363_00000003

ID_PREFIXES = {"dataset": "ds", "job": "job", "model": "mdl", "blob": "blb", "key": "key"}
_ID_PATTERN = re.compile(r"^(?P<prefix>[a-z]+)_[0-9a-f]{24}$")

_UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError, PoolTimeoutError)


class Store:
    """A database engine with its session factories.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        Engine built by :func:`create_store_engine` (it installs the SQLite transaction handling that
        :meth:`write` relies on).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        # SQLite: a write transaction takes the write lock at BEGIN (IMMEDIATE). A deferred transaction that
        # reads and then writes fails at once with "database is locked" when another writer committed in
        # between, whatever the busy timeout; IMMEDIATE makes it wait instead.
        self._write_engine = engine.execution_options(sqlite_begin="IMMEDIATE")
        self.sessionmaker = sessionmaker(self._write_engine, expire_on_commit=False)
        self.read_sessionmaker = sessionmaker(engine, expire_on_commit=False)
        #: SQLite: the database file, and the reserve that lets deletes run on a full disk.
        self.database_path = sqlite_path(engine)
        self.reserve = Reserve(self.database_path) if self.database_path is not None else None
        #: SQLite: the lock writers queue on (``service.store.writer``).
        self.writer = (
            WriterLock(self.database_path, SQLITE_BUSY_TIMEOUT_MS / 1000)
            if self.database_path is not None
            else None
        )
        self.health = StoreHealth(self)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One read-write transaction: commits on success, rolls back on any exception."""
        with self._writing(), unavailable_on_failure(), self.sessionmaker.begin() as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """One read-only transaction (a consistent snapshot on both backends)."""
        with unavailable_on_failure(), self.read_sessionmaker.begin() as session:
            yield session

    @contextmanager
    def write_core(self) -> Iterator[Connection]:
        """:meth:`write` without the ORM session: a connection in one read-write transaction, for the hot
        paths that run SQLAlchemy Core statements only (a job's submit, claim and end)."""
        with self._writing(), unavailable_on_failure(), self._write_engine.begin() as conn:
            yield conn

    def _writing(self) -> contextlib.AbstractContextManager[None]:
        """SQLite: the writer lock (``service.store.writer``) around a write transaction."""
        return self.writer.held() if self.writer is not None else contextlib.nullcontext()

    @contextmanager
    def read_core(self) -> Iterator[Connection]:
        """:meth:`read` without the ORM session."""
        with unavailable_on_failure(), self.engine.begin() as conn:
            yield conn

    def ping(self) -> bool:
        """Whether the database answers ``SELECT 1``."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
        if self.writer is not None:
            self.writer.close()

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"


@contextmanager
def unavailable_on_failure() -> Iterator[None]:
    """Turn the database's failures into domain errors.

    A full disk is ``InsufficientStorage`` (507); a damaged SQLite file is ``StorageCorrupted``; connection
    failures, timeouts and lock waits that ran out are ``StoreUnavailable`` (503). The details quote the
    database's own message, never a Python class name.
    """
    try:
        yield
    except DBAPIError as exc:
        orig = getattr(exc, "orig", None) or exc
        first_line = (str(orig).strip().splitlines() or [""])[0][:200]
        if is_disk_full(exc):
            raise InsufficientStorage(
                f"the disk of the store is full ({first_line}); delete datasets, models or jobs, or free "
                "space on the server, then retry"
            ) from exc
        if _sqlite_code(exc) in _SQLITE_DAMAGED:
            raise StorageCorrupted(
                "database", "sqlite", first_line, remedy="restore it from a backup"
            ) from exc
        if isinstance(exc, _UNAVAILABLE):
            raise StoreUnavailable(f"database unavailable: {first_line}") from exc
        raise
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(f"database unavailable: {str(exc).strip()[:200]}") from exc


_SQLITE_FULL = 13
_SQLITE_DAMAGED = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB
_PG_DISK_FULL = "53100"


def _sqlite_code(exc: BaseException) -> int | None:
    orig = getattr(exc, "orig", None) or exc
    code = getattr(orig, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF  # the primary code of an extended one


def is_disk_full(exc: BaseException) -> bool:
    """Whether a database error says that the disk is full (SQLite ``SQLITE_FULL``, PostgreSQL 53100)."""
    orig = getattr(exc, "orig", None) or exc
    return _sqlite_code(exc) == _SQLITE_FULL or getattr(orig, "sqlstate", None) == _PG_DISK_FULL


def create_store_engine(url: str) -> Engine:
    """Build the engine for a SQLite file or a PostgreSQL URL.

    Parameters
    ----------
    url : str
        ``sqlite:///path/to/file.db`` (the parent folder is created) or ``postgresql+psycopg://...``.

    Returns
    -------
    engine : sqlalchemy.Engine
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise ValueError(f"the store needs a SQLite file path, got {url!r}")
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # Enough kept connections for the request threads that use the store at once: a connection beyond
        # the pool is opened (with its PRAGMAs) and closed for each use.
        engine = create_engine(parsed, pool_size=SQLITE_POOL_SIZE, max_overflow=SQLITE_POOL_OVERFLOW)
        _install_sqlite_events(engine)
        return engine
    if backend == "postgresql":
        # pre_ping: a connection the server dropped (restart, idle timeout) is replaced, not handed out.
        return create_engine(parsed, pool_pre_ping=True)
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:///... or postgresql+psycopg://...")


def _install_sqlite_events(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The sqlite3 module's own transaction handling skips BEGIN before SELECT and DDL; turn it off and
        # emit BEGIN ourselves (below) so every transaction, migrations included, is a real one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        # A new store gives deleted pages back to the file system on request (service.store.space); this
        # must come before WAL mode writes the file's first page, and changes nothing in an existing file.
        cursor.execute("PRAGMA auto_vacuum = INCREMENTAL")
        cursor.execute("PRAGMA journal_mode = WAL")
        # Deletes must not zero every page of a deleted blob: that would need the space of the blob in
        # the log, which a full disk does not have (service.store.space).
        cursor.execute("PRAGMA secure_delete = FAST")
        # With WAL, NORMAL still survives a crash of the process; only a power loss may drop the last commits.
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` in one transaction; a no-op when it is already there."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with unavailable_on_failure(), engine.execution_options(sqlite_begin="IMMEDIATE").begin() as conn:
        if conn.dialect.name == "postgresql":
            # Several processes (API, workers) may start together against an empty database.
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def open_store(url: str = DEFAULT_URL, *, migrate_schema: bool = True) -> Store:
    """Open the store at ``url`` and bring its schema up to date.

    Parameters
    ----------
    url : str
        SQLAlchemy URL: ``sqlite:///./data/descent.db`` (default) or ``postgresql+psycopg://user@host/db``.
    migrate_schema : bool
        Run the migrations; processes started after the API (workers) skip them.

    Returns
    -------
    store : Store

    Raises
    ------
    ValueError
        When the URL names an unsupported backend or an in-memory SQLite database.
    StoreUnavailable
        When the database cannot be reached.
    """
    engine = create_store_engine(url)
    if not migrate_schema:
        return Store(engine)
    try:
        migrate(engine)
    except BaseException:
        engine.dispose()
        raise
    store = Store(engine)
    if store.reserve is not None:
        store.reserve.ensure()
    return store


def sqlite_path(engine: Engine) -> Path | None:
    """The database file of a SQLite engine; None for PostgreSQL."""
    if engine.dialect.name != "sqlite" or not engine.url.database:
        return None
    return Path(engine.url.database).expanduser().resolve()


# --- shared helpers -----------------------------------------------------------------------------------

_id_lock = threading.Lock()
_last_id_us = 0


def new_id(kind: str) -> str:
    """A new id for ``kind``: prefix, 14 hex digits of UTC time in µs, 10 random hex digits.

    Ids sort in creation order (strictly within a process, to the clock across processes), which lets a
    list page on the id alone. The random part only has to make ids unique, not unpredictable to a model
    of the data, so it comes from ``secrets`` rather than a seeded generator.
    """
    global _last_id_us
    prefix = ID_PREFIXES[kind]
    with _id_lock:
        now_us = max(time.time_ns() // 1000, _last_id_us + 1)
        _last_id_us = now_us
    return f"{prefix}_{now_us:014x}{secrets.token_hex(5)}"


def check_id(kind: str, value: str, what: str = "cursor") -> str:
    """Return ``value`` if it has the shape of a ``kind`` id, else raise ``ValueError``."""
    match = _ID_PATTERN.match(value) if isinstance(value, str) else None
    if match is None or match["prefix"] != ID_PREFIXES[kind]:
        raise ValueError(f"{what} must be a {kind} id, got {value!r}")
    return value


def utcnow() -> datetime:
    return datetime.now(UTC)


def check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    return limit


def paginate(
    session: Session,
    stmt: Select[Any],
    id_column: InstrumentedAttribute[str],
    kind: str,
    limit: int,
    cursor: str | None,
) -> tuple[list[Any], str | None]:
    """Newest-first page of ``stmt``: rows with an id below ``cursor``, and the cursor of the next page."""
    check_limit(limit)
    if cursor is not None:
        stmt = stmt.where(id_column < check_id(kind, cursor))
    rows = list(session.scalars(stmt.order_by(id_column.desc()).limit(limit + 1)))
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, getattr(rows[-1], id_column.key)
    return rows, None


_PLAIN_JSON = frozenset({str, int, bool, type(None)})


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: NumPy scalars and arrays become Python values, tuples become lists.

    Non-finite floats become ``None``: JSON has no NaN or infinity (PostgreSQL refuses them), and the API
    promises finite numbers only; a diverged epoch's loss is therefore stored as null.
    """
    kind = type(value)  # the plain types first, by their exact type: the common case, and the cheap one
    if kind in _PLAIN_JSON:
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is dict:
        return {str(k): jsonable(v) for k, v in value.items()}
    if kind is list:
        return [jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float):
        return value
    raise ValueError(f"cannot store a {type(value).__name__} as JSON: {value!r}")


def finite_or_none(value: Any) -> float | None:
    """A metric value as a finite float, or ``None`` when it is missing or not finite."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def upsert(table: Table, keys: tuple[str, ...]) -> dict[str, Insert]:
    """``INSERT … ON CONFLICT (keys) DO UPDATE`` every other column of ``table``, by dialect name: one
    statement where a row is replaced if it exists."""
    statements: dict[str, Insert] = {}
    for name, insert in (("sqlite", sqlite.insert), ("postgresql", postgresql.insert)):
        stmt = insert(table)
        others = {column.name: stmt.excluded[column.name] for column in table.c if column.name not in keys}
        statements[name] = stmt.on_conflict_do_update(index_elements=list(keys), set_=others)
    return statements
