"""`check_data`: read both splits, run every check, decide blockers, return the report.

This is the flow `tunegate data check` runs, top to bottom; each check is a pure function in its own
module, and this module only wires them and shows progress (a transient rich progress bar on
stderr, so the report on stdout stays clean when piped).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tunegate.data.balance import label_balance
from tunegate.data.duplicates import exact_duplicates, exact_leakage
from tunegate.data.lengths import load_tokenizer, token_lengths
from tunegate.data.near_duplicates import TrainIndex
from tunegate.data.pii import scan_pii
from tunegate.data.readers import ProgressFn, ReadResult, read_examples
from tunegate.data.report import DataReport, fingerprint
from tunegate.data.verdict import decide
from tunegate.spec.load import LoadedSpec

Split = Literal["train", "test"]


def load_split_examples(
    loaded: LoadedSpec, split: Split, on_progress: ProgressFn | None = None
) -> ReadResult:
    """Read one split of the spec's data with the spec's field names and labels."""
    data = loaded.spec.data
    path = loaded.resolve(data.train if split == "train" else data.test)
    return read_examples(
        path,
        text_field=data.text_field,
        label_field=data.label_field,
        labels=data.labels,
        on_progress=on_progress,
    )


class _Steps:
    """One progress bar per step; `step(name)` gives the on_progress callback for it."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress

    def step(self, name: str) -> ProgressFn | None:
        if self.progress is None:
            return None
        task = self.progress.add_task(name, total=None)
        progress = self.progress

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        return update


@contextmanager
def _progress(enabled: bool) -> Iterator[_Steps]:
    if not enabled:
        yield _Steps(None)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        yield _Steps(progress)


def check_data(loaded: LoadedSpec, progress: bool = True) -> DataReport:
    """Every data check of the spec; raises DataError only when a file cannot be read at all."""
    spec, data = loaded.spec, loaded.spec.data
    with _progress(progress) as steps:
        train_read = load_split_examples(loaded, "train", steps.step("reading train"))
        test_read = load_split_examples(loaded, "test", steps.step("reading test"))
        train, test = train_read.examples, test_read.examples

        tokenizer = load_tokenizer(spec.base_model, loaded.root)
        lengths = {
            split: token_lengths(
                rows, split, tokenizer, spec.train.max_length, steps.step(f"tokenizing {split}")
            )
            for split, rows in (("train", train), ("test", test))
        }
        index = TrainIndex(train, data.near_duplicate_threshold, on_progress=steps.step("near-duplicates"))
        leaks = exact_leakage(train, test) + index.leaks(test, steps.step("leakage"))
        pii = (scan_pii(train, "train") + scan_pii(test, "test")) if data.pii else []

    report = DataReport(
        spec_name=spec.name,
        spec_sha256=loaded.sha256,
        base_model=spec.base_model,
        settings={**data.model_dump(mode="json"), "max_length": spec.train.max_length},
        files={"train": str(train_read.path), "test": str(test_read.path)},
        total_rows={"train": train_read.total_rows, "test": test_read.total_rows},
        row_errors={"train": train_read.errors, "test": test_read.errors},
        duplicates=exact_duplicates(train, "train") + exact_duplicates(test, "test"),
        near_duplicates=index.pairs,
        leakage=leaks,
        balance=label_balance(train, test, data.labels, data.min_examples_per_class),
        lengths=lengths,
        pii=pii,
        pii_checked=data.pii,
        fingerprint=fingerprint(train, test),
        train=train,
        test=test,
    )
    blockers, warnings = decide(report, data)
    return dataclasses.replace(report, blockers=blockers, warnings=warnings)
