"""The task metrics per value of a metadata field (`spec.eval.slices`): where is the model weak?

A slice is every test row whose metadata field has one value; rows without the field form the slice
"(missing)". Within a slice, macro-F1 averages over the labels that occur in it (as true or predicted
labels) — a slice of only French billing questions is not penalised for containing no shipping ones.
Intervals are computed only for slices with at least `MIN_ROWS_FOR_INTERVAL` rows: below that a
bootstrap interval is mostly noise, and a number without one is more honest than a misleading one.

Deliberately not here: choosing which fields to slice by (the spec does) or judging slices (gate/).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from tunegate.evaluate.metrics import score_classification

MIN_ROWS_FOR_INTERVAL = 30
MISSING = "(missing)"


def slice_value(metadata: dict[str, Any], field: str) -> str:
    """The slice a row belongs to, as a string (JSON for lists and dicts, so it is stable)."""
    if field not in metadata or metadata[field] is None:
        return MISSING
    value = metadata[field]
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def slice_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    confidence: np.ndarray,
    labels: list[str],
    metadata: Sequence[dict[str, Any]],
    fields: Sequence[str],
    *,
    samples: int,
    seed: int,
) -> dict[str, dict[str, Any]]:
    """{field: {"missing_rows": n, "values": {value: {n, intervals, summary, metrics, per_class}}}}.

    Values are ordered by row count, largest first. `intervals` says whether the slice was bootstrapped.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    confidence = np.asarray(confidence, dtype=np.float64)
    out: dict[str, dict[str, Any]] = {}
    for field in fields:
        values = np.array([slice_value(m, field) for m in metadata], dtype=object)
        counts = Counter(values.tolist())
        by_value: dict[str, Any] = {}
        for value, _count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
            rows = np.flatnonzero(values == value)
            by_value[value] = _score_slice(
                y_true[rows], y_pred[rows], confidence[rows], labels, samples=samples, seed=seed
            )
        out[field] = {"missing_rows": int(counts.get(MISSING, 0)), "values": by_value}
    return out


def _score_slice(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    confidence: np.ndarray,
    labels: list[str],
    *,
    samples: int,
    seed: int,
) -> dict[str, Any]:
    # Re-code to the labels present in the slice; predictions outside the full list (-1) stay -1.
    present = sorted(set(y_true.tolist()) | {p for p in y_pred.tolist() if p >= 0})
    recode = np.full(len(labels), -1, dtype=np.int64)
    recode[present] = np.arange(len(present))
    slice_pred = np.where(y_pred >= 0, recode[np.maximum(y_pred, 0)], -1)
    with_intervals = y_true.size >= MIN_ROWS_FOR_INTERVAL
    scored = score_classification(
        recode[y_true],
        slice_pred,
        confidence,
        [labels[c] for c in present],
        samples=samples,
        seed=seed,
        intervals=with_intervals,
    )
    return {
        "n": scored["n"],
        "intervals": with_intervals,
        "summary": scored["summary"],
        "metrics": scored["metrics"],
        "per_class": scored["per_class"],
    }
