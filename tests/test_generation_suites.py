"""Generation suites as pure functions: glossary, voice rules, JSON format, intervals, and the sft gate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tunegate.errors import EvalError, GateError
from tunegate.evaluate.generation_format import format_reports, load_schema
from tunegate.evaluate.generation_metrics import chrf_scores, compare, ratio_interval, rouge_l_scores
from tunegate.evaluate.generation_style import rule_pass_rates, voice_report
from tunegate.evaluate.generation_terms import term_report
from tunegate.gate.generation import decide_generation
from tunegate.spec.schema import Targets
from tunegate.spec.sft import GlossarySpec, VoiceRules

GLOSSARY = GlossarySpec(
    required=["Drop Sensor", "Tidewell Hub"],
    forbidden=["leak detector", "premium"],
    preferred={"Wi-Fi": ["wifi", "WiFi"]},
)


def test_terminology_counts_required_terms_forbidden_words_and_spellings() -> None:
    reference = "Your Drop Sensor talks to the Tidewell Hub over Wi-Fi."
    good = term_report(
        "Press the Drop Sensor button; the Tidewell Hub reconnects to Wi-Fi.", reference, GLOSSARY
    )
    assert good.score == 1.0 and not good.missing
    bad = term_report("Press the leak detector button; the hub rejoins your WiFi.", reference, GLOSSARY)
    # checks: 2 required terms (both missing), no forbidden (fails), no misspelling (fails) -> 0 of 4
    assert bad.score == 0.0
    assert bad.missing == ("Drop Sensor", "Tidewell Hub") and bad.forbidden == ("leak detector",)
    assert bad.misspelled == ("WiFi -> Wi-Fi",)
    half = term_report("The drop sensor and the Tidewell Hub are fine.", reference, GLOSSARY)
    assert half.score == pytest.approx(3 / 4)  # case matters for product names: "drop sensor" is missing
    # A required term the reference does not use is not asked for; whole words only.
    assert term_report("Premiums rise.", "Nothing here.", GLOSSARY).score == 1.0
    assert term_report("x", "y", GlossarySpec()).score is None


def test_voice_rules_each_count_once() -> None:
    rules = VoiceRules(
        starts_with_any=["Hey neighbor!"],
        ends_with_any=["Stay dry!"],
        forbidden_phrases=["unfortunately"],
        max_sentence_words=6,
        max_exclamations=2,
    )
    assert voice_report("Hey neighbor! Press the button once. Stay dry!", rules).score == 1.0
    report = voice_report("Unfortunately you must press the button on top of the sensor twice!!!", rules)
    assert set(report.failed) == {
        "starts_with_any",
        "ends_with_any",
        "forbidden_phrases",
        "max_sentence_words",
        "max_exclamations",
    }
    assert report.score == 0.0
    rates = rule_pass_rates(["Hey neighbor! Hi. Stay dry!", "Hello."], rules)
    assert rates["starts_with_any"] == 0.5 and rates["forbidden_phrases"] == 1.0


def test_json_format_validity_names_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "schema.json"
    path.write_text(
        json.dumps({"type": "object", "required": ["ticket"], "properties": {"ticket": {"type": "integer"}}})
    )
    schema = load_schema(path)
    reports = format_reports(
        ['{"ticket": 3}', '```json\n{"ticket": 4}\n```', '{"ticket": "x"}', "not json"], schema
    )
    assert [r.valid for r in reports] == [True, True, False, False]
    assert "not of type 'integer'" in reports[2].reason and reports[3].reason.startswith("not JSON")
    path.write_text(json.dumps({"type": "nonsense"}))
    with pytest.raises(EvalError, match="not a valid JSON schema"):
        load_schema(path)


def test_compare_pairs_rows_and_beats_means_non_overlapping() -> None:
    rng = np.random.default_rng(0)
    base = list(rng.uniform(0.2, 0.4, 60))
    cand = list(rng.uniform(0.8, 1.0, 60))
    result = compare(cand, base, samples=500, seed=1)
    assert result["beats"] is True and result["n"] == 60
    assert result["candidate"]["low"] > result["base"]["high"]
    assert result["difference"]["low"] > 0
    close = compare(list(np.array(base) + 0.01), base, samples=500, seed=1)
    assert close["beats"] is False  # a higher mean with overlapping intervals does not beat
    # None (suite does not apply) drops the row from both sides, keeping the pairing.
    assert compare([1.0, None, 0.0], [0.0, 1.0, None], 200, 0)["n"] == 1


def test_reference_metrics_come_from_the_libraries() -> None:
    refs = ["Press the button once.", "The hub is blue."]
    assert chrf_scores(refs, refs) == [100.0, 100.0]
    assert rouge_l_scores(refs, refs) == [1.0, 1.0]
    assert chrf_scores(["zzz", "qqq"], refs)[0] < 20


def test_perplexity_ratio_is_token_weighted() -> None:
    tokens = [10, 30]
    base = [10 * 2.0, 30 * 2.0]  # mean NLL 2.0 per token
    cand = [10 * 2.0, 30 * 2.1]
    result = ratio_interval(cand, base, tokens, samples=300, seed=0)
    expected = np.exp((20 + 63) / 40 - 2.0) - 1
    assert result["increase"]["value"] == pytest.approx(expected)
    assert result["candidate"] == pytest.approx(np.exp(83 / 40))


def _results(cand: tuple[float, float, float], base: tuple[float, float, float], ppl_high: float) -> dict:
    def iv(t: tuple[float, float, float]) -> dict:
        return {"value": t[0], "low": t[1], "high": t[2]}

    comparison = {"candidate": iv(cand), "base": iv(base)}
    return {
        "task": "sft",
        "suites": {
            "terminology": comparison,
            "style": {"rules": comparison},
            "regression": {"perplexity": {"increase": {"value": 0.05, "low": 0.01, "high": ppl_high}}},
            "latency": {
                "candidate": {
                    "ttft_ms": {"p95": 80.0},
                    "tokens_per_s": {"p50": 30.0},
                    "latency_ms": {"p95": 900.0},
                }
            },
        },
    }


def test_sft_gate_passes_only_with_non_overlapping_intervals_and_regression_in_bounds() -> None:
    targets = Targets.model_validate({"generation": {"perplexity_increase_max": 0.2, "ttft_p95_ms_max": 100}})
    verdict = decide_generation(targets, _results((0.9, 0.85, 0.95), (0.3, 0.25, 0.35), ppl_high=0.1))
    assert verdict.passed, verdict.reason
    overlapping = decide_generation(targets, _results((0.9, 0.5, 0.95), (0.3, 0.25, 0.6), ppl_high=0.1))
    assert not overlapping.passed
    assert {t.name for t in overlapping.failed} == {
        "generation.terminology_beats_base",
        "generation.style_beats_base",
    }
    forgot = decide_generation(targets, _results((0.9, 0.85, 0.95), (0.3, 0.25, 0.35), ppl_high=0.3))
    assert [t.name for t in forgot.failed] == ["generation.perplexity_increase_max"]
    missing = decide_generation(targets, {"task": "sft", "suites": {}})
    assert not missing.passed and all("cannot pass" in t.sentence for t in missing.failed)
    with pytest.raises(GateError):
        decide_generation(targets, {"task": "classify"})
