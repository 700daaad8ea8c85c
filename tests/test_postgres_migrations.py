"""The schema: Alembic migrations match the table models, on SQLite and PostgreSQL; first opens race safely."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect

from governance_support import BACKENDS, fresh_database_url, open_test_store
from tunegate.store import MetadataStore
from tunegate.store.migrate import (
    HEAD_REVISION,
    MIGRATIONS_DIR,
    alembic_config,
    all_tables_metadata,
    current_revision,
)

TABLES = {
    "model_versions",
    "evaluations",
    "gates",
    "users",
    "decision_log",
    "decision_log_head",
    "registry_heads",
    "review_batches",
    "review_items",
    "review_decisions",
    "signoffs",
    "alembic_version",
}


def _differences(url: str) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn), all_tables_metadata())
    finally:
        engine.dispose()


def test_head_revision_constant_matches_the_scripts() -> None:
    assert ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head() == HEAD_REVISION


@pytest.mark.parametrize("backend", BACKENDS)
def test_migrations_build_exactly_the_models(tmp_path: Path, backend: str) -> None:
    """Run the Alembic scripts themselves (not create_all) on an empty database, then compare."""
    with fresh_database_url(backend, tmp_path) as url:
        engine = create_engine(url)
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "head")
        with engine.connect() as conn:
            assert current_revision(conn) == HEAD_REVISION
            assert set(inspect(conn).get_table_names()) == TABLES
        engine.dispose()
        assert _differences(url) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_downgrade_and_upgrade_again(tmp_path: Path, backend: str) -> None:
    with fresh_database_url(backend, tmp_path) as url:
        engine = create_engine(url)
        for target in ("head", "base", "head"):
            with engine.begin() as conn:
                (command.upgrade if target == "head" else command.downgrade)(alembic_config(conn), target)
        with engine.connect() as conn:
            assert current_revision(conn) == HEAD_REVISION
        engine.dispose()


def test_fresh_sqlite_workspace_is_created_from_models_and_stamped(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    MetadataStore(url).engine.dispose()
    assert _differences(url) == []
    engine = create_engine(url)
    with engine.connect() as conn:
        assert current_revision(conn) == HEAD_REVISION
    engine.dispose()


def _open(url: str) -> None:
    MetadataStore(url).engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_first_opens_migrate_once(tmp_path: Path, backend: str) -> None:
    with fresh_database_url(backend, tmp_path) as url:
        ctx = multiprocessing.get_context("fork")
        procs = [ctx.Process(target=_open, args=(url,)) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        assert [p.exitcode for p in procs] == [0, 0, 0, 0]
        store = open_test_store(tmp_path / "ws", url)
        with store.meta.engine.connect() as conn:
            assert current_revision(conn) == HEAD_REVISION
        store.meta.engine.dispose()
