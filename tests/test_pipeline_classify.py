"""The classifier chain from the CLI, as a user runs it: init-style spec -> run -> models -> predict.

Uses the packaged encoder on a 3-intent slice of the bundled example, so it is real end to end but
small enough for the default test run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "support-intents" / "data"
INTENTS = ("password_reset", "shipping_delay", "invoice_request")

SPEC = """\
name: mini-intents
task: classify
targets:
  judge_on: point
  quality:
    macro_f1_min: 0.6
    beat_baseline: false
  latency:
    p95_ms_max: 5000
  cost:
    hourly_price_usd: 0.10
    training_usd_max: 1.0
data:
  train: train.jsonl
  test: test.jsonl
  min_examples_per_class: 4
train:
  examples_per_class: 6
  epochs: 2
eval:
  slices: [channel]
  bootstrap_samples: 200
  latency_requests: 20
"""


def _subset(source: Path, dest: Path, per_class: int) -> None:
    kept: dict[str, int] = {}
    lines = []
    for line in source.read_text().splitlines():
        row = json.loads(line)
        if row["label"] in INTENTS and kept.get(row["label"], 0) < per_class:
            kept[row["label"]] = kept.get(row["label"], 0) + 1
            lines.append(line)
    dest.write_text("\n".join(lines) + "\n")


def tunegate(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tunegate", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


@pytest.mark.integration
def test_run_registers_a_gated_candidate_and_predicts(tmp_path: Path) -> None:
    _subset(EXAMPLE / "train.jsonl", tmp_path / "train.jsonl", 8)
    _subset(EXAMPLE / "test.jsonl", tmp_path / "test.jsonl", 10)
    (tmp_path / "tunegate.yaml").write_text(SPEC)

    run = tunegate("run", ".", "-w", "ws", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "PASS" in run.stdout
    report = tmp_path / "ws" / "reports" / "mini-intents-v1" / "gate-report.html"
    assert 'id="confusion-matrix"' in report.read_text()

    listed = tunegate("models", "list", "-w", "ws", cwd=tmp_path)
    assert "mini-intents" in listed.stdout and "candidate" in listed.stdout

    shown = json.loads(tunegate("models", "show", "mini-intents@1", "-w", "ws", cwd=tmp_path).stdout)
    assert shown["lineage"]["train_examples"] == 18
    assert shown["lineage"]["spec"]["name"] == "mini-intents"
    assert set(shown["lineage"]["libraries"]) >= {"torch", "transformers", "scikit-learn"}
    tree = tmp_path / "ws" / "artifacts" / "trees" / shown["artifact_sha256"]
    stored_report = json.loads((tree / "data-report.json").read_text())
    assert stored_report["fingerprint"] == shown["data_fingerprint"]

    (tmp_path / "in.jsonl").write_text(
        '{"text": "my parcel is a week late"}\n{"text": "send me the invoice pdf"}\n'
    )
    predicted = tunegate("predict", "mini-intents", "in.jsonl", "-o", "out.jsonl", "-w", "ws", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["label"] for r in rows] == ["shipping_delay", "invoice_request"]
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-5 for r in rows)


def test_misspelled_spec_key_exits_two_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "tunegate.yaml").write_text(SPEC.replace("macro_f1_min: 0.6", "macro_f1_mn: 0.6"))
    bad = tunegate("run", ".", "-w", "ws", cwd=tmp_path)
    assert bad.returncode == 2
    assert "targets.quality.macro_f1_mn" in bad.stderr
