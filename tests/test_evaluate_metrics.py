"""Task metrics and bootstrap intervals against hand-computed cases and sklearn."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from sklearn.metrics import f1_score

from tunegate.evaluate.metrics import (
    bootstrap_statistics,
    expected_calibration_error,
    paired_macro_f1_delta,
    reliability_curve,
    resample_indices,
    score_classification,
)

LABELS = ["a", "b", "c"]


def noisy_predictions(n: int, accuracy: float, seed: int, k: int = 3) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    y_true = np.arange(n) % k
    wrong = rng.random(n) > accuracy
    y_pred = np.where(wrong, (y_true + rng.integers(1, k, n)) % k, y_true)
    confidence = rng.uniform(0.4, 1.0, n)
    return y_true, y_pred, confidence


def test_known_confusion_matrix_and_per_class_metrics():
    y_true = np.array([0, 0, 1, 1, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 0, 2])
    scored = score_classification(y_true, y_pred, np.full(7, 0.9), LABELS, samples=100, seed=0)

    assert scored["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]
    assert scored["summary"]["accuracy"] == pytest.approx(5 / 7)
    # a: P 1/2 R 1/2 F1 1/2; b: P 2/3 R 1 F1 0.8; c: P 1 R 2/3 F1 0.8
    assert scored["per_class"]["a"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert scored["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert scored["per_class"]["b"]["f1"] == pytest.approx(0.8)
    assert scored["per_class"]["c"]["recall"] == pytest.approx(2 / 3)
    assert scored["summary"]["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.8) / 3)


def test_ece_is_zero_when_accuracy_matches_confidence_in_every_bin():
    # bin of 0.8: 8 of 10 right; bin of 0.6: 3 of 5 right -> perfectly calibrated
    confidence = np.array([0.8] * 10 + [0.6] * 5)
    correct = np.array([1] * 8 + [0] * 2 + [1] * 3 + [0] * 2)
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.0, abs=1e-12)


def test_ece_of_large_calibrated_sample_is_near_zero_and_overconfidence_is_measured():
    rng = np.random.default_rng(1)
    confidence = rng.uniform(0.34, 1.0, 200_000)
    calibrated = rng.random(confidence.size) < confidence
    assert expected_calibration_error(confidence, calibrated) < 0.01
    # confident 0.9 but right half the time: ECE = |0.5 - 0.9| = 0.4
    assert expected_calibration_error(np.full(10, 0.9), np.array([1, 0] * 5)) == pytest.approx(0.4)


def test_reliability_curve_bins_counts_and_edges():
    curve = reliability_curve(np.array([0.05, 0.95, 1.0, 0.5]), np.array([0, 1, 0, 1]))
    assert len(curve) == 15
    assert curve[0]["low"] == 0.0 and curve[-1]["high"] == 1.0
    assert curve[0]["count"] == 1 and curve[0]["accuracy"] == 0.0
    # 0.95 and 1.0 both land in the last bin [14/15, 1]
    assert curve[-1]["count"] == 2 and curve[-1]["accuracy"] == 0.5
    assert curve[-1]["mean_confidence"] == pytest.approx(0.975)
    assert curve[3]["count"] == 0 and curve[3]["accuracy"] is None
    assert sum(b["count"] for b in curve) == 4


def test_bootstrap_replicates_match_sklearn_on_the_same_resampled_rows():
    y_true, y_pred, confidence = noisy_predictions(60, 0.7, seed=2)
    stats = bootstrap_statistics(y_true, y_pred, confidence, 3, samples=100, seed=5)
    idx = next(resample_indices(60, 100, 5))
    for b in range(10):
        rows = idx[b]
        expected = f1_score(y_true[rows], y_pred[rows], labels=[0, 1, 2], average="macro", zero_division=0)
        assert stats["macro_f1"][b] == pytest.approx(expected)
        assert stats["accuracy"][b] == pytest.approx(np.mean(y_true[rows] == y_pred[rows]))
        correct = y_true[rows] == y_pred[rows]
        assert stats["ece"][b] == pytest.approx(expected_calibration_error(confidence[rows], correct))


def test_interval_contains_point_and_narrows_with_more_rows():
    small = score_classification(*noisy_predictions(100, 0.8, seed=3), LABELS, samples=1000, seed=0)
    large = score_classification(*noisy_predictions(2000, 0.8, seed=3), LABELS, samples=1000, seed=0)
    for scored in (small, large):
        for name in ("accuracy", "macro_f1", "ece"):
            cell = scored["metrics"][name]
            assert cell["low"] <= cell["value"] <= cell["high"]
        for cell in scored["metrics"]["per_class_recall"].values():
            assert cell["low"] <= cell["value"] <= cell["high"]

    def width(scored, name):
        return scored["metrics"][name]["high"] - scored["metrics"][name]["low"]

    for name in ("accuracy", "macro_f1"):
        assert width(large, name) < width(small, name) / 2


def test_bootstrap_is_seeded_and_fast():
    data = noisy_predictions(340, 0.85, seed=4)
    start = time.perf_counter()
    first = score_classification(*data, LABELS, samples=1000, seed=7)
    elapsed_s = time.perf_counter() - start
    assert elapsed_s < 1.0, f"1000 resamples of 340 rows took {elapsed_s:.2f} s"
    assert score_classification(*data, LABELS, samples=1000, seed=7) == first
    assert score_classification(*data, LABELS, samples=1000, seed=8)["metrics"] != first["metrics"]


def test_paired_delta_is_zero_for_identical_models_and_positive_for_a_clearly_better_one():
    y_true, y_pred, _ = noisy_predictions(300, 0.6, seed=5)
    same = paired_macro_f1_delta(y_true, y_pred, y_pred, 3, samples=500, seed=0)
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)

    better = paired_macro_f1_delta(y_true, y_true, y_pred, 3, samples=500, seed=0)
    expected = 1.0 - f1_score(y_true, y_pred, average="macro")
    assert better.value == pytest.approx(expected)
    assert 0 < better.low <= better.value <= better.high


def test_predictions_outside_the_label_list_are_wrong_and_counted():
    y_true = np.array([0, 1, 2, 0])
    y_pred = np.array([0, -1, 2, -1])
    scored = score_classification(y_true, y_pred, np.full(4, 0.7), LABELS, samples=200, seed=0)
    assert scored["summary"]["accuracy"] == 0.5
    assert scored["outside_label_set"] == 2
    assert scored["per_class"]["b"]["recall"] == 0.0
    assert scored["per_class"]["a"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(2 / 3),
        "support": 2,
    }


def test_class_without_test_rows_has_no_recall_evidence_and_results_are_json_safe():
    y_true = np.array([0, 0, 1, 1])
    scored = score_classification(y_true, y_true.copy(), np.full(4, 0.99), LABELS, samples=200, seed=0)
    assert scored["metrics"]["per_class_recall"]["c"] == {"value": None, "low": None, "high": None}
    assert scored["metrics"]["per_class_recall"]["a"]["value"] == 1.0
    json.dumps(scored, allow_nan=False)


def test_without_intervals_only_points_are_reported():
    scored = score_classification(
        *noisy_predictions(20, 0.8, seed=6), LABELS, samples=100, seed=0, intervals=False
    )
    assert scored["metrics"]["accuracy"]["low"] is None
    assert scored["metrics"]["accuracy"]["value"] == scored["summary"]["accuracy"]
