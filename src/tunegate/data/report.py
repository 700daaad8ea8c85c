"""The data report: every finding of a check, the verdict, the usable rows and the data fingerprint.

The fingerprint is a sha256 over the usable rows' content, independent of file format and row order:
each row becomes the canonical JSON of [split, text, label, metadata] (sorted keys, no spaces), the
lines are sorted, joined with newlines and hashed. Row order and JSONL vs. Parquet do not change it;
any edit to a usable row's text, label or metadata, or moving a row between splits, does. Two caveats
follow from hashing content: CSV metadata values are strings, so a CSV and a JSONL file with numeric
metadata differ; and malformed rows are not part of it (they are not data the model sees).

The report holds the findings and renders them; it decides nothing (see `verdict`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from tunegate.data.balance import LabelBalance
from tunegate.data.duplicates import DuplicateGroup, Leak, RowRef
from tunegate.data.examples import Example, RowError
from tunegate.data.lengths import TokenLengths
from tunegate.data.near_duplicates import NearDuplicatePair
from tunegate.data.pii import PiiFinding, redact

SHOWN_TEXT_CHARS = 160
SPLITS = ("train", "test")


def fingerprint(train: list[Example], test: list[Example]) -> str:
    lines = sorted(
        json.dumps([split, e.text, e.label, e.metadata], sort_keys=True, separators=(",", ":"), default=str)
        for split, rows in (("train", train), ("test", test))
        for e in rows
    )
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def shown_text(text: str) -> str:
    """What a report shows of a row's text: PII masked, whitespace collapsed, cut to SHOWN_TEXT_CHARS."""
    flat = " ".join(redact(text).split())
    return flat if len(flat) <= SHOWN_TEXT_CHARS else flat[: SHOWN_TEXT_CHARS - 1] + "…"


@dataclass(frozen=True)
class DataReport:
    """Everything `tunegate data check` found. `train` / `test` are the usable rows, for training to reuse."""

    spec_name: str
    spec_sha256: str
    base_model: str
    settings: dict[str, Any]  # the spec's data section and train.max_length, as checked
    files: dict[str, str]
    total_rows: dict[str, int]
    row_errors: dict[str, list[RowError]]
    duplicates: list[DuplicateGroup]
    near_duplicates: list[NearDuplicatePair]
    leakage: list[Leak]
    balance: LabelBalance
    lengths: dict[str, TokenLengths]
    pii: list[PiiFinding]
    pii_checked: bool
    fingerprint: str
    train: list[Example] = field(repr=False)
    test: list[Example] = field(repr=False)
    blockers: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.blockers

    def usable_rows(self, split: str) -> int:
        return len(self.train if split == "train" else self.test)

    def all_row_errors(self) -> list[tuple[str, RowError]]:
        return [(split, error) for split in SPLITS for error in self.row_errors[split]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: counts and findings, no full row lists (texts shown are masked and shortened)."""

        def ref(r: RowRef) -> dict[str, Any]:
            return {"file": r.file, "line": r.line, "label": r.label}

        balance = asdict(self.balance)
        if math.isinf(self.balance.imbalance_ratio):
            balance["imbalance_ratio"] = None  # a class with 0 rows; JSON has no infinity
        return {
            "spec": {"name": self.spec_name, "sha256": self.spec_sha256, "base_model": self.base_model},
            "settings": self.settings,
            "fingerprint": self.fingerprint,
            "passed": self.passed,
            "blockers": self.blockers,
            "warnings": self.warnings,
            "splits": {
                split: {
                    "file": self.files[split],
                    "total_rows": self.total_rows[split],
                    "usable_rows": self.usable_rows(split),
                    "row_errors": len(self.row_errors[split]),
                }
                for split in SPLITS
            },
            "row_errors": [{"split": split, **asdict(error)} for split, error in self.all_row_errors()],
            "label_balance": balance,
            "duplicates": [
                {
                    "split": g.split,
                    "text": shown_text(g.text),
                    "rows": [ref(r) for r in g.rows],
                    "labels": list(g.labels),
                    "conflicting": g.conflicting,
                }
                for g in self.duplicates
            ],
            "near_duplicates": [
                {
                    "split": p.split,
                    "first": ref(p.first),
                    "second": ref(p.second),
                    "similarity": round(p.similarity, 4),
                    "text": shown_text(p.text),
                }
                for p in self.near_duplicates
            ],
            "leakage": [
                {
                    "test": ref(leak.test),
                    "train": ref(leak.train),
                    "similarity": round(leak.similarity, 4),
                    "exact": leak.exact,
                    "text": shown_text(leak.text),
                }
                for leak in self.leakage
            ],
            "token_lengths": {
                split: {
                    "max_length": lengths.max_length,
                    "p50": lengths.p50,
                    "p95": lengths.p95,
                    "max": lengths.longest,
                    "truncated": lengths.truncated,
                    "truncated_fraction": lengths.truncated_fraction,
                    "longest_rows": [{**ref(r), "tokens": n} for r, n in lengths.longest_rows],
                }
                for split, lengths in self.lengths.items()
            },
            "pii": {
                "checked": self.pii_checked,
                "counts": dict(Counter(f.kind for f in self.pii)),
                "findings": [asdict(f) for f in self.pii],
            },
        }

    def print(self, console: Console) -> None:
        from tunegate.data.render_console import print_report

        print_report(self, console)

    def write(self, folder: str | Path) -> list[Path]:
        """Write data-report.json and a standalone data-report.html into folder; returns both paths."""
        from tunegate.data.render_html import render_html

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        json_path, html_path = folder / "data-report.json", folder / "data-report.html"
        json_path.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")
        html_path.write_text(render_html(self), encoding="utf-8")
        return [json_path, html_path]
