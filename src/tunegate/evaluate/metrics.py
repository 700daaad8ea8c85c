"""Task metrics for a classifier, each with a 95% bootstrap interval over the test rows.

Inputs are integer-coded: `y_true[i]` is the index of row i's label in the label list, `y_pred[i]` the
predicted index, or -1 for a label outside the list (a production model trained on other labels) —
such a prediction is simply wrong. `confidence[i]` is the predicted class's probability.

The point metrics come from sklearn.metrics. What sklearn does not offer is a fast bootstrap, so that
is written here: every resample is a row of an index matrix and the per-class counts of all resamples
come out of one `np.bincount`, which makes 1000 resamples of a few hundred rows take milliseconds.
The bootstrap F1 uses sklearn's convention (zero_division=0: a class with no true and no predicted
rows in a resample scores 0), so a resample of every row reproduces the point value exactly.

Resampled rows depend only on (n rows, samples, seed): the candidate, the baseline and the paired
difference between them are all computed on the same resampled rows.

Deliberately not here: running models, grouping rows by metadata (slices.py), pass/fail (gate/).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

CALIBRATION_BINS = 15
CONFIDENCE_LEVEL = 0.95
# Resamples are processed in chunks so memory stays bounded (chunk rows x n <= this many indices).
_MAX_INDICES_PER_CHUNK = 2_000_000


@dataclass(frozen=True)
class Interval:
    """A point estimate with its 95% percentile-bootstrap interval (low/high None when not computed)."""

    value: float | None
    low: float | None = None
    high: float | None = None

    def to_dict(self) -> dict[str, float | None]:
        return {"value": self.value, "low": self.low, "high": self.high}


# -- point metrics ---------------------------------------------------------------------------------


def calibration_bin_index(confidence: np.ndarray, n_bins: int = CALIBRATION_BINS) -> np.ndarray:
    """Equal-width bins on [0, 1]: bin b holds [b/n, (b+1)/n), with confidence 1.0 in the last bin."""
    return np.minimum((np.asarray(confidence, dtype=np.float64) * n_bins).astype(np.int64), n_bins - 1)


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int = CALIBRATION_BINS
) -> float:
    """ECE = sum over bins of (rows in bin / n) * |accuracy in bin - mean confidence in bin|."""
    confidence = np.asarray(confidence, dtype=np.float64)
    if confidence.size == 0:
        return float("nan")
    # (n_b / n) * |acc_b - conf_b| == |sum of (conf - correct) in bin b| / n
    gap = confidence - np.asarray(correct, dtype=np.float64)
    per_bin = np.bincount(calibration_bin_index(confidence, n_bins), weights=gap, minlength=n_bins)
    return float(np.abs(per_bin).sum() / confidence.size)


def reliability_curve(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int = CALIBRATION_BINS
) -> list[dict[str, Any]]:
    """One entry per bin: its edges, row count, mean confidence and accuracy (None for empty bins)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    bins = calibration_bin_index(confidence, n_bins)
    counts = np.bincount(bins, minlength=n_bins)
    conf_sums = np.bincount(bins, weights=confidence, minlength=n_bins)
    correct_sums = np.bincount(bins, weights=correct, minlength=n_bins)
    curve = []
    for b in range(n_bins):
        count = int(counts[b])
        curve.append(
            {
                "low": b / n_bins,
                "high": (b + 1) / n_bins,
                "count": count,
                "mean_confidence": float(conf_sums[b] / count) if count else None,
                "accuracy": float(correct_sums[b] / count) if count else None,
            }
        )
    return curve


def point_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, confidence: np.ndarray, n_classes: int
) -> dict[str, Any]:
    """Accuracy, macro-F1, ECE, per-class precision/recall/F1/support and the confusion matrix."""
    labels = list(range(n_classes))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0
    )
    correct = y_true == y_pred
    with warnings.catch_warnings():
        # A slice holding one label has a 1x1 matrix by design; sklearn warns in case it was not meant.
        warnings.filterwarnings("ignore", message="A single label was found", category=UserWarning)
        confusion = confusion_matrix(y_true, y_pred, labels=labels)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(np.mean(f1)),
        "ece": expected_calibration_error(confidence, correct),
        "precision": precision.astype(float),
        "recall": recall.astype(float),
        "f1": f1.astype(float),
        "support": support.astype(int),
        # Rows predicted outside the label list (y_pred == -1) have no column here; see outside_label_set.
        "confusion": confusion,
        "outside_label_set": int(np.sum(y_pred < 0)),
    }


# -- bootstrap -------------------------------------------------------------------------------------


