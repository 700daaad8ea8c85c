"""The monitor service without HTTP: drift windows from served embeddings fire the drift rule on the
production version (and only after `consecutive_windows` shifted windows), which rolls it back and
logs the incident; canary versions are watched but never acted on."""

from __future__ import annotations

import numpy as np

from test_serve_support import register
from tunegate.monitor import Monitor
from tunegate.serve.events import RequestEvent
from tunegate.spec.schema import MonitorSpec, RollbackSpec
from tunegate.store import open_store
from tunegate.store.decision_log import read_decisions

DIM = 16


def _events(ref: str, vectors: np.ndarray, per_request: int = 5) -> list[RequestEvent]:
    return [
        RequestEvent(
            request_id=f"r{i}",
            time_s=0.0,
            endpoint="classify",
            status_code=200,
            latency_ms=5.0,
            model_ref=ref,
            texts=("t",) * len(chunk),
            confidences=(0.9,) * len(chunk),
            embeddings=chunk,
        )
        for i, chunk in enumerate(np.array_split(vectors, len(vectors) // per_request))
    ]


def test_drift_fires_after_consecutive_shifted_windows_and_rolls_back(tmp_path) -> None:
    store = open_store(tmp_path / "ws")
    folder = tmp_path / "fake-model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"x")  # the registry needs bytes; no model is loaded here
    v1 = register(store, folder, "tickets")
    (folder / "weights.bin").write_bytes(b"y")
    v2 = register(store, folder, "tickets")
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(800, DIM))
    monitor = Monitor(
        store,
        rules=RollbackSpec(error_rate_max=None, drift=True, consecutive_windows=2, min_requests=1),
        settings=MonitorSpec(window_s=3600, drift_window_size=50, drift_reference_size=500),
        reference=lambda version: reference,
    )
    feed = np.random.default_rng(1)
    for event in _events("tickets@2", feed.normal(size=(200, DIM))):  # 4 windows of unchanged traffic
        monitor.observe(event)
    monitor.tick()
    track = monitor.tracks["tickets@2"]
    assert len(track.drift_scores) == 4 and track.drift_status == "ok" and not monitor.incidents
    for event in _events("tickets@2", feed.normal(0.6, 1.0, size=(50, DIM))):  # one shifted window: not yet
        monitor.observe(event)
    monitor.tick()
    assert track.drift_status == "drifting" and not monitor.incidents
    assert store.meta.resolve("tickets@production").id == v2.id
    for event in _events("tickets@2", feed.normal(0.6, 1.0, size=(50, DIM))):  # the second in a row fires
        monitor.observe(event)
    monitor.tick()
    assert monitor.incidents and monitor.incidents[0]["outcome"] == "rolled back to tickets@1"
    assert store.meta.resolve("tickets@production").id == v1.id
    incident = next(e for e in read_decisions(store.meta) if e.action == "incident")
    assert incident.subject == "tickets@2" and incident.reason.startswith("drift above")
    assert incident.payload["rules"][0]["rule"] == "drift"
    # Traffic still arriving for the old version (in-flight requests) is watched, not acted on again.
    for event in _events("tickets@2", feed.normal(0.6, 1.0, size=(100, DIM))):
        monitor.observe(event)
    monitor.tick()
    assert len(monitor.incidents) == 1


def test_without_a_reference_drift_is_unavailable_not_an_error(tmp_path) -> None:
    store = open_store(tmp_path / "ws")
    monitor = Monitor(store, rules=RollbackSpec(), settings=MonitorSpec(drift_window_size=10))
    for event in _events("tickets@1", np.zeros((20, DIM))):
        monitor.observe(event)
    monitor.tick()
    assert monitor.tracks["tickets@1"].drift_status == "unavailable"
    assert len(monitor.tracks["tickets@1"].drift_buffer) <= 10
