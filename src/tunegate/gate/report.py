"""The gate's verdict for people: a standalone HTML report, a JSON twin, and a terminal table.

The HTML has no external assets (inline CSS, figures as inline base64 PNG) so it can be mailed,
archived as an artifact or opened offline, and it prints cleanly. The same inputs give the same bytes:
no timestamps are written, because the report is content-addressed evidence.

Deliberately not here: deciding (decide.py), storing the report (the pipeline, through store/).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tunegate.evaluate.slices import MIN_ROWS_FOR_INTERVAL
from tunegate.gate.decide import GateVerdict, TargetResult
from tunegate.gate.plots import calibration_curve_png, confusion_matrix_png, latency_histogram_png

REPORT_FORMAT = "tunegate.gate-report/1"
_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent),
    autoescape=select_autoescape(["html", "j2"]),
    undefined=StrictUndefined,  # a typo in the template is an error, not a silently blank cell
)


_RELATION = {"min": "≥", "above": ">", "max": "≤"}


def _fmt(x: Any, digits: int = 3) -> str:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        return "—"
    return f"{x:.{digits}f}"


def _interval(cell: Any) -> str:
    if not isinstance(cell, dict):
        return "—"
    if cell.get("low") is None or cell.get("high") is None:
        return _fmt(cell.get("value"))
    return f"{_fmt(cell.get('value'))} [{_fmt(cell['low'])}, {_fmt(cell['high'])}]"


def _target_row(t: TargetResult) -> dict[str, str]:
    is_money = t.name.startswith("cost.")
    digits = 4 if is_money else 3
    interval = "—" if t.low is None or t.high is None else f"{_fmt(t.low, digits)} – {_fmt(t.high, digits)}"
    return {
        "name": t.name,
        "threshold": f"{_RELATION[t.bound]} {t.threshold:g}",
        "measured": _fmt(t.measured, 1 if t.name.startswith("latency.") else digits),
        "interval": interval,
        "compared": _fmt(t.compared, 1 if t.name.startswith("latency.") else digits),
        "status": "PASS" if t.passed else "FAIL",
        "sentence": t.sentence,
    }


def _comparison(results: dict[str, Any]) -> dict[str, Any]:
    models = [("candidate", results)]
    for name in ("baseline", "production"):
        if isinstance(results.get(name), dict):
            models.append((name, results[name]))
    rows = [
        {"metric": label, "cells": [_interval((m.get("metrics") or {}).get(key)) for _, m in models]}
        for key, label in (
            ("accuracy", "accuracy"),
            ("macro_f1", "macro-F1"),
            ("ece", "ECE (lower is better)"),
        )
    ]
    rows.append(
        {
            "metric": "Δ macro-F1 (candidate − model)",
            "cells": ["—"] + [_interval(m.get("delta_macro_f1")) for _, m in models[1:]],
        }
    )
    return {"columns": [name for name, _ in models], "rows": rows}


def _view(verdict: GateVerdict, results: dict[str, Any], refs: dict[str, str]) -> dict[str, Any]:
    labels = results.get("labels") or []
    recall = (results.get("metrics") or {}).get("per_class_recall") or {}
    per_class = [
        {
            "label": label,
            "precision": _fmt(row.get("precision")),
            "recall": _fmt(row.get("recall")),
            "interval": _interval(recall.get(label)),
            "f1": _fmt(row.get("f1")),
            "support": row.get("support", "—"),
        }
        for label, row in (results.get("per_class") or {}).items()
    ]
    slices = [
        {
            "field": field,
            "missing_rows": s.get("missing_rows", 0),
            "rows": [
                {
                    "value": value,
                    "n": v.get("n"),
                    **{k: _interval(v["metrics"].get(k)) for k in ("accuracy", "macro_f1", "ece")},
                }
                for value, v in (s.get("values") or {}).items()
            ],
        }
        for field, s in (results.get("slices") or {}).items()
    ]
    latency = results.get("latency") or {}
    latency_rows = [
        {
            "batch_size": run.get("batch_size"),
            "requests": run.get("requests"),
            "p50": _fmt(run.get("p50_ms"), 2),
            "p95": _fmt(run.get("p95_ms"), 2),
            "p99": _fmt(run.get("p99_ms"), 2),
        }
        for run in (latency.get("by_batch_size") or {}).values()
    ]
    cost = results.get("cost") or {}
    throughput = latency.get("throughput") or {}
    hardware = [(k, v) for k, v in (latency.get("hardware") or {}).items()]
    hardware += [(f"version {k}", v) for k, v in (latency.get("versions") or {}).items()]
    return {
        "refs": refs,
        "verdict": verdict,
        "n_test": results.get("n_test", "?"),
        "targets": [_target_row(t) for t in verdict.targets],
        "comparison": _comparison(results),
        "has_production": isinstance(results.get("production"), dict),
        "baseline_kind": (results.get("baseline") or {}).get("kind"),
        "per_class": per_class,
        "slices": slices,
        "min_slice_rows": MIN_ROWS_FOR_INTERVAL,
        "plots": [
            {
                "id": "confusion-matrix",
                "alt": "confusion matrix heatmap",
                "caption": "Rows: true label; columns: predicted label.",
                "png": confusion_matrix_png(results.get("confusion"), labels),
            },
            {
                "id": "calibration-curve",
                "alt": "calibration curve (reliability diagram)",
                "caption": "Accuracy per confidence bin against the diagonal of perfect calibration.",
                "png": calibration_curve_png(results.get("calibration")),
            },
            {
                "id": "latency-histogram",
                "alt": "latency histogram",
                "caption": "Single requests after warm-up, with p50 and p95 marked.",
                "png": latency_histogram_png(latency),
            },
        ],
        "latency_rows": latency_rows,
        "cost": {
            "throughput": f"{_fmt(throughput.get('texts_per_s'), 1)} texts/s "
            f"at batch size {throughput.get('batch_size', '—')}",
            "training": f"${_fmt(cost.get('training_usd'), 4)} ({_fmt(cost.get('training_wall_s'), 1)} s)",
            "per_1k": f"${_fmt(cost.get('usd_per_1k_requests'), 6)}",
            "hourly": f"${_fmt(cost.get('hourly_price_usd'), 2)}/h",
            "assumption": cost.get("assumption", ""),
        },
        "hardware": hardware,
    }


def _finite(value: Any) -> Any:
    """JSON has no NaN: non-finite numbers become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def render_gate_report(
    verdict: GateVerdict, results: dict[str, Any], *, model_ref: str, spec_sha256: str, evidence_sha256: str
) -> tuple[str, str]:
    """(standalone HTML, JSON text) for one gate decision on one evaluation."""
    refs = {"model_ref": model_ref, "spec_sha256": spec_sha256, "evidence_sha256": evidence_sha256}
    html = _TEMPLATES.get_template("report.html.j2").render(**_view(verdict, results, refs))
    summaries = {
        name: (results.get(name) or {}).get("summary") if name != "candidate" else results.get("summary")
        for name in ("candidate", "baseline", "production")
    }
    document = {"format": REPORT_FORMAT, **refs, "verdict": verdict.to_dict(), "summary": summaries}
    return html, json.dumps(_finite(document), indent=2, sort_keys=True, allow_nan=False, ensure_ascii=False)


def print_verdict(verdict: GateVerdict, console: Console) -> None:
    """The verdict as a rich table: one row per target, green PASS / red FAIL, then the overall line."""
    table = Table(title="Gate", show_lines=False)
    for column in ("target", "threshold", "measured", "95% interval", "result"):
        table.add_column(column, justify="left" if column in ("target", "result") else "right")
    for t in verdict.targets:
        row = _target_row(t)
        status = "[green]PASS[/]" if t.passed else "[red]FAIL[/]"
        table.add_row(escape(row["name"]), row["threshold"], row["measured"], row["interval"], status)
    console.print(table)
    for t in verdict.failed:
        console.print(f"  [red]•[/] {escape(t.sentence)}", highlight=False)
    overall = "[bold green]PASS[/]" if verdict.passed else "[bold red]FAIL[/]"
    console.print(f"{overall}: {escape(verdict.reason)}", highlight=False)
