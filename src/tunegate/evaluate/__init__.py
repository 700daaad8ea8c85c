"""The evaluate stage: several suites, never one benchmark.

`evaluate_classifier` runs them all on a trained classifier: task metrics with 95% bootstrap
intervals, slices, the frozen-encoder baseline, the production model, latency, cost.
"""

from tunegate.evaluate.baseline import FrozenEncoderBaseline, fit_frozen_baseline, load_base_encoder
from tunegate.evaluate.classify import evaluate_classifier
from tunegate.evaluate.cost import cost_summary, training_cost_usd, usd_per_1k_requests
from tunegate.evaluate.latency import measure_latency
from tunegate.evaluate.metrics import (
    Interval,
    expected_calibration_error,
    paired_macro_f1_delta,
    reliability_curve,
    score_classification,
)
from tunegate.evaluate.slices import slice_metrics

__all__ = [
    "FrozenEncoderBaseline",
    "Interval",
    "cost_summary",
    "evaluate_classifier",
    "expected_calibration_error",
    "fit_frozen_baseline",
    "load_base_encoder",
    "measure_latency",
    "paired_macro_f1_delta",
    "reliability_curve",
    "score_classification",
    "slice_metrics",
    "training_cost_usd",
    "usd_per_1k_requests",
]
