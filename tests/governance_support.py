"""Shared helpers for the governance tests (review, registry, log, users, PostgreSQL).

Every store-backed test runs on SQLite, and on PostgreSQL too when $TUNEGATE_TEST_POSTGRES_URL
points at a server (scripts/postgres-test-server.sh starts a throwaway one); each PostgreSQL test
gets a fresh database, dropped afterwards. Versions are fake: a folder with one file as the model, an
evaluation with hand-written predictions. No model is trained here.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tunegate.registry import register_candidate
from tunegate.review import Actor, add_user
from tunegate.store import ArtifactStore, MetadataStore, Store, VersionRecord, evidence_sha256
from tunegate.store.workspace import Workspace

POSTGRES_URL_ENV = "TUNEGATE_TEST_POSTGRES_URL"
SKIP_POSTGRES = pytest.mark.skipif(
    not os.environ.get(POSTGRES_URL_ENV),
    reason=f"${POSTGRES_URL_ENV} is not set: the PostgreSQL variant is skipped "
    "(start a server with `scripts/postgres-test-server.sh start` and export its URL)",
)
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=[pytest.mark.postgres, SKIP_POSTGRES]),
]


@contextmanager
def fresh_database_url(backend: str, root: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{root / 'tunegate.db'}"
        return
    admin_url = make_url(os.environ[POSTGRES_URL_ENV])
    name = f"tg_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def open_test_store(root: Path, database_url: str) -> Store:
    root.mkdir(parents=True, exist_ok=True)
    workspace = Workspace(root=root, database_url=database_url)
    return Store(
        workspace=workspace,
        meta=MetadataStore(database_url),
        artifacts=ArtifactStore(workspace.artifacts_dir),
    )


def predictions(
    n_per_label: int = 10, labels: tuple[str, ...] = ("billing", "bug", "praise")
) -> list[dict[str, Any]]:
    """Confident, correct predictions, plus one wrong and one low-confidence output."""
    rows = [
        {"text": f"{label} example {i}", "label": label, "predicted": label, "confidence": 0.95}
        for label in labels
        for i in range(n_per_label)
    ]
    rows.append(
        {"text": "my invoice crashed the app", "label": "bug", "predicted": "billing", "confidence": 0.8}
    )
    rows.append({"text": "hmm, not sure", "label": "praise", "predicted": "praise", "confidence": 0.41})
    return rows


def fake_version(
    store: Store,
    name: str = "clf",
    *,
    created_by: str | None = "trainer",
    gate_passed: bool = True,
    rows: list[dict[str, Any]] | None = None,
    weights: bytes | None = None,
    review: dict[str, Any] | None = None,
) -> VersionRecord:
    """Register a version with a one-file model, an evaluation holding `rows` and a gate verdict."""
    folder = store.workspace.root / f"src-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(weights or uuid.uuid4().bytes)
    artifact = store.artifacts.put_tree(folder)
    spec = {"name": name, "review": review or {"sample_size": 6, "min_approval_rate": 0.75}}
    lineage: dict[str, Any] = {"spec": spec}
    if created_by is not None:
        lineage["created_by"] = created_by
    version = register_candidate(
        store,
        actor=created_by or "unknown",
        name=name,
        task="classify",
        artifact_sha256=artifact,
        spec_sha256="5" * 64,
        data_fingerprint="d" * 64,
        lineage=lineage,
    )
    add_evaluation(store, version, rows if rows is not None else predictions(), gate_passed=gate_passed)
    return version


def add_evaluation(
    store: Store, version: VersionRecord, rows: list[dict[str, Any]], gate_passed: bool = True
) -> str:
    """A new evaluation (new report tree, so new evidence) and a gate verdict on it; returns the evidence."""
    results = {"predictions": rows, "summary": {"accuracy": 0.9}, "nonce": uuid.uuid4().hex}
    report = store.artifacts.put_files({"evaluation.json": json.dumps(results).encode()})
    evaluation = store.meta.add_evaluation(version.id, results, report)
    evidence = evidence_sha256(version.artifact_sha256, version.spec_sha256, report)
    store.meta.add_gate(
        version_id=version.id,
        evaluation_id=evaluation.id,
        passed=gate_passed,
        verdict={"passed": gate_passed},
        evidence_sha256=evidence,
        report_sha256=report,
    )
    return evidence


def make_users(store: Store) -> dict[str, tuple[Actor, str]]:
    """admin (the bootstrap), two reviewers, a viewer, and 'trainer' (a reviewer who runs trainings)."""
    users = {}
    _, admin_key = add_user(store, None, "admin", "admin")
    users["admin"] = (Actor("admin", "admin"), admin_key)
    for name, role in (
        ("rita", "reviewer"),
        ("ravi", "reviewer"),
        ("vera", "viewer"),
        ("trainer", "reviewer"),
    ):
        _, key = add_user(store, admin_key, name, role)
        users[name] = (Actor(name, role), key)
    return users
