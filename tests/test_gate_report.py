"""The gate report: standalone HTML with the verdict and three figures, its JSON twin, the terminal table."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
from rich.console import Console

from tunegate.evaluate.metrics import paired_macro_f1_delta, score_classification
from tunegate.gate import decide, print_verdict, render_gate_report
from tunegate.spec.schema import Targets

LABELS = ["billing", "shipping", "<script>alert(1)</script>"]
REFS = {"model_ref": "toy@3", "spec_sha256": "a" * 64, "evidence_sha256": "b" * 64}


def evaluation(latency: bool = True) -> dict:
    rng = np.random.default_rng(0)
    y_true = np.arange(90) % 3
    y_pred = np.where(rng.random(90) < 0.85, y_true, (y_true + 1) % 3)
    confidence = rng.uniform(0.5, 1.0, 90)
    results = {"task": "classify", "n_test": 90, "labels": LABELS}
    results.update(score_classification(y_true, y_pred, confidence, LABELS, samples=200, seed=0))
    baseline_pred = np.where(rng.random(90) < 0.6, y_true, (y_true + 2) % 3)
    baseline = score_classification(y_true, baseline_pred, confidence, LABELS, samples=200, seed=0)
    delta = paired_macro_f1_delta(y_true, y_pred, baseline_pred, 3, samples=200, seed=0)
    results["baseline"] = {
        **baseline,
        "kind": "frozen-encoder + logistic regression",
        "delta_macro_f1": delta.to_dict(),
    }
    results["production"] = None
    results["slices"] = {}
    if latency:
        samples_ms = list(rng.gamma(4.0, 2.0, 50))
        p50, p95, p99 = np.percentile(samples_ms, [50, 95, 99])
        results["latency"] = {
            "by_batch_size": {
                "1": {
                    "batch_size": 1,
                    "requests": 50,
                    "p50_ms": p50,
                    "p95_ms": p95,
                    "p99_ms": p99,
                    "samples_ms": samples_ms,
                }
            },
            "throughput": {"batch_size": 32, "texts_per_s": 250.0},
            "hardware": {"cpu_model": "Test CPU"},
            "versions": {"numpy": np.__version__},
        }
    results["cost"] = {
        "training_wall_s": 60.0,
        "training_usd": 0.002,
        "usd_per_1k_requests": 0.0001,
        "hourly_price_usd": 0.1,
        "assumption": "batched serving",
    }
    return results


def targets(**quality) -> Targets:
    return Targets.model_validate({"quality": quality, "latency": {"p95_ms_max": 100}})


def images(html: str) -> dict[str, bytes]:
    found = re.findall(r'<img id="([a-z-]+)" alt="[^"]+" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    return {name: base64.b64decode(data) for name, data in found}


def test_html_holds_the_verdict_the_targets_and_three_figures():
    results = evaluation()
    verdict = decide(targets(macro_f1_min=0.5), results)
    assert verdict.passed
    html, json_text = render_gate_report(verdict, results, **REFS)

    assert 'id="verdict" class="banner pass"' in html and "PASS: all 3 targets passed" in html
    for name in ("quality.macro_f1_min", "quality.beat_baseline", "latency.p95_ms_max"):
        assert f"<code>{name}</code>" in html
    pngs = images(html)
    assert set(pngs) == {"confusion-matrix", "calibration-curve", "latency-histogram"}
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 2000 for png in pngs.values())
    assert REFS["evidence_sha256"] in html and "toy@3" in html

    document = json.loads(json_text)
    assert document["verdict"]["passed"] is True
    assert document["evidence_sha256"] == REFS["evidence_sha256"]
    assert document["summary"]["candidate"] == results["summary"]
    assert document["summary"]["production"] is None


def test_failing_verdict_is_red_and_names_the_failed_target():
    results = evaluation()
    verdict = decide(targets(macro_f1_min=0.99), results)
    html, _ = render_gate_report(verdict, results, **REFS)
    assert 'class="banner fail"' in html and "FAIL: failed: quality.macro_f1_min" in html
    assert '<td class="FAIL">FAIL</td>' in html


def test_html_is_standalone_escaped_and_deterministic():
    results = evaluation()
    verdict = decide(targets(), results)
    html, json_text = render_gate_report(verdict, results, **REFS)
    assert not re.search(r'(src|href)="(https?:)?//', html) and "<link" not in html and "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert render_gate_report(verdict, results, **REFS) == (html, json_text)


def test_missing_latency_is_said_not_drawn_and_fails_its_target():
    results = evaluation(latency=False)
    verdict = decide(targets(), results)
    html, _ = render_gate_report(verdict, results, **REFS)
    assert not verdict.passed
    assert set(images(html)) == {"confusion-matrix", "calibration-curve"}
    assert '<p id="latency-histogram" class="muted">' in html and "Latency was not measured." in html


def test_print_verdict_shows_every_target_and_the_failures():
    results = evaluation()
    verdict = decide(targets(macro_f1_min=0.99, accuracy_min=0.5), results)
    console = Console(
        file=io.StringIO(), record=True, width=160, color_system="truecolor", force_terminal=True
    )
    print_verdict(verdict, console)
    text = console.export_text(clear=False)
    assert "quality.macro_f1_min" in text and "quality.accuracy_min" in text
    assert text.count("PASS") >= 1 and "FAIL: failed: quality.macro_f1_min" in text
    styled = console.export_html(inline_styles=True)
    assert "#800000" in styled or "#ff0000" in styled  # red is used for FAIL
