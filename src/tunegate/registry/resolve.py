"""Turn a version reference into a loaded model, after checking its bytes against their addresses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunegate.errors import ModelError
from tunegate.models import TextClassifier
from tunegate.store import Store, VersionRecord, open_store


def load_model(store: Store, version: VersionRecord) -> Any:
    folder = store.artifacts.get_tree(version.artifact_sha256, verify=True)
    if version.task == "classify":
        return TextClassifier.load(folder)
    if version.task == "sft":
        from tunegate.models.causal_lm import load_chat_model

        return load_chat_model(folder, store.workspace.cache_dir)
    raise ModelError(f"{version.ref}: loading task {version.task!r} is not supported here")


def load_version(ref: str, workspace: str | Path | None = None) -> Any:
    store = open_store(workspace)
    return load_model(store, store.meta.resolve(ref))
