"""Bring a metadata database to the current schema: Alembic migrations, with a fast path.

PostgreSQL (and any database Alembic already manages) is upgraded by Alembic; the revision scripts in
`store/migrations/versions/` are the schema's history. A fresh SQLite workspace is created from the
table models in one transaction and stamped at the head revision: the same schema (a test migrates a
database and compares it with the models), without running every historical step on a laptop.

Opening a database that is already at HEAD_REVISION costs one query; Alembic is imported only when
something must change. Concurrent first opens are serialised: SQLite by its BEGIN IMMEDIATE
transaction, PostgreSQL by a transaction-scoped advisory lock.

Changing a table means: edit its model, then add a revision (`alembic -c
src/tunegate/store/migrations/alembic.ini revision --autogenerate -m "..."`) and bump HEAD_REVISION.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, inspect, text

HEAD_REVISION = "0001"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Every module that declares tables; all share metadata.py's declarative base.
TABLE_MODULES = (
    "tunegate.store.metadata",
    "tunegate.store.users",
    "tunegate.store.decision_log",
    "tunegate.store.lifecycle",
    "tunegate.store.reviews",
)
# An arbitrary constant: the key of the PostgreSQL advisory lock held while migrating.
_PG_MIGRATION_LOCK = 7_467_001


def all_tables_metadata() -> Any:
    """The declarative metadata with every table module imported (what Alembic compares against)."""
    for name in TABLE_MODULES:
        importlib.import_module(name)
    from tunegate.store.metadata import _Base

    return _Base.metadata


def current_revision(connection: Connection) -> str | None:
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def ensure_schema(engine: Engine) -> None:
    with engine.connect() as connection:
        if current_revision(connection) == HEAD_REVISION:
            return
    with engine.begin() as connection:  # BEGIN IMMEDIATE on SQLite: one process migrates at a time
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        revision = current_revision(connection)  # again, under the lock: another process may have won
        if revision == HEAD_REVISION:
            return
        if connection.dialect.name == "sqlite" and revision is None:
            _create_and_stamp(connection)
        else:
            from alembic import command

            command.upgrade(alembic_config(connection), "head")


def _create_and_stamp(connection: Connection) -> None:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    all_tables_metadata().create_all(connection)
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    MigrationContext.configure(connection).stamp(script, "head")
