"""Throwaway PostgreSQL databases for tests.

The server is found at ``DESCENT_TEST_POSTGRES_URL`` when set, else at 127.0.0.1:5432 as user ``postgres``
(then the current user), through its ``test`` database; each throwaway database is created from there
and named ``descent_test_<random hex>`` so that leftovers are easy to spot and only such databases are
ever dropped.

Usage::

    reason = unavailable_reason()      # None when PostgreSQL can be used
    with temp_database() as url:       # postgresql+psycopg://postgres@127.0.0.1:5432/descent_test_...
        ...                            # dropped on leaving the block

    @pytest.fixture
    def postgres_url() -> Iterator[str]:
        yield from database_fixture()  # the same; without PostgreSQL, skipped (failed in CI)
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import os
import secrets
from collections.abc import Iterator

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url

from tests.requires import missing

ADMIN_URL_ENV = "DESCENT_TEST_POSTGRES_URL"
TEMP_PREFIX = "descent_test_"
_DEFAULT_ADMIN_URLS = (
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    f"postgresql+psycopg://{getpass.getuser()}@127.0.0.1:5432/test",
)


def _connect(url: URL) -> psycopg.Connection:
    return psycopg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        dbname=url.database,
        autocommit=True,
        connect_timeout=3,
    )


@functools.cache
def _admin() -> tuple[URL | None, str]:
    """The first admin URL that connects, or None and the reason none did."""
    env = os.environ.get(ADMIN_URL_ENV)
    candidates = (env,) if env else _DEFAULT_ADMIN_URLS
    errors = []
    for candidate in candidates:
        url = make_url(candidate)
        try:
            with _connect(url):
                return url, ""
        except psycopg.Error as exc:
            errors.append(f"{url.render_as_string(hide_password=True)}: {str(exc).strip().splitlines()[0]}")
    return None, "PostgreSQL is not reachable (" + "; ".join(errors) + f"); set {ADMIN_URL_ENV} to use one"


def unavailable_reason() -> str | None:
    """Why PostgreSQL tests cannot run, or None when they can."""
    url, reason = _admin()
    return None if url is not None else reason


def create_temp_database() -> str:
    """Create an empty database and return its SQLAlchemy URL (``postgresql+psycopg://...``)."""
    admin, reason = _admin()
    if admin is None:
        raise RuntimeError(reason)
    name = TEMP_PREFIX + secrets.token_hex(6)
    with _connect(admin) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return admin.set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    """Drop a database made by :func:`create_temp_database`, closing its remaining connections."""
    name = make_url(url).database or ""
    if not name.startswith(TEMP_PREFIX):
        raise ValueError(f"refusing to drop {name!r}: only databases named {TEMP_PREFIX}* are temporary")
    admin, reason = _admin()
    if admin is None:
        raise RuntimeError(reason)
    with _connect(admin) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextlib.contextmanager
def temp_database() -> Iterator[str]:
    """A database made by :func:`create_temp_database` for the ``with`` block, dropped afterwards."""
    url = create_temp_database()
    try:
        yield url
    finally:
        drop_database(url)


def database_fixture() -> Iterator[str]:
    """The body of a fixture (``yield from``) giving a :func:`temp_database`.

    Without PostgreSQL the test is skipped, or failed in CI (:func:`tests.requires.missing`).
    """
    reason = unavailable_reason()
    if reason is not None:
        missing(reason)
    with temp_database() as url:
        yield url


def truncate_all(url: str) -> None:
    """Empty every table of the database but ``alembic_version``, restarting id sequences."""
    with _connect(make_url(url)) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables"
                " WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
            )
        ]
        if tables:
            names = sql.SQL(", ").join(sql.Identifier(t) for t in tables)
            conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(names))