def resample_indices(n_rows: int, samples: int, seed: int) -> Iterator[np.ndarray]:
    """Yield [chunk, n_rows] matrices of row indices drawn with replacement; same args, same rows."""
    rng = np.random.default_rng(seed)
    chunk = max(1, _MAX_INDICES_PER_CHUNK // max(n_rows, 1))
    done = 0
    while done < samples:
        size = min(chunk, samples - done)
        yield rng.integers(0, n_rows, size=(size, n_rows))
        done += size


def _class_counts(
    y_true: np.ndarray, y_pred: np.ndarray, idx: np.ndarray, n_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per resample and class: true positives, true rows (support), predicted rows. Each [B, K]."""
    resamples = idx.shape[0]
    t = y_true[idx]
    p = y_pred[idx]
    offset = (np.arange(resamples) * n_classes)[:, None]
    size = resamples * n_classes
    t_flat = offset + t
    tp = np.bincount(t_flat[t == p], minlength=size).reshape(resamples, n_classes)
    support = np.bincount(t_flat.ravel(), minlength=size).reshape(resamples, n_classes)
    predicted = np.bincount((offset + p)[p >= 0], minlength=size).reshape(resamples, n_classes)
    return tp, support, predicted


def _macro_f1(tp: np.ndarray, support: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    # F1 = 2tp / (2tp + fp + fn) = 2tp / (predicted + support); 0 where the class is absent and unpredicted.
    denominator = predicted + support
    f1 = np.divide(2.0 * tp, denominator, out=np.zeros(tp.shape), where=denominator > 0)
    return f1.mean(axis=1)


def _percentile_interval(values: np.ndarray) -> tuple[float | None, float | None]:
    tail = (1.0 - CONFIDENCE_LEVEL) / 2 * 100
    values = values[~np.isnan(values)]
    if values.size == 0:
        return None, None
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_statistics(
    y_true: np.ndarray, y_pred: np.ndarray, confidence: np.ndarray, n_classes: int, *, samples: int, seed: int
) -> dict[str, np.ndarray]:
    """Every bootstrap replicate: accuracy [B], macro_f1 [B], ece [B], recall [B, K] (NaN: class absent)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    confidence = np.asarray(confidence, dtype=np.float64)
    n = y_true.size
    gap = confidence - (y_true == y_pred)
    bins = calibration_bin_index(confidence)
    parts: dict[str, list[np.ndarray]] = {"accuracy": [], "macro_f1": [], "ece": [], "recall": []}
    for idx in resample_indices(n, samples, seed):
        tp, support, predicted = _class_counts(y_true, y_pred, idx, n_classes)
        parts["accuracy"].append(tp.sum(axis=1) / n)
        parts["macro_f1"].append(_macro_f1(tp, support, predicted))
        offset = (np.arange(idx.shape[0]) * CALIBRATION_BINS)[:, None]
        per_bin = np.bincount(
            (offset + bins[idx]).ravel(), weights=gap[idx].ravel(), minlength=idx.shape[0] * CALIBRATION_BINS
        ).reshape(idx.shape[0], CALIBRATION_BINS)
        parts["ece"].append(np.abs(per_bin).sum(axis=1) / n)
        with np.errstate(invalid="ignore", divide="ignore"):
            parts["recall"].append(np.where(support > 0, tp / support, np.nan))
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def paired_macro_f1_delta(
    y_true: np.ndarray,
    pred_candidate: np.ndarray,
    pred_other: np.ndarray,
    n_classes: int,
    *,
    samples: int,
    seed: int,
) -> Interval:
    """Candidate macro-F1 minus the other model's, with a paired bootstrap interval (same rows for both)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    pred_candidate = np.asarray(pred_candidate, dtype=np.int64)
    pred_other = np.asarray(pred_other, dtype=np.int64)
    everything = np.arange(y_true.size)[None, :]
    point = _macro_f1(*_class_counts(y_true, pred_candidate, everything, n_classes)) - _macro_f1(
        *_class_counts(y_true, pred_other, everything, n_classes)
    )
    deltas = [
        _macro_f1(*_class_counts(y_true, pred_candidate, idx, n_classes))
        - _macro_f1(*_class_counts(y_true, pred_other, idx, n_classes))
        for idx in resample_indices(y_true.size, samples, seed)
    ]
    low, high = _percentile_interval(np.concatenate(deltas))
    return Interval(float(point[0]), low, high)


# -- everything, JSON-safe -------------------------------------------------------------------------


def score_classification(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    confidence: np.ndarray,
    labels: list[str],
    *,
    samples: int,
    seed: int,
    intervals: bool = True,
) -> dict[str, Any]:
    """All task metrics as a JSON-safe dict; intervals are None when `intervals` is False.

    Shape: n, summary {accuracy, macro_f1, ece}, metrics {accuracy, macro_f1, ece: Interval dicts,
    per_class_recall: {label: Interval dict}}, per_class {label: precision, recall, f1, support},
    confusion [[...]] (rows true, columns predicted, in `labels` order), calibration, outside_label_set.
    A class with no test rows has recall None: there is no evidence about it.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    confidence = np.asarray(confidence, dtype=np.float64)
    k = len(labels)
    point = point_metrics(y_true, y_pred, confidence, k)
    boot = (
        bootstrap_statistics(y_true, y_pred, confidence, k, samples=samples, seed=seed) if intervals else None
    )

    def interval(name: str, value: float) -> dict[str, float | None]:
        low, high = _percentile_interval(boot[name]) if boot is not None else (None, None)
        return Interval(value, low, high).to_dict()

    recall_intervals = {}
    for c, label in enumerate(labels):
        if point["support"][c] == 0:
            recall_intervals[label] = Interval(None).to_dict()
            continue
        low, high = _percentile_interval(boot["recall"][:, c]) if boot is not None else (None, None)
        recall_intervals[label] = Interval(float(point["recall"][c]), low, high).to_dict()

    correct = y_true == y_pred
    return {
        "n": int(y_true.size),
        "summary": {"accuracy": point["accuracy"], "macro_f1": point["macro_f1"], "ece": point["ece"]},
        "metrics": {
            "accuracy": interval("accuracy", point["accuracy"]),
            "macro_f1": interval("macro_f1", point["macro_f1"]),
            "ece": interval("ece", point["ece"]),
            "per_class_recall": recall_intervals,
        },
        "per_class": {
            label: {
                "precision": float(point["precision"][c]),
                "recall": float(point["recall"][c]),
                "f1": float(point["f1"][c]),
                "support": int(point["support"][c]),
            }
            for c, label in enumerate(labels)
        },
        "confusion": point["confusion"].astype(int).tolist(),
        "calibration": {
            "n_bins": CALIBRATION_BINS,
            "ece": point["ece"],
            "bins": reliability_curve(confidence, correct),
        },
        "outside_label_set": point["outside_label_set"],
    }
