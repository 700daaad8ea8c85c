"""`tunegate serve --spec` wiring of the monitor: the drift reference is the spec's training texts
embedded by the served version's own encoder, cached by the version's bytes."""

from __future__ import annotations

import json

import numpy as np

from test_serve_support import classifier_folder, register
from tunegate.models import TextClassifier
from tunegate.monitor import start_monitor
from tunegate.spec.load import load_spec
from tunegate.store import open_store


def test_start_monitor_embeds_training_texts_with_the_served_encoder(tmp_path) -> None:
    texts = [f"ticket number {i} about {topic}" for i in range(30) for topic in ("billing", "shipping")]
    (tmp_path / "train.jsonl").write_text(
        "".join(json.dumps({"text": t, "label": "a"}) + "\n" for t in texts)
    )
    (tmp_path / "test.jsonl").write_text(json.dumps({"text": "x", "label": "a"}) + "\n")
    (tmp_path / "tunegate.yaml").write_text(
        "name: tickets\ntask: classify\ndata:\n  train: train.jsonl\n  test: test.jsonl\n"
        "monitor:\n  window_s: 5\n  drift_window_size: 10\nrollback:\n  min_requests: 5\n"
    )
    store = open_store(tmp_path / "ws")
    folder = classifier_folder(tmp_path)
    version = register(store, folder, "tickets")
    monitor = start_monitor(store, load_spec(tmp_path))
    try:
        assert monitor.settings.window_s == 5 and monitor.rules.min_requests == 5
        reference = monitor.reference(version)
        expected = TextClassifier.load(folder).embed(texts)
        np.testing.assert_allclose(reference, expected, atol=1e-5)
        cached = list((store.workspace.cache_dir / "drift").glob("reference-*.npy"))
        assert [p.name for p in cached] == [f"reference-{version.artifact_sha256}.npy"]
        np.testing.assert_array_equal(monitor.reference(version), reference)  # from the cache now
    finally:
        monitor.stop()
