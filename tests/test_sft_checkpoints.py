"""Checkpoints are complete or absent: only renamed folders count, staging debris is never resumed from."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from tunegate.train.sft_checkpoints import (
    CONSUMED,
    RUN_INFO,
    AtomicCheckpoints,
    ConsumedLog,
    clear_staging,
    committed_checkpoints,
    latest_checkpoint,
)


def _stage(staging: Path, step: int) -> Path:
    folder = staging / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    (folder / "training_args.bin").write_bytes(b"pickle")
    return folder


def test_commit_renames_adds_logs_and_prunes(tmp_path: Path) -> None:
    staging, committed = tmp_path / "staging", tmp_path / "checkpoints"
    log = ConsumedLog(["a", "b", "c", "d"])
    callback = AtomicCheckpoints(staging, committed, keep=2, log=log, run_info={"spec_sha256": "s"})
    for step in (1, 2, 3):
        log.record([step - 1])
        callback.on_step_end(None, SimpleNamespace(global_step=step), None)
        _stage(staging, step)
        callback.on_save(None, SimpleNamespace(global_step=step), None)
    assert [s for s, _ in committed_checkpoints(committed)] == [2, 3]  # keep=2 prunes the oldest
    newest = latest_checkpoint(committed)
    assert newest is not None and newest.name == "step-000003"
    assert json.loads((newest / CONSUMED).read_text()) == {"1": ["a"], "2": ["b"], "3": ["c"]}
    assert json.loads((newest / RUN_INFO).read_text()) == {"spec_sha256": "s", "step": 3}
    assert not (newest / "training_args.bin").exists()  # the Trainer's pickle never gets committed
    assert not (staging / "checkpoint-3").exists()


def test_a_killed_save_never_looks_complete(tmp_path: Path) -> None:
    staging, committed = tmp_path / "staging", tmp_path / "checkpoints"
    committed.mkdir()
    _stage(staging, 7)  # written, but the process died before on_save renamed it
    (committed / "step-000004").mkdir()
    assert latest_checkpoint(committed) == committed / "step-000004"
    clear_staging(staging)
    assert list(staging.iterdir()) == []
