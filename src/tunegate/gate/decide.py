"""Judge evaluation results against the spec's targets: one PASS / FAIL per target, with the evidence.

Rules, all stated here so a reader can check a verdict by hand:
- Only targets that are set are judged; the verdict passes when every judged target passes.
- judge_on "interval": a minimum must hold for the low end of the 95% interval, a maximum for the high
  end — "the evidence says it is good enough", not "it might be". judge_on "point": the point estimate.
- A set target with no evidence behind it (no latency measured, no baseline trained, a NaN, a class
  with no test rows) FAILS, naming what is missing. Absence of evidence never passes a gate.
- beat_baseline compares candidate with baseline on the same resampled rows (paired bootstrap): it
  passes when the low end of the difference's interval is above 0 (interval), or the difference (point).
- Latency has no interval: the measured p95 at the target's batch size is compared as is.
- Costs are recomputed from the measured times with the spec's hourly price, so a results file
  written under another price cannot pass under this one.
- A spec with no targets at all fails: a gate that judges nothing says nothing.

Pure: results dict in, verdict out; no I/O, no clock.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from tunegate.errors import GateError
from tunegate.evaluate.cost import training_cost_usd, usd_per_1k_requests
from tunegate.spec.schema import Targets

NO_EVIDENCE = "a target without evidence cannot pass"
Bound = Literal["min", "above", "max"]  # above: strictly greater than the threshold


@dataclass(frozen=True)
class ClassCheck:
    """The per-class recall floor for one class."""

    label: str
    measured: float | None
    low: float | None
    high: float | None
    compared: float | None
    passed: bool


@dataclass(frozen=True)
class TargetResult:
    name: str  # dotted spec key, e.g. "quality.macro_f1_min"
    bound: Bound  # "min": must reach the threshold; "above": must exceed it; "max": must not exceed it
    threshold: float
    measured: float | None
    low: float | None
    high: float | None
    compared: float | None  # what was held against the threshold (interval end or point)
    passed: bool
    sentence: str
    classes: tuple[ClassCheck, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    judge_on: str
    targets: tuple[TargetResult, ...] = field(default_factory=tuple)
    reason: str = ""

    @property
    def failed(self) -> tuple[TargetResult, ...]:
        return tuple(t for t in self.targets if not t.passed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "judge_on": self.judge_on,
            "reason": self.reason,
            "targets": [t.to_dict() for t in self.targets],
        }


def _number(value: Any) -> float | None:
    """A finite float, or None for anything that is not usable evidence."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _dig(results: dict[str, Any], *path: str) -> Any:
    node: Any = results
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _compared(interval: dict[str, Any] | None, bound: Bound, judge_on: str) -> tuple[float | None, ...]:
    """(measured, low, high, compared) from an interval dict; compared None when evidence is missing."""
    if not isinstance(interval, dict):
        return None, None, None, None
    value, low, high = (_number(interval.get(k)) for k in ("value", "low", "high"))
    if value is None:  # an interval around no point estimate is not evidence either
        return None, low, high, None
    if judge_on == "point":
        return value, low, high, value
    return value, low, high, high if bound == "max" else low


def _holds(compared: float | None, bound: Bound, threshold: float) -> bool:
    if compared is None:
        return False
    if bound == "min":
        return compared >= threshold
    if bound == "above":
        return compared > threshold
    return compared <= threshold


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def _interval_target(
    name: str, what: str, interval: Any, bound: Bound, threshold: float, judge_on: str
) -> TargetResult:
    measured, low, high, compared = _compared(interval, bound, judge_on)
    passed = _holds(compared, bound, threshold)
    relation = ">=" if bound == "min" else "<="
    if compared is None:
        missing = "no measurement" if measured is None else "no 95% interval (judge_on: interval)"
        sentence = f"FAIL: {what}: {missing} in the results; {NO_EVIDENCE}"
    else:
        basis = (
            "point estimate"
            if judge_on == "point"
            else ("interval low end" if bound == "min" else "interval high end")
        )
        sentence = (
            f"{'PASS' if passed else 'FAIL'}: {what} {_fmt(measured)} (95% CI {_fmt(low)}–{_fmt(high)}); "
            f"{basis} {_fmt(compared)} {relation if passed else 'not ' + relation} {threshold:g}"
        )
    return TargetResult(name, bound, threshold, measured, low, high, compared, passed, sentence)


def _per_class_recall(results: dict[str, Any], threshold: float, judge_on: str) -> TargetResult:
    name = "quality.per_class_recall_min"
    recalls = _dig(results, "metrics", "per_class_recall")
    labels = results.get("labels")
    if not isinstance(recalls, dict) or not isinstance(labels, list) or not labels:
        return TargetResult(
            name,
            "min",
            threshold,
            None,
            None,
            None,
            None,
            False,
            "FAIL: per-class recall: no per-class recall in the results",
        )
    checks = []
    for label in labels:
        measured, low, high, compared = _compared(recalls.get(label), "min", judge_on)
        checks.append(ClassCheck(label, measured, low, high, compared, _holds(compared, "min", threshold)))
    failing = [c for c in checks if not c.passed]
    worst = min(checks, key=lambda c: -1.0 if c.compared is None else c.compared)
    if failing:
        named = ", ".join(
            f"{c.label} ({'no evidence' if c.compared is None else _fmt(c.compared)})" for c in failing
        )
        sentence = f"FAIL: recall below {threshold:g} for {len(failing)} of {len(checks)} classes: {named}"
    else:
        lowest = f"lowest {worst.label} at {_fmt(worst.compared)}"
        sentence = f"PASS: every class's recall reaches {threshold:g}; {lowest}"
    return TargetResult(
        name,
        "min",
        threshold,
        worst.measured,
        worst.low,
        worst.high,
        worst.compared,
        not failing,
        sentence,
        tuple(checks),
    )


