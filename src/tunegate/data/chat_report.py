"""The chat data report as a person reads it: a terminal summary, and JSON + standalone HTML files.

Texts are never shown in full: row errors name file, line and reason; findings name rows by
file:line. The JSON twin holds every count and finding; the HTML is a small self-contained page.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from tunegate.data.report import shown_text

if TYPE_CHECKING:
    from tunegate.data.chat_check import ChatDataReport


def report_dict(report: ChatDataReport) -> dict[str, Any]:
    def ref(r: Any) -> str:
        return f"{r.file}:{r.line}"

    return {
        "task": "sft",
        "spec": {"name": report.spec_name, "sha256": report.spec_sha256, "base_model": report.base_model},
        "chat_template_sha256": report.template_sha256,
        "fingerprint": report.fingerprint,
        "passed": report.passed,
        "blockers": report.blockers,
        "warnings": report.warnings,
        "splits": {
            split: {
                "file": report.files[split],
                "total_rows": report.total_rows[split],
                "usable_rows": len(report.train if split == "train" else report.test),
                "row_errors": len(report.row_errors[split]),
            }
            for split in ("train", "test")
        },
        "row_errors": [{"split": s, **asdict(e)} for s in ("train", "test") for e in report.row_errors[s]],
        "tokens": {split: stats.to_dict() for split, stats in report.tokens.items()},
        "training_estimate": report.estimate,
        "template_problems": report.template_problems,
        "duplicates": [
            {"split": g.split, "rows": [ref(r) for r in g.rows], "text": shown_text(g.text)}
            for g in report.duplicates
        ],
        "near_duplicates": [
            {"first": ref(p.first), "second": ref(p.second), "similarity": round(p.similarity, 4)}
            for p in report.near_duplicates
        ],
        "leakage": [
            {
                "test": ref(x.test),
                "train": ref(x.train),
                "similarity": round(x.similarity, 4),
                "exact": x.exact,
            }
            for x in report.leakage
        ],
        "pii": {
            "counts": dict(Counter(f.kind for f in report.pii)),
            "findings": [asdict(f) for f in report.pii],
        },
    }


def print_chat_report(report: ChatDataReport, console: Console) -> None:
    table = Table(
        "split",
        "rows",
        "usable",
        "malformed",
        "tokens p50/p95/max",
        "assistant tokens",
        "over max",
        title=f"chat data: {report.spec_name} (base {report.base_model})",
    )
    for split in ("train", "test"):
        t = report.tokens[split].to_dict()
        table.add_row(
            split,
            f"{report.total_rows[split]:,}",
            f"{t['conversations']:,}",
            f"{len(report.row_errors[split]):,}",
            f"{t['tokens_p50']:.0f}/{t['tokens_p95']:.0f}/{t['tokens_max']}",
            f"{t['assistant_tokens_total']:,}",
            f"{t['over_max_length']:,}",
        )
    console.print(table)
    for split in ("train", "test"):
        for error in report.row_errors[split][:20]:
            console.print(f"  [yellow]row error[/] {error}", highlight=False)
        if len(report.row_errors[split]) > 20:
            console.print(
                f"  … and {len(report.row_errors[split]) - 20} more {split} row errors (see the JSON report)"
            )
    e = report.estimate
    console.print(
        f"training estimate: {e['training_tokens_per_epoch']:,.0f} tokens/epoch x {e['epochs']:g} epochs, "
        f"~{e['estimated_seconds_per_epoch']:.0f} s and ${e['estimated_usd_per_epoch']:.4f} per epoch "
        f"at {e['assumed_tokens_per_s']:g} tokens/s"
    )
    console.print(f"fingerprint {report.fingerprint[:16]}…  chat template {report.template_sha256[:12]}")
    for w in report.warnings:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)
    for b in report.blockers:
        console.print(f"[red]blocker:[/] {b}", highlight=False)
    console.print("[green]data check passed[/]" if report.passed else "[red]data check found blockers[/]")


def write_chat_report(report: ChatDataReport, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    data = report_dict(report)
    json_path, html_path = folder / "data-report.json", folder / "data-report.html"
    json_path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    html_path.write_text(_html(data), encoding="utf-8")
    return [json_path, html_path]


def _html(data: dict[str, Any]) -> str:
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(s)}</td><td>{v['total_rows']}</td><td>{v['usable_rows']}</td><td>{v['row_errors']}</td>"
        f"<td>{data['tokens'][s]['tokens_p50']:.0f} / {data['tokens'][s]['tokens_p95']:.0f} / "
        f"{data['tokens'][s]['tokens_max']}</td><td>{data['tokens'][s]['over_max_length']}</td></tr>"
        for s, v in data["splits"].items()
    )
    items = "".join(f"<li class=b>{esc(b)}</li>" for b in data["blockers"]) + "".join(
        f"<li>{esc(w)}</li>" for w in data["warnings"]
    )
    errors = "".join(
        f"<tr><td>{esc(e['file'])}:{e['line']}</td><td>{esc(e['reason'])}</td></tr>"
        for e in data["row_errors"][:500]
    )
    est = data["training_estimate"]
    return f"""<!doctype html><html><head><meta charset=utf-8><title>data check: {esc(data["spec"]["name"])}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:70em}}td,th{{border:1px solid #ccc;padding:.3em .6em}}
table{{border-collapse:collapse}}.b{{color:#b00}}</style></head><body>
<h1>Chat data check: {esc(data["spec"]["name"])} — {"passed" if data["passed"] else "BLOCKED"}</h1>
<p>base model {esc(data["spec"]["base_model"])}; fingerprint <code>{data["fingerprint"]}</code>;
chat template <code>{data["chat_template_sha256"][:16]}</code></p>
<table><tr><th>split</th><th>rows</th><th>usable</th><th>malformed</th><th>tokens p50 / p95 / max</th><th>over max length</th></tr>{rows}</table>
<p>Training estimate: {est["training_tokens_per_epoch"]:,.0f} tokens per epoch, ${est["estimated_usd_per_epoch"]:.4f} per epoch
at an assumed {est["assumed_tokens_per_s"]:g} tokens/s.</p>
<h2>Findings</h2><ul>{items or "<li>none</li>"}</ul>
<h2>Row errors</h2><table><tr><th>row</th><th>reason</th></tr>{errors or "<tr><td colspan=2>none</td></tr>"}</table>
</body></html>
"""
