"""Durable state: the metadata database and the artifact store, each with exactly one writer module."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tunegate.store.artifacts import ArtifactStore, sha256_bytes, sha256_file
from tunegate.store.evidence import current_evidence, evidence_sha256
from tunegate.store.metadata import (
    STAGES,
    EvaluationRecord,
    GateRecord,
    MetadataStore,
    VersionRecord,
)
from tunegate.store.workspace import Workspace, open_workspace


@dataclass(frozen=True)
class Store:
    """A workspace opened for use: `meta` for records, `artifacts` for bytes."""

    workspace: Workspace
    meta: MetadataStore
    artifacts: ArtifactStore


def open_store(path: str | Path | None = None) -> Store:
    ws = open_workspace(path)
    return Store(workspace=ws, meta=MetadataStore(ws.database_url), artifacts=ArtifactStore(ws.artifacts_dir))


__all__ = [
    "STAGES",
    "ArtifactStore",
    "EvaluationRecord",
    "GateRecord",
    "MetadataStore",
    "Store",
    "VersionRecord",
    "Workspace",
    "current_evidence",
    "evidence_sha256",
    "open_store",
    "open_workspace",
    "sha256_bytes",
    "sha256_file",
]
