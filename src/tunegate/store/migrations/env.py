"""Alembic environment: runs on the connection `store.migrate` hands over, or on a URL from the command line.

From a checkout: `alembic -c src/tunegate/store/migrations/alembic.ini upgrade head` migrates the
database at $TUNEGATE_DATABASE_URL (or `-x url=...`).
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection, create_engine

from tunegate.store.migrate import all_tables_metadata

config = context.config
target_metadata = all_tables_metadata()


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("TUNEGATE_DATABASE_URL")
    url = url or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("no database: set $TUNEGATE_DATABASE_URL or pass -x url=...")
    return url


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (given := config.attributes.get("connection")) is not None:
    _run(given)
else:
    with create_engine(_url()).begin() as connection:
        _run(connection)
