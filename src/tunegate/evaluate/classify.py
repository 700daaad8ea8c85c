"""Run every evaluation suite on a trained classifier and return one JSON-safe results dict.

Suites, in order: task metrics with 95% intervals, slices, the frozen-encoder baseline (with the
paired-bootstrap difference in macro-F1), the production model if there is one, latency and
throughput, cost. All bootstraps use the same resampled test rows (seeded by `spec.train.seed`).

Results keys: task, n_test, labels, bootstrap, summary, metrics, per_class, confusion, calibration,
outside_label_set, slices, baseline, production, latency, cost, suite_wall_s, predictions.
docs/evaluation.md describes every field.

Deliberately not here: storing the results (the pipeline does, through store/), or judging them (gate/).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from tunegate.data.examples import Example
from tunegate.errors import EvalError
from tunegate.evaluate.baseline import (
    BASELINE_KIND,
    Scorer,
    fit_frozen_baseline,
    load_base_encoder,
    predicted_indices,
)
from tunegate.evaluate.cost import cost_summary
from tunegate.evaluate.latency import measure_latency
from tunegate.evaluate.metrics import CONFIDENCE_LEVEL, paired_macro_f1_delta, score_classification
from tunegate.evaluate.slices import slice_metrics
from tunegate.progress import StepProgress
from tunegate.spec.schema import Spec


def _check_labels(test: Sequence[Example], labels: list[str]) -> np.ndarray:
    position = {label: i for i, label in enumerate(labels)}
    unknown = [ex for ex in test if ex.label not in position]
    if unknown:
        where = ", ".join(f"{ex.source or 'test'}:{ex.line} ({ex.label!r})" for ex in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise EvalError(
            f"{len(unknown)} test rows carry a label the classifier was not trained on: {where}{more}; "
            f"its labels are {labels}"
        )
    return np.array([position[ex.label] for ex in test], dtype=np.int64)


def _compare(
    model: Scorer,
    texts: list[str],
    y_true: np.ndarray,
    pred_candidate: np.ndarray,
    labels: list[str],
    spec: Spec,
) -> dict[str, Any]:
    """Score another model on the test rows; add candidate-minus-it macro-F1 with a paired interval."""
    y_pred, confidence = predicted_indices(model, texts, labels, spec.eval.throughput_batch_size)
    scored = score_classification(
        y_true, y_pred, confidence, labels, samples=spec.eval.bootstrap_samples, seed=spec.train.seed
    )
    delta = paired_macro_f1_delta(
        y_true, pred_candidate, y_pred, len(labels), samples=spec.eval.bootstrap_samples, seed=spec.train.seed
    )
    return {**scored, "delta_macro_f1": delta.to_dict()}


def evaluate_classifier(
    classifier: Scorer,
    train: Sequence[Example],
    test: Sequence[Example],
    spec: Spec,
    *,
    training_wall_s: float,
    production: Scorer | None = None,
    progress: bool = True,
    console: Console | None = None,
    base_encoder: Any | None = None,
    spec_root: Path | None = None,
) -> dict[str, Any]:
    """Every suite on `classifier`; see the module docstring and docs/evaluation.md for the result.

    `base_encoder`: the unchanged base encoder for the baseline, if already loaded (tests pass a small
    stand-in); otherwise it is loaded from `spec.base_model`, resolving a relative folder against
    `spec_root`. `production`: the model now serving, compared on the same rows, or None.
    """
    if not test:
        raise EvalError("evaluation needs test rows; the test set is empty")
    labels = list(classifier.labels)
    texts = [ex.text for ex in test]
    y_true = _check_labels(test, labels)
    samples, seed = spec.eval.bootstrap_samples, spec.train.seed

    suites = ["task metrics", "slices", "baseline", "production", "latency", "cost"]
    wall_s: dict[str, float] = {}
    results: dict[str, Any] = {
        "task": "classify",
        "n_test": len(test),
        "labels": labels,
        "bootstrap": {"samples": samples, "seed": seed, "confidence_level": CONFIDENCE_LEVEL},
    }
    columns = (
        SpinnerColumn(),
        TextColumn("evaluate: {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with StepProgress(*columns, console=console, disable=not progress, transient=False) as bar:
        task = bar.add_task(suites[0], total=len(suites))

        def done(suite: str, started: float) -> None:
            wall_s[suite] = time.perf_counter() - started
            bar.advance(task)
            position = suites.index(suite) + 1
            bar.update(task, description=suites[position] if position < len(suites) else "done")

        started = time.perf_counter()
        y_pred, confidence = predicted_indices(classifier, texts, labels, spec.eval.throughput_batch_size)
        results.update(score_classification(y_true, y_pred, confidence, labels, samples=samples, seed=seed))
        results["n_test"] = results.pop("n")
        done("task metrics", started)

        started = time.perf_counter()
        results["slices"] = slice_metrics(
            y_true,
            y_pred,
            confidence,
            labels,
            [ex.metadata for ex in test],
            spec.eval.slices,
            samples=samples,
            seed=seed,
        )
        done("slices", started)

        started = time.perf_counter()
        results["baseline"] = None
        if spec.eval.baseline:
            encoder = base_encoder if base_encoder is not None else load_base_encoder(spec, spec_root)
            baseline = fit_frozen_baseline(
                train, labels, encoder, seed=seed, batch_size=spec.eval.throughput_batch_size
            )
            results["baseline"] = {
                "kind": BASELINE_KIND,
                "base_model": spec.base_model,
                "n_train": len(train),
                **_compare(baseline, texts, y_true, y_pred, labels, spec),
            }
        done("baseline", started)

        started = time.perf_counter()
        results["production"] = None
        if production is not None:
            results["production"] = {
                "info": _json_safe_info(getattr(production, "info", {})),
                **_compare(production, texts, y_true, y_pred, labels, spec),
            }
        done("production", started)

        started = time.perf_counter()
        results["latency"] = measure_latency(
            classifier,
            texts,
            requests=spec.eval.latency_requests,
            throughput_batch_size=spec.eval.throughput_batch_size,
            batch_sizes={1, spec.targets.latency.batch_size},
            target_hardware=spec.targets.latency.hardware,
            seed=seed,
        )
        done("latency", started)

        started = time.perf_counter()
        results["cost"] = cost_summary(
            training_wall_s=training_wall_s,
            throughput_per_s=results["latency"]["throughput"]["texts_per_s"],
            hourly_price_usd=spec.targets.cost.hourly_price_usd,
        )
        done("cost", started)

    results["suite_wall_s"] = wall_s
    results["predictions"] = [
        {
            "text": ex.text,
            "label": ex.label,
            "predicted": labels[p] if p >= 0 else None,
            "confidence": float(c),
            "source": ex.source,
            "line": ex.line,
        }
        for ex, p, c in zip(test, y_pred.tolist(), confidence.tolist(), strict=True)
    ]
    return results


def _json_safe_info(info: Any) -> dict[str, Any]:
    """A model's info dict, keeping only values JSON can hold (it is provenance, not evidence)."""
    if not isinstance(info, dict):
        return {}
    return {str(k): v for k, v in info.items() if isinstance(v, str | int | float | bool | type(None))}
