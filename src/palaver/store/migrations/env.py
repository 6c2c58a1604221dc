"""Alembic environment for Palaver's schema.

:meth:`palaver.store.sql.SqlStore.migrate` runs this with a connection already inside a
transaction (and, on PostgreSQL, holding the migration lock), passed as
``config.attributes["connection"]``. Offline mode (``--sql``) renders the SQL for a URL.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from palaver.store.schema import metadata


def run_online(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite can only change a column by copying its table: batch mode does that.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline(url: str) -> None:
    context.configure(
        url=url,
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline(context.config.get_main_option("sqlalchemy.url") or "sqlite://")
else:
    given = context.config.attributes.get("connection")
    if not isinstance(given, Connection):
        raise RuntimeError("run migrations with `palaver migrate` (Store.migrate)")
    run_online(given)
