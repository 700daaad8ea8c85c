"""decide(): PASS / FAIL per target, interval vs point, and missing evidence never passing."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest

from tunegate.errors import GateError
from tunegate.gate import GateVerdict, decide
from tunegate.spec.schema import Targets


def iv(value, low, high):
    return {"value": value, "low": low, "high": high}


def results(**overrides) -> dict:
    """A hand-written results dict with every piece of evidence present."""
    base = {
        "task": "classify",
        "labels": ["billing", "shipping", "other"],
        "metrics": {
            "accuracy": iv(0.90, 0.86, 0.93),
            "macro_f1": iv(0.86, 0.82, 0.90),
            "ece": iv(0.05, 0.03, 0.12),
            "per_class_recall": {
                "billing": iv(0.95, 0.90, 0.99),
                "shipping": iv(0.80, 0.70, 0.88),
                "other": iv(0.75, 0.60, 0.85),
            },
        },
        "baseline": {"delta_macro_f1": iv(0.04, 0.01, 0.07)},
        "latency": {
            "by_batch_size": {"1": {"p95_ms": 12.0}, "8": {"p95_ms": 40.0}},
            "throughput": {"texts_per_s": 200.0},
            "hardware": {"cpu_model": "Test CPU"},
        },
        "cost": {"training_wall_s": 1800.0, "hourly_price_usd": 0.10},
    }
    for path, value in overrides.items():
        node = base
        *parents, last = path.split("__")
        for key in parents:
            node = node[key]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value
    return base


_DELETE = object()


def targets(**quality) -> Targets:
    return Targets.model_validate({"quality": {"beat_baseline": False, **quality}})


def only(verdict: GateVerdict, name: str):
    (result,) = [t for t in verdict.targets if t.name == name]
    return result


def test_interval_judges_the_low_end_of_a_minimum_and_point_judges_the_estimate():
    t = targets(macro_f1_min=0.85)
    on_interval = decide(t, results())
    r = only(on_interval, "quality.macro_f1_min")
    assert (r.measured, r.low, r.high, r.compared) == (0.86, 0.82, 0.90, 0.82)
    assert not r.passed and not on_interval.passed
    assert "0.82" in r.sentence and r.sentence.startswith("FAIL")

    on_point = decide(t.model_copy(update={"judge_on": "point"}), results())
    assert only(on_point, "quality.macro_f1_min").compared == 0.86
    assert on_point.passed


def test_interval_judges_the_high_end_of_a_maximum():
    t = targets(ece_max=0.1)
    assert only(decide(t, results()), "quality.ece_max").compared == 0.12
    assert not decide(t, results()).passed
    assert decide(t.model_copy(update={"judge_on": "point"}), results()).passed


def test_each_quality_target_passes_when_met():
    t = targets(macro_f1_min=0.80, accuracy_min=0.85, ece_max=0.15, per_class_recall_min=0.55)
    verdict = decide(t, results())
    assert verdict.passed
    assert [r.name for r in verdict.targets] == [
        "quality.macro_f1_min",
        "quality.accuracy_min",
        "quality.ece_max",
        "quality.per_class_recall_min",
    ]
    assert verdict.reason == "all 4 targets passed"


def test_per_class_recall_floor_names_the_failing_classes():
    verdict = decide(targets(per_class_recall_min=0.65), results())
    r = only(verdict, "quality.per_class_recall_min")
    assert not r.passed
    assert [c.label for c in r.classes if not c.passed] == ["other"]
    assert "other" in r.sentence and "billing" not in r.sentence
    assert r.compared == 0.60  # the lowest class's interval low end
    # on the point estimate every class reaches 0.65
    assert decide(
        targets(
            per_class_recall_min=0.65,
        ).model_copy(update={"judge_on": "point"}),
        results(),
    ).passed


def test_class_without_test_rows_fails_the_recall_floor():
    r = results(metrics__per_class_recall__other=iv(None, None, None))
    check = only(decide(targets(per_class_recall_min=0.1), r), "quality.per_class_recall_min")
    assert not check.passed and "other (no evidence)" in check.sentence


def test_beat_baseline_uses_the_paired_interval_in_interval_mode():
    t = Targets()  # beat_baseline is on by default
    assert decide(t, results()).passed
    marginal = results(baseline={"delta_macro_f1": iv(0.02, -0.01, 0.05)})
    assert not decide(t, marginal).passed
    assert decide(t.model_copy(update={"judge_on": "point"}), marginal).passed
    # a tie is not beating it
    tie = results(baseline={"delta_macro_f1": iv(0.0, -0.02, 0.02)})
    assert not decide(t.model_copy(update={"judge_on": "point"}), tie).passed


def test_latency_uses_p95_at_the_stated_batch_size():
    def latency(p95_ms_max, batch_size):
        return Targets.model_validate(
            {
                "quality": {"beat_baseline": False},
                "latency": {"p95_ms_max": p95_ms_max, "batch_size": batch_size},
            }
        )

    assert decide(latency(20, 1), results()).passed
    assert not decide(latency(20, 8), results()).passed  # 40 ms at batch 8
    r = only(decide(latency(50, 8), results()), "latency.p95_ms_max")
    assert r.passed and r.measured == 40.0 and "Test CPU" in r.sentence
    missing = only(decide(latency(50, 4), results()), "latency.p95_ms_max")
    assert not missing.passed and "not measured" in missing.sentence


def test_costs_are_recomputed_with_the_specs_price():
    def cost(price, training_max=None, per_1k_max=None):
        return Targets.model_validate(
            {
                "quality": {"beat_baseline": False},
                "cost": {
                    "hourly_price_usd": price,
                    "training_usd_max": training_max,
                    "usd_per_1k_requests_max": per_1k_max,
                },
            }
        )

    # 1800 s at $0.10/h = $0.05; at $10/h = $5
    assert decide(cost(0.10, training_max=0.06), results()).passed
    r = only(decide(cost(10.0, training_max=0.06), results()), "cost.training_usd_max")
    assert not r.passed and r.measured == pytest.approx(5.0)
    # 200 texts/s at $7.20/h: 5 s per 1k = $0.01
    per_1k = only(decide(cost(7.2, per_1k_max=0.011), results()), "cost.usd_per_1k_requests_max")
    assert per_1k.passed and per_1k.measured == pytest.approx(0.01)
    assert not decide(cost(7.2, per_1k_max=0.009), results()).passed


@pytest.mark.parametrize(
    ("t", "broken"),
    [
        (targets(macro_f1_min=0.5), results(metrics=_DELETE)),
        (targets(macro_f1_min=0.5), results(metrics__macro_f1=iv(0.9, None, None))),  # no interval
        (targets(accuracy_min=0.5), results(metrics__accuracy=iv(float("nan"), 0.1, 0.2))),
        (targets(ece_max=0.5), results(metrics__ece=iv("0.1", 0.0, 0.2))),
        (Targets(), results(baseline=None)),
        (
            Targets.model_validate({"quality": {"beat_baseline": False}, "latency": {"p95_ms_max": 99}}),
            results(latency=_DELETE),
        ),
        (
            Targets.model_validate({"quality": {"beat_baseline": False}, "cost": {"training_usd_max": 9}}),
            results(cost=_DELETE),
        ),
        (
            Targets.model_validate(
                {"quality": {"beat_baseline": False}, "cost": {"usd_per_1k_requests_max": 9}}
            ),
            results(latency__throughput={"texts_per_s": None}),
        ),
    ],
)
def test_missing_evidence_fails_with_a_reason(t, broken):
    verdict = decide(t, broken)
    assert not verdict.passed
    (failed,) = verdict.failed
    assert failed.sentence.startswith("FAIL") and failed.compared is None
    assert "evidence" in failed.sentence or "no " in failed.sentence


def test_no_targets_at_all_fails():
    verdict = decide(targets(), results())
    assert not verdict.passed and verdict.targets == () and "no targets" in verdict.reason


def test_results_for_another_task_are_refused():
    with pytest.raises(GateError, match="'generate'"):
        decide(Targets(), {"task": "generate"})


def test_verdict_is_frozen_json_safe_and_decide_does_not_touch_the_results():
    evidence = results()
    before = copy.deepcopy(evidence)
    verdict = decide(targets(macro_f1_min=0.8, per_class_recall_min=0.5), evidence)
    assert evidence == before
    as_dict = json.loads(json.dumps(verdict.to_dict(), allow_nan=False))
    assert as_dict["passed"] is True and as_dict["judge_on"] == "interval"
    assert as_dict["targets"][1]["classes"][0]["label"] == "billing"
    with pytest.raises(dataclasses.FrozenInstanceError):
        verdict.passed = False  # type: ignore[misc]
