"""The data report as rich tables for the terminal: summary, classes, findings, row errors, verdict.

Long lists are cut (the first rows, then "and N more"); the full lists are in data-report.json.
Texts are shown masked and shortened (`report.shown_text`), never in full.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tunegate.data.report import SPLITS, shown_text

if TYPE_CHECKING:
    from tunegate.data.report import DataReport

ROW_ERRORS_SHOWN = 20
FINDINGS_SHOWN = 10


def print_report(report: DataReport, console: Console) -> None:
    console.rule(f"data check: {escape(report.spec_name)}")
    _summary(report, console)
    _classes(report, console)
    _findings(report, console)
    _row_errors(report, console)
    _verdict(report, console)


def _short(file: str) -> str:
    """A file as the person typed it: relative to the working directory when it is under it."""
    try:
        return os.path.relpath(file) if Path(file).resolve().is_relative_to(Path.cwd()) else file
    except ValueError:  # another drive on Windows
        return file


def _where(*refs: object) -> str:
    return " ~ ".join(f"{_short(r.file)}:{r.line}" for r in refs)  # type: ignore[attr-defined]


def _summary(report: DataReport, console: Console) -> None:
    for split in SPLITS:
        console.print(f"{split}: {escape(_short(report.files[split]))}", highlight=False)
    table = Table(
        "split",
        "rows",
        "usable",
        "malformed",
        "duplicates",
        "tokens p50/p95/max",
        "truncated",
        title="Summary",
    )
    for split in SPLITS:
        copies = sum(g.extra_copies for g in report.duplicates if g.split == split)
        lengths = report.lengths.get(split)
        tokens = f"{lengths.p50:.0f} / {lengths.p95:.0f} / {lengths.longest}" if lengths else "-"
        truncated = f"{lengths.truncated:,}" if lengths else "-"
        errors = len(report.row_errors[split])
        table.add_row(
            split,
            f"{report.total_rows[split]:,}",
            f"{report.usable_rows(split):,}",
            f"[red]{errors:,}[/]" if errors else "0",
            f"{copies:,}",
            tokens,
            truncated,
        )
    console.print(table)


def _classes(report: DataReport, console: Console) -> None:
    balance = report.balance
    ratio = "∞" if math.isinf(balance.imbalance_ratio) else f"{balance.imbalance_ratio:.1f}"
    table = Table("class", "train", "test", "", title=f"Classes (imbalance ratio {ratio})")
    for label in balance.classes:
        note = []
        if label in balance.small_classes:
            note.append(f"[yellow]< {balance.min_examples_per_class} train rows[/]")
        if label in balance.test_labels_missing_from_train:
            note.append("[yellow]not in train[/]")
        table.add_row(
            escape(label),
            f"{balance.train_counts[label]:,}",
            f"{balance.test_counts[label]:,}",
            ", ".join(note),
        )
    console.print(table)


def _findings(report: DataReport, console: Console) -> None:
    table = Table("finding", "where", "detail", title="Findings")
    for leak in report.leakage[:FINDINGS_SHOWN]:
        kind = "leakage (exact)" if leak.exact else f"leakage ({leak.similarity:.2f})"
        table.add_row(kind, _where(leak.test, leak.train), escape(shown_text(leak.text)))
    _more(table, len(report.leakage), "leaks")
    for group in report.duplicates[:FINDINGS_SHOWN]:
        kind = "duplicate, conflicting labels" if group.conflicting else "duplicate"
        where = ", ".join(_where(r) for r in group.rows[:4]) + (" …" if len(group.rows) > 4 else "")
        labels = f" [labels: {', '.join(group.labels)}]" if group.conflicting else ""
        table.add_row(f"{kind} ({group.split})", escape(where), escape(shown_text(group.text) + labels))
    _more(table, len(report.duplicates), "duplicate groups")
    for pair in report.near_duplicates[:FINDINGS_SHOWN]:
        table.add_row(
            f"near-duplicate ({pair.similarity:.2f})",
            _where(pair.first, pair.second),
            escape(shown_text(pair.text)),
        )
    _more(table, len(report.near_duplicates), "near-duplicate pairs")
    for finding in report.pii[:FINDINGS_SHOWN]:
        table.add_row(f"pii: {finding.kind}", _where(finding), escape(finding.snippet))
    if len(report.pii) > FINDINGS_SHOWN:
        counts = ", ".join(f"{n} {k}" for k, n in Counter(f.kind for f in report.pii).most_common())
        table.add_row("", f"and {len(report.pii) - FINDINGS_SHOWN:,} more", f"all PII: {counts}")
    for split, lengths in report.lengths.items():
        for row, tokens in lengths.longest_rows[:FINDINGS_SHOWN]:
            table.add_row(f"too long ({split})", _where(row), f"{tokens:,} tokens > {lengths.max_length}")
        _more(table, lengths.truncated, "too-long rows")
    if table.row_count:
        console.print(table)
    else:
        console.print("[green]no duplicates, leakage, PII or over-long rows found[/]")
    if not report.pii_checked:
        console.print("PII scan off (data.pii: false)")


def _more(table: Table, total: int, what: str) -> None:
    if total > FINDINGS_SHOWN:
        table.add_row("", f"and {total - FINDINGS_SHOWN:,} more {what}", "see data-report.json")


def _row_errors(report: DataReport, console: Console) -> None:
    errors = report.all_row_errors()
    if not errors:
        return
    console.print(f"[bold]Row errors[/] ({len(errors):,} rows not used)")
    for _, error in errors[:ROW_ERRORS_SHOWN]:
        console.print(f"  {escape(_where(error))}: {escape(error.reason)}", highlight=False)
    if len(errors) > ROW_ERRORS_SHOWN:
        console.print(f"  and {len(errors) - ROW_ERRORS_SHOWN:,} more (all in data-report.json)")


def _verdict(report: DataReport, console: Console) -> None:
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    for blocker in report.blockers:
        console.print(f"[red]blocker:[/] {escape(blocker)}", highlight=False)
    verdict = "[red]BLOCKED[/]" if report.blockers else "[green]OK[/]"
    console.print(f"{verdict}  data fingerprint sha256:{report.fingerprint}", highlight=False)
