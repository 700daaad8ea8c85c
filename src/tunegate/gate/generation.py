"""Judge a fine-tuned chat model's evaluation (task sft) against the spec's targets: one PASS / FAIL each.

The same rules as `decide.py`, applied to the generation suites:
- only set targets are judged; a set target with no evidence FAILS, naming what is missing;
- judge_on "interval": a minimum holds for the low end of the 95% interval, a maximum for the high end;
  judge_on "point": the point estimate decides;
- "beats base" (terminology, style) passes when the candidate's interval lies wholly above the
  base's (non-overlapping 95% intervals); with judge_on "point", when its mean is higher;
- latency and tokens/s have no interval and are compared as measured; costs are recomputed from
  measured times at the spec's hourly price.

Pure: results dict in, verdict out.
"""

from __future__ import annotations

import math
from typing import Any

from tunegate.errors import GateError
from tunegate.evaluate.cost import training_cost_usd
from tunegate.gate.decide import GateVerdict, TargetResult
from tunegate.spec.schema import Targets

NO_EVIDENCE = "a target without evidence cannot pass"


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _dig(node: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def _bound(name: str, what: str, interval: Any, bound: str, threshold: float, judge_on: str) -> TargetResult:
    value, low, high = (_num(_dig(interval, k)) for k in ("value", "low", "high"))
    compared = value if judge_on == "point" else (high if bound == "max" else low)
    if value is None or compared is None:
        missing = "no measurement" if value is None else "no 95% interval"
        return TargetResult(
            name,
            bound,
            threshold,
            value,
            low,
            high,
            None,
            False,  # type: ignore[arg-type]
            f"FAIL: {what}: {missing} in the results; {NO_EVIDENCE}",
        )
    passed = compared >= threshold if bound == "min" else compared <= threshold
    relation = ">=" if bound == "min" else "<="
    basis = (
        "point estimate"
        if judge_on == "point"
        else ("interval low end" if bound == "min" else "interval high end")
    )
    sentence = (
        f"{'PASS' if passed else 'FAIL'}: {what} {_f(value)} (95% CI {_f(low)}–{_f(high)}); "
        f"{basis} {_f(compared)} {relation if passed else 'not ' + relation} {threshold:g}"
    )
    return TargetResult(name, bound, threshold, value, low, high, compared, passed, sentence)  # type: ignore[arg-type]


def _beats(name: str, what: str, comparison: Any, judge_on: str) -> TargetResult:
    cand, base = _dig(comparison, "candidate"), _dig(comparison, "base")
    c_value, c_low, c_high = (_num(_dig(cand, k)) for k in ("value", "low", "high"))
    b_value, b_high = _num(_dig(base, "value")), _num(_dig(base, "high"))
    if c_value is None or b_value is None or (judge_on == "interval" and (c_low is None or b_high is None)):
        return TargetResult(
            name,
            "above",
            0.0,
            c_value,
            c_low,
            c_high,
            None,
            False,
            f"FAIL: {what} vs base: not measured for both models; {NO_EVIDENCE}",
        )
    if judge_on == "point":
        compared, passed = c_value - b_value, c_value > b_value
        basis = f"mean {_f(c_value)} vs base {_f(b_value)}"
    else:
        assert c_low is not None and b_high is not None
        compared, passed = c_low - b_high, c_low > b_high
        basis = (
            f"{_f(c_value)} (95% CI {_f(c_low)}–{_f(c_high)}) vs base {_f(b_value)} "
            f"(95% CI {_f(_num(_dig(base, 'low')))}–{_f(b_high)}); the intervals "
            f"{'do not overlap' if passed else 'overlap or the base is higher'}"
        )
    return TargetResult(
        name,
        "above",
        0.0,
        c_value,
        c_low,
        c_high,
        compared,
        passed,
        f"{'PASS' if passed else 'FAIL'}: {what}: candidate {basis}",
    )


def _measured(name: str, what: str, value: Any, bound: str, threshold: float, unit: str) -> TargetResult:
    measured = _num(value)
    if measured is None:
        return TargetResult(
            name,
            bound,
            threshold,
            None,
            None,
            None,
            None,
            False,  # type: ignore[arg-type]
            f"FAIL: {what}: not measured; {NO_EVIDENCE}",
        )
    passed = measured >= threshold if bound == "min" else measured <= threshold
    relation = (">=" if passed else "<") if bound == "min" else ("<=" if passed else ">")
    return TargetResult(
        name,
        bound,
        threshold,
        measured,
        None,
        None,
        measured,
        passed,  # type: ignore[arg-type]
        f"{'PASS' if passed else 'FAIL'}: {what} {measured:.4g}{unit} {relation} {threshold:g}{unit}",
    )


def decide_generation(targets: Targets, results: dict[str, Any]) -> GateVerdict:
    if not isinstance(results, dict) or results.get("task") != "sft":
        raise GateError(
            f"gate: results are for task {results.get('task') if isinstance(results, dict) else None!r}; "
            "this gate judges 'sft'"
        )
    judge_on, g, suites = targets.judge_on, targets.generation, results.get("suites", {})
    checks: list[TargetResult] = []
    if g.terminology_beats_base:
        checks.append(
            _beats("generation.terminology_beats_base", "terminology", suites.get("terminology"), judge_on)
        )
    if g.style_beats_base:
        checks.append(
            _beats("generation.style_beats_base", "voice rules", _dig(suites, "style", "rules"), judge_on)
        )
    for key, what, path in (
        ("terminology_min", "terminology", ("terminology", "candidate")),
        ("style_min", "voice rules", ("style", "rules", "candidate")),
        ("voice_similarity_min", "voice similarity", ("style", "voice_similarity", "candidate")),
        ("chrf_min", "chrF", ("reference", "chrf", "candidate")),
        ("rouge_l_min", "ROUGE-L", ("reference", "rouge_l", "candidate")),
        ("format_validity_min", "JSON-schema validity", ("format", "candidate")),
    ):
        threshold = getattr(g, key)
        if threshold is not None:
            checks.append(_bound(f"generation.{key}", what, _dig(suites, *path), "min", threshold, judge_on))
    if g.perplexity_increase_max is not None:
        checks.append(
            _bound(
                "generation.perplexity_increase_max",
                "general-text perplexity increase over base",
                _dig(suites, "regression", "perplexity", "increase"),
                "max",
                g.perplexity_increase_max,
                judge_on,
            )
        )
    if g.general_chrf_drop_max is not None:
        checks.append(
            _bound(
                "generation.general_chrf_drop_max",
                "general-prompt chrF drop from base",
                _dig(suites, "regression", "general_prompts", "chrf_drop"),
                "max",
                g.general_chrf_drop_max,
                judge_on,
            )
        )
    latency = _dig(suites, "latency", "candidate")
    if g.ttft_p95_ms_max is not None:
        checks.append(
            _measured(
                "generation.ttft_p95_ms_max",
                "p95 time to first token",
                _dig(latency, "ttft_ms", "p95"),
                "max",
                g.ttft_p95_ms_max,
                " ms",
            )
        )
    if g.tokens_per_s_min is not None:
        checks.append(
            _measured(
                "generation.tokens_per_s_min",
                "median tokens/s at batch 1",
                _dig(latency, "tokens_per_s", "p50"),
                "min",
                g.tokens_per_s_min,
                "",
            )
        )
    if targets.latency.p95_ms_max is not None:
        checks.append(
            _measured(
                "latency.p95_ms_max",
                "p95 latency of a whole answer at batch 1",
                _dig(latency, "latency_ms", "p95"),
                "max",
                targets.latency.p95_ms_max,
                " ms",
            )
        )
    price = targets.cost.hourly_price_usd
    if targets.cost.training_usd_max is not None:
        wall = _num(_dig(suites, "cost", "training_wall_s"))
        checks.append(
            _measured(
                "cost.training_usd_max",
                f"training cost at ${price:g}/h (USD)",
                None if wall is None else training_cost_usd(wall, price),
                "max",
                targets.cost.training_usd_max,
                "",
            )
        )
    if targets.cost.usd_per_1k_requests_max is not None:
        checks.append(
            _measured(
                "cost.usd_per_1k_requests_max",
                "serving cost per 1k answers (USD)",
                _dig(suites, "cost", "usd_per_1k_requests"),
                "max",
                targets.cost.usd_per_1k_requests_max,
                "",
            )
        )
    if not checks:
        return GateVerdict(
            False, judge_on, (), "no targets are set in the spec; a gate that judges nothing cannot pass"
        )
    failed = [c.name for c in checks if not c.passed]
    reason = f"failed: {', '.join(failed)}" if failed else f"all {len(checks)} targets passed"
    return GateVerdict(not failed, judge_on, tuple(checks), reason)
