from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import CheckConstraint, create_engine, inspect, text

from service import vocabulary
from service.errors import StoreUnavailable
from service.store import get_dataset, get_job, list_datasets, open_store, take_redispatch
from service.store.db import MIGRATIONS_DIR, Store, create_store_engine, migrate, utcnow
from service.store.tables import Base
from tests import pg
from tests.requires import missing
from tests.service.store.factories import make_dataset

TABLES = {
    "alembic_version",
    "api_keys",
    "blobs",
    "checkpoints",
    "datasets",
    "idempotency_keys",
    "job_events",
    "job_metrics",
    "job_snapshots",
    "jobs",
    "models",
}


def _head() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


HEAD = _head()


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
    else:
        yield from pg.database_fixture()


def _revision(store: Store) -> str | None:
    with store.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_open_store_creates_the_schema_at_head(fresh_url: str) -> None:
    store = open_store(fresh_url)
    try:
        assert set(inspect(store.engine).get_table_names()) == TABLES
        assert _revision(store) == HEAD
    finally:
        store.close()


def test_upgrade_again_is_a_no_op_that_keeps_data(fresh_url: str) -> None:
    store = open_store(fresh_url)
    record = make_dataset(store)
    store.close()

    again = open_store(fresh_url)
    try:
        assert _revision(again) == HEAD
        assert get_dataset(again, record.id) == record
        assert [item.id for item in list_datasets(again)[0]] == [record.id]
    finally:
        again.close()


def test_migrated_schema_matches_the_orm_tables(store: Store) -> None:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_constraint_names_follow_the_naming_convention(store: Store) -> None:
    # Later migrations (batch mode on SQLite) find constraints by these names.
    inspector = inspect(store.engine)
    for table in Base.metadata.sorted_tables:
        expected_checks = {c.name for c in table.constraints if isinstance(c, CheckConstraint)}
        expected_fks = {fk.name for fk in table.foreign_key_constraints}
        assert {c["name"] for c in inspector.get_check_constraints(table.name)} == expected_checks
        assert {fk["name"] for fk in inspector.get_foreign_keys(table.name)} == expected_fks


def test_migrated_check_constraints_allow_exactly_the_vocabularies(store: Store) -> None:
    # compare_metadata does not compare CHECK constraints; the migration spells the values out, so a word
    # added to service.vocabulary needs a migration, and this test says so.
    expected = {
        ("datasets", "ck_datasets_task"): vocabulary.TASKS,
        ("models", "ck_models_task"): vocabulary.TASKS,
        ("jobs", "ck_jobs_status"): vocabulary.JOB_STATUSES,
        ("job_events", "ck_job_events_kind"): vocabulary.EVENT_KINDS,
    }
    inspector = inspect(store.engine)
    for (table, name), values in expected.items():
        (check,) = (c for c in inspector.get_check_constraints(table) if c["name"] == name)
        assert set(re.findall(r"'([^']*)'", check["sqltext"])) == set(values), (name, check["sqltext"])


def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        with store.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert (conn.execute(text("PRAGMA busy_timeout")).scalar() or 0) >= 5000
    finally:
        store.close()


def test_sqlite_parent_folder_is_created(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "deeper" / "descent.db"
    store = open_store(f"sqlite:///{path}")
    store.close()
    assert path.is_file()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]
    conn.close()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "mysql://u@127.0.0.1/x"])
def test_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="sqlite"):
        create_store_engine(url)


def test_unreachable_postgresql_raises_store_unavailable() -> None:
    # Port 1 on the loopback interface: nothing listens there, so the connection is refused at once.
    with pytest.raises(StoreUnavailable, match="database unavailable"):
        open_store("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2")


def test_ping_reports_reachability(store: Store) -> None:
    assert store.ping() is True
    dead = Store(create_engine("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2"))
    try:
        assert dead.ping() is False
    finally:
        dead.close()


def test_a_database_lost_while_open_raises_store_unavailable() -> None:
    reason = pg.unavailable_reason()
    if reason is not None:
        missing(reason)
    url = pg.create_temp_database()
    store = open_store(url)
    try:
        assert store.ping() is True
        pg.drop_database(url)  # also terminates the store's pooled connections
        with pytest.raises(StoreUnavailable):
            list_datasets(store)
        assert store.ping() is False
    finally:
        store.close()


def _insert_dataset_as_0002_knew_it(conn: Any) -> str:
    """A blob and a dataset row with the columns of revisions 0001 to 0003 (no n_outputs)."""
    conn.execute(
        text(
            "INSERT INTO blobs (id, sha256, nbytes, data, created_at)"
            " VALUES ('b1', 'x', 1, :data, '2026-01-01 00:00:00+00:00')"
        ),
        {"data": b"x"},
    )
    conn.execute(
        text(
            "INSERT INTO datasets (id, owner, name, n_samples, n_features, task, sha256, blob_id,"
            " created_at, source) VALUES ('ds1', 'default', 'old', 4, 2, 'binary', 'x', 'b1',"
            " '2026-01-01 00:00:00+00:00', '{}')"
        )
    )
    return "ds1"


def test_jobs_queued_before_dispatch_records_are_due_by_their_age(fresh_url: str) -> None:
    engine = create_store_engine(fresh_url)
    migrate(engine, "0002")
    old = Store(engine)
    job_id = "job_0000000000000000000000a1"
    with old.write() as session:  # rows as revision 0002 knew them
        dataset_id = _insert_dataset_as_0002_knew_it(session)
        session.execute(
            text(
                "INSERT INTO jobs (id, status, config, config_hash, dataset_id, created_at)"
                " VALUES (:id, 'queued', '{}', :hash, :dataset, :created)"
            ),
            {"id": job_id, "hash": "c" * 64, "dataset": dataset_id, "created": utcnow().replace(tzinfo=None)},
        )
    old.close()

    store = open_store(fresh_url)
    try:
        record = get_job(store, job_id)
        assert (record.dispatch_count, record.dispatched_at) == (0, None)
        assert take_redispatch(store, 60, lambda: 0) == []
        assert take_redispatch(store, 60, lambda: 0, now=utcnow() + timedelta(hours=1)) == [job_id]
    finally:
        store.close()


def test_upgrade_from_0003_keeps_datasets_and_allows_multilabel(fresh_url: str) -> None:
    engine = create_store_engine(fresh_url)
    migrate(engine, "0003")
    with engine.begin() as conn:
        _insert_dataset_as_0002_knew_it(conn)
    migrate(engine)
    with engine.begin() as conn:
        assert conn.execute(text("SELECT task, n_outputs FROM datasets")).all() == [("binary", 1)]
        conn.execute(text("UPDATE datasets SET task = 'multilabel', n_outputs = 3"))
        assert conn.execute(text("SELECT task, n_outputs FROM datasets")).all() == [("multilabel", 3)]
    engine.dispose()
