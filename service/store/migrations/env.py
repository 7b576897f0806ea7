"""Alembic environment of the store.

The store runs migrations itself (``service.store.db.migrate``) and passes its open connection in
``config.attributes["connection"]``, inside a transaction it already holds. For ad-hoc use (e.g.
``alembic revision --autogenerate``) a ``sqlalchemy.url`` main option works too.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from service.store.tables import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things: batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise ValueError("set config.attributes['connection'] or the sqlalchemy.url option")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise ValueError("offline (--sql) migrations are not supported; run them against a database")
run_migrations_online()
