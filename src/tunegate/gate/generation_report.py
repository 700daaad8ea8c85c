"""The gate report of a chat model (task sft): targets, every suite candidate vs base, sample answers.

A standalone HTML page (no external assets) and its JSON twin. Numbers are shown with their 95%
intervals; sample answers are the first test conversations, candidate and base side by side, so a
reader sees what the numbers mean. Nothing here decides anything (`generation.decide_generation`).
"""

from __future__ import annotations

import html
import json
import math
from typing import Any

from tunegate.gate.decide import GateVerdict

REPORT_FORMAT = "tunegate.gate-report.sft/1"
SAMPLES_SHOWN = 8


def _num(x: Any, digits: int = 3) -> str:
    return (
        "—"
        if not isinstance(x, int | float) or isinstance(x, bool) or not math.isfinite(x)
        else f"{x:.{digits}g}"
    )


def _iv(cell: Any) -> str:
    if not isinstance(cell, dict) or cell.get("value") is None:
        return "—"
    return f"{_num(cell['value'])} [{_num(cell.get('low'))}, {_num(cell.get('high'))}]"


def suite_rows(suites: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = []
    for label, path in (
        ("chrF", ("reference", "chrf")),
        ("ROUGE-L", ("reference", "rouge_l")),
        ("terminology", ("terminology",)),
        ("voice rules", ("style", "rules")),
        ("voice similarity", ("style", "voice_similarity")),
        ("JSON-schema validity", ("format",)),
        ("general-prompt chrF", ("regression", "general_prompts", "chrf")),
    ):
        node: Any = suites
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            rows.append(
                (label, _iv(node.get("candidate")), _iv(node.get("base")), _iv(node.get("difference")))
            )
    ppl = (suites.get("regression") or {}).get("perplexity")
    if isinstance(ppl, dict):
        rows.append(
            (
                "general-text perplexity",
                _num(ppl.get("candidate")),
                _num(ppl.get("base")),
                "increase " + _iv(ppl.get("increase")),
            )
        )
    lat = suites.get("latency") or {}
    for label, key, sub in (
        ("TTFT p95 (ms)", "ttft_ms", "p95"),
        ("latency p95 (ms)", "latency_ms", "p95"),
        ("tokens/s p50", "tokens_per_s", "p50"),
    ):
        c = ((lat.get("candidate") or {}).get(key) or {}).get(sub)
        b = ((lat.get("base") or {}).get(key) or {}).get(sub)
        rows.append((label, _num(c, 4), _num(b, 4), ""))
    return rows


def render_generation_report(
    verdict: GateVerdict, results: dict[str, Any], *, model_ref: str, spec_sha256: str, evidence_sha256: str
) -> tuple[str, str]:
    esc = html.escape
    suites = results.get("suites") or {}
    targets = "".join(
        f"<tr class={'pass' if t.passed else 'fail'}><td>{esc(t.name)}</td><td>{'PASS' if t.passed else 'FAIL'}</td>"
        f"<td>{esc(t.sentence)}</td></tr>"
        for t in verdict.targets
    )
    suite_table = "".join(
        f"<tr><td>{esc(a)}</td><td>{esc(b)}</td><td>{esc(c)}</td><td>{esc(d)}</td></tr>"
        for a, b, c, d in suite_rows(suites)
    )
    samples = "".join(
        f"<tr><td>{esc(o['prompt'])}</td><td>{esc(o['candidate'])}</td><td>{esc(o['base'])}</td>"
        f"<td>{esc(o['reference'])}</td></tr>"
        for o in (results.get("outputs") or [])[:SAMPLES_SHOWN]
    )
    skipped = "".join(f"<li>{esc(k)}: {esc(v)}</li>" for k, v in (results.get("skipped") or {}).items())
    page = f"""<!doctype html><html><head><meta charset=utf-8><title>gate: {esc(model_ref)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:80em}}td,th{{border:1px solid #ccc;padding:.3em .6em;
vertical-align:top}}table{{border-collapse:collapse;margin-bottom:1.5em}}.pass td:nth-child(2){{color:#070}}
.fail td:nth-child(2){{color:#b00;font-weight:bold}}</style></head><body>
<h1>{esc(model_ref)}: {"PASS" if verdict.passed else "FAIL"}</h1><p>{esc(verdict.reason)}; judged on {esc(verdict.judge_on)}.
spec <code>{spec_sha256[:16]}</code>, evidence <code>{evidence_sha256[:16]}</code>, {results.get("n_test", "?")} test conversations.</p>
<h2>Targets</h2><table><tr><th>target</th><th>verdict</th><th>evidence</th></tr>{targets}</table>
<h2>Suites: candidate vs base (mean [95% interval])</h2>
<table><tr><th>suite</th><th>candidate</th><th>base</th><th>difference</th></tr>{suite_table}</table>
<p>Skipped: <ul>{skipped or "<li>none</li>"}</ul></p>
<h2>Sample answers</h2><table><tr><th>prompt</th><th>candidate</th><th>base</th><th>reference</th></tr>{samples}</table>
</body></html>
"""
    document = {
        "format": REPORT_FORMAT,
        "model_ref": model_ref,
        "spec_sha256": spec_sha256,
        "evidence_sha256": evidence_sha256,
        "verdict": verdict.to_dict(),
        "summary": results.get("summary"),
    }
    return page, json.dumps(document, indent=2, sort_keys=True, default=str)