def _beat_baseline(results: dict[str, Any], judge_on: str) -> TargetResult:
    name = "quality.beat_baseline"
    delta = _dig(results, "baseline", "delta_macro_f1")
    measured, low, high, compared = _compared(delta, "above", judge_on)
    passed = _holds(compared, "above", 0.0)
    if compared is None:
        sentence = "FAIL: beat baseline: no baseline comparison in the results (eval.baseline off or failed)"
    else:
        basis = "difference" if judge_on == "point" else "low end of the paired 95% interval"
        sentence = (
            f"{'PASS' if passed else 'FAIL'}: macro-F1 minus baseline {_fmt(measured)} (95% CI {_fmt(low)}–"
            f"{_fmt(high)}); {basis} {_fmt(compared)} {'>' if passed else 'not >'} 0"
        )
    return TargetResult(name, "above", 0.0, measured, low, high, compared, passed, sentence)


def _latency(results: dict[str, Any], targets: Targets, threshold: float) -> TargetResult:
    name = "latency.p95_ms_max"
    batch_size = targets.latency.batch_size
    p95 = _number(_dig(results, "latency", "by_batch_size", str(batch_size), "p95_ms"))
    passed = _holds(p95, "max", threshold)
    if p95 is None:
        sentence = f"FAIL: p95 latency at batch size {batch_size}: not measured; {NO_EVIDENCE}"
    else:
        cpu = _dig(results, "latency", "hardware", "cpu_model") or "unknown hardware"
        sentence = (
            f"{'PASS' if passed else 'FAIL'}: p95 latency at batch size {batch_size} {p95:.1f} ms "
            f"{'<=' if passed else '>'} {threshold:g} ms (measured on {cpu}; target hardware "
            f"{targets.latency.hardware!r})"
        )
    return TargetResult(name, "max", threshold, p95, None, None, p95, passed, sentence)


def _cost(
    name: str, what: str, measured: float | None, basis: str, threshold: float, missing: str
) -> TargetResult:
    passed = _holds(measured, "max", threshold)
    if measured is None:
        sentence = f"FAIL: {what}: {missing}; {NO_EVIDENCE}"
    else:
        relation = "<=" if passed else ">"
        sentence = (
            f"{'PASS' if passed else 'FAIL'}: {what} ${measured:.4g} ({basis}) {relation} ${threshold:g}"
        )
    return TargetResult(name, "max", threshold, measured, None, None, measured, passed, sentence)


# (key under targets.quality, what it is called in a sentence, bound, key under results["metrics"])
_INTERVAL_TARGETS: tuple[tuple[str, str, Bound, str], ...] = (
    ("macro_f1_min", "macro-F1", "min", "macro_f1"),
    ("accuracy_min", "accuracy", "min", "accuracy"),
    ("ece_max", "expected calibration error", "max", "ece"),
)


def decide(targets: Targets, results: dict[str, Any]) -> GateVerdict:
    """One TargetResult per target that is set; passed only when every one passed."""
    if not isinstance(results, dict):
        raise GateError(f"gate: results must be a dict, got {type(results).__name__}")
    if results.get("task") != "classify":
        raise GateError(f"gate: results are for task {results.get('task')!r}; this gate judges 'classify'")
    judge_on = targets.judge_on
    quality = targets.quality
    checks: list[TargetResult] = []
    for key, what, bound, metric in _INTERVAL_TARGETS:
        threshold = getattr(quality, key)
        if threshold is not None:
            interval = _dig(results, "metrics", metric)
            checks.append(_interval_target(f"quality.{key}", what, interval, bound, threshold, judge_on))
    if quality.per_class_recall_min is not None:
        checks.append(_per_class_recall(results, quality.per_class_recall_min, judge_on))
    if quality.beat_baseline:
        checks.append(_beat_baseline(results, judge_on))
    if targets.latency.p95_ms_max is not None:
        checks.append(_latency(results, targets, targets.latency.p95_ms_max))

    price = targets.cost.hourly_price_usd
    if targets.cost.training_usd_max is not None:
        wall_s = _number(_dig(results, "cost", "training_wall_s"))
        checks.append(
            _cost(
                "cost.training_usd_max",
                "training cost",
                training_cost_usd(wall_s, price) if wall_s is not None and wall_s >= 0 else None,
                f"{_fmt(wall_s)} s at ${price:g}/h",
                targets.cost.training_usd_max,
                "training time not recorded",
            )
        )
    if targets.cost.usd_per_1k_requests_max is not None:
        throughput = _number(_dig(results, "latency", "throughput", "texts_per_s"))
        checks.append(
            _cost(
                "cost.usd_per_1k_requests_max",
                "serving cost per 1k requests",
                usd_per_1k_requests(throughput, price) if throughput is not None and throughput > 0 else None,
                f"{_fmt(throughput)} texts/s at ${price:g}/h, batched",
                targets.cost.usd_per_1k_requests_max,
                "throughput not measured",
            )
        )

    if not checks:
        return GateVerdict(
            False, judge_on, (), "no targets are set in the spec; a gate that judges nothing cannot pass"
        )
    failed = [c.name for c in checks if not c.passed]
    reason = f"failed: {', '.join(failed)}" if failed else f"all {len(checks)} targets passed"
    return GateVerdict(not failed, judge_on, tuple(checks), reason)
