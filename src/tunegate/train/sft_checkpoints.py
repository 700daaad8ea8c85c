"""Checkpoints that are either complete or absent, and the record of which examples each step consumed.

transformers' Trainer writes `checkpoint-N/` file by file in place, so a process killed mid-save
leaves a folder that looks like a checkpoint and is not one. Here the Trainer writes into a staging
folder; when it reports the save done (`on_save`), the consumed-examples log and the run description
are added, every file is flushed to disk, and the folder is renamed to `checkpoints/step-NNNNNN`.
The rename is the commit point: a folder under `checkpoints/` is complete by construction, and
`--resume` only ever looks there. Staging leftovers of a killed save are deleted on the next start.

`ConsumedLog` records the example ids of every optimisation step (the trainer reports each
micro-batch's indices, `on_step_end` closes the step), so a resumed run can be shown to have seen
the same examples in the same order as an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

CHECKPOINT = re.compile(r"^step-(\d{6,})$")
CONSUMED = "consumed-examples.json"
RUN_INFO = "tunegate-run.json"


class ConsumedLog:
    """step -> example ids, in the order the step's batches were drawn."""

    def __init__(self, example_ids: list[str]) -> None:
        self.example_ids = list(example_ids)
        self.steps: dict[int, list[str]] = {}
        self._pending: list[str] = []

    def record(self, indices: list[int]) -> None:
        self._pending.extend(self.example_ids[i] for i in indices)

    def close_step(self, step: int) -> None:
        self.steps[step] = self._pending
        self._pending = []

    def up_to(self, step: int) -> dict[int, list[str]]:
        return {s: ids for s, ids in sorted(self.steps.items()) if s <= step}

    def save(self, path: Path, up_to_step: int | None = None) -> None:
        steps = self.steps if up_to_step is None else self.up_to(up_to_step)
        path.write_text(json.dumps({str(s): ids for s, ids in sorted(steps.items())}, indent=0))

    def load(self, path: Path) -> None:
        self.steps = {int(s): list(ids) for s, ids in json.loads(path.read_text()).items()}
        self._pending = []


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with path.open("rb") as fh:
                os.fsync(fh.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def committed_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CHECKPOINT.match(p.name)) and p.is_dir()]
    return sorted(found)


def latest_checkpoint(folder: Path) -> Path | None:
    found = committed_checkpoints(folder)
    return found[-1][1] if found else None


def clear_staging(staging: Path) -> None:
    """Remove what a killed save left behind; nothing in staging is ever resumed from."""
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True, exist_ok=True)


class AtomicCheckpoints(TrainerCallback):
    """Commit each Trainer checkpoint by renaming it out of staging; keep the newest `keep`."""

    def __init__(self, staging: Path, committed: Path, keep: int, log: ConsumedLog, run_info: dict[str, Any]):
        self.staging = staging
        self.committed = committed
        self.keep = keep
        self.log = log
        self.run_info = run_info
        self.committed.mkdir(parents=True, exist_ok=True)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.log.close_step(state.global_step)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        step = state.global_step
        written = self.staging / f"checkpoint-{step}"
        if not written.is_dir():
            return
        # The Trainer pickles its arguments next to the weights; nothing reads that file back, and
        # nothing pickled is kept (optimizer and RNG states are plain tensors, read with weights_only).
        (written / "training_args.bin").unlink(missing_ok=True)
        self.log.save(written / CONSUMED, up_to_step=step)
        (written / RUN_INFO).write_text(json.dumps({**self.run_info, "step": step}, indent=2, sort_keys=True))
        _fsync_tree(written)
        target = self.committed / f"step-{step:06d}"
        if target.exists():  # the same step saved again (a resumed run re-reaching it): replace it whole
            shutil.rmtree(target)
        os.rename(written, target)  # the commit point
        _fsync_dir(self.committed)
        for _, old in committed_checkpoints(self.committed)[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
