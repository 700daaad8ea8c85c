"""The chain for chat models end to end on a tiny local base: check -> train -> eval -> gate -> predict -> export.

Also shows (must-show 5) that malformed chat rows are reported per line and the rest trains, that
the chat template used in training is the object stored, loaded and prompted with in evaluation
and serving, and that both exports round-trip (reloading gives the same greedy answers).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from rich.console import Console

from sft_tiny import conversation, save_tiny_base, write_chat_jsonl
from tunegate.data.chat_check import check_chat_data
from tunegate.models.causal_lm import ChatModel, load_chat_model, load_tokenizer
from tunegate.models.chat_template import template_of
from tunegate.pipeline_sft import (
    eval_sft_step,
    export_version,
    gate_sft_step,
    predict_chat_file,
    train_sft_step,
)
from tunegate.spec.load import load_spec
from tunegate.store import open_store

SPEC = """\
name: tiny-chat
task: sft
base_model: base
data: {train: train.jsonl, test: test.jsonl, pii: false, blockers: [leakage], max_row_error_fraction: 0.2}
sft: {epochs: 1, batch_size: 4, save_steps: 3, eval_steps: 3, learning_rate: 0.003, max_length: 256,
      lora: {r: 4, alpha: 8}}
generation: {max_new_tokens: 6, batch_size: 4, latency_requests: 3}
eval: {bootstrap_samples: 200}
glossary: {required: [harbor], forbidden: [gateway], preferred: {Wi-Fi: [wifi]}}
voice: {rules: {ends_with_any: ["."], max_words: 30}, exemplars: ["The harbor sits next to the dock."]}
regression: {general_text: general.jsonl, general_prompts: prompts.jsonl}
targets: {generation: {perplexity_increase_max: 10.0}}
"""

MALFORMED = [
    "not json at all",
    json.dumps({"messages": [{"role": "user", "content": "hi"}]}),  # no assistant message
    json.dumps({"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]}),
    json.dumps({"messages": [{"role": "user"}, {"role": "assistant", "content": "y"}]}),
    json.dumps({"messages": [{"role": "assistant", "content": "first"}, {"role": "user", "content": "x"}]}),
]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("sft-chain")
    save_tiny_base(root / "base")
    rows = [json.dumps(conversation(i)) for i in range(30)]
    lines = rows[:5] + MALFORMED + rows[5:]  # malformed rows at lines 6-10
    (root / "train.jsonl").write_text("\n".join(lines) + "\n")
    write_chat_jsonl(root / "test.jsonl", [conversation(i) for i in range(200, 206)])
    (root / "general.jsonl").write_text(
        "".join(json.dumps({"text": f"The sea is calm on day {i}."}) + "\n" for i in range(4))
    )
    (root / "prompts.jsonl").write_text(
        json.dumps({"messages": [{"role": "user", "content": "Say hi"}], "reference": "Hi."}) + "\n"
    )
    (root / "tunegate.yaml").write_text(SPEC)
    return root


def test_malformed_rows_are_reported_per_line_and_the_rest_trains(workspace: Path) -> None:
    loaded = load_spec(workspace)
    store = open_store(workspace / "ws")
    report = check_chat_data(loaded, store.workspace.cache_dir)
    errors = report.row_errors["train"]
    assert [e.line for e in errors] == [6, 7, 8, 9, 10]
    reasons = " | ".join(e.reason for e in errors)
    for expected in (
        "not valid JSON",
        "example_missing_assistant_message",
        "unrecognized_role",
        "message_missing_key",
        "role_order",
    ):
        assert expected in reasons
    assert len(report.train) == 30 and not report.blockers
    assert report.tokens["train"].to_dict()["assistant_tokens_total"] > 0

    version = train_sft_step(loaded, store, Console(quiet=True), report)
    consumed = json.loads(
        (store.artifacts.get_tree(version.artifact_sha256) / "consumed-examples.json").read_text()
    )
    seen = {i for ids in consumed.values() for i in ids}
    validation = version.lineage["validation_examples"]
    assert len(seen) == 30 - validation and seen <= {f"c{i}" for i in range(30)}
    assert version.lineage["steps"] == len(consumed) and version.stage == "candidate"


def test_one_template_for_training_evaluation_and_serving(workspace: Path) -> None:
    loaded = load_spec(workspace)
    store = open_store(workspace / "ws")
    version = store.meta.resolve("tiny-chat")
    trained_with = template_of(load_tokenizer(workspace / "base"), name="chat template of base")
    folder = store.artifacts.get_tree(version.artifact_sha256)
    served = load_chat_model(folder, store.workspace.cache_dir, workspace)
    assert version.lineage["chat_template_sha256"] == trained_with.sha256 == served.template.sha256
    assert served.template.source == (folder / "chat_template.jinja").read_text() == trained_with.source

    record = eval_sft_step(loaded, store, None, Console(quiet=True))
    results = record.results
    assert results["chat_template_sha256"] == trained_with.sha256
    assert set(results["suites"]) >= {"reference", "terminology", "style", "regression", "latency", "cost"}
    for suite in ("terminology",):
        assert {"candidate", "base", "difference", "beats"} <= set(results["suites"][suite])
    assert results["suites"]["regression"]["perplexity"]["documents"] == 4
    assert len(results["outputs"]) == 6 and results["skipped"] == {
        "format": "no generation.json_schema in the spec"
    }

    gate = gate_sft_step(loaded, store, None, Console(quiet=True))
    names = {t["name"] for t in gate.verdict["targets"]}
    assert {"generation.terminology_beats_base", "generation.perplexity_increase_max"} <= names


def test_predict_and_exports_round_trip(workspace: Path) -> None:
    store = open_store(workspace / "ws")
    prompts = workspace / "prompts-in.jsonl"
    prompts.write_text(
        json.dumps({"id": "a", "prompt": "Tell me about the tide."})
        + "\n"
        + json.dumps({"id": "b", "messages": [{"role": "user", "content": "And the reef?"}]})
        + "\n"
    )
    rows = predict_chat_file(
        store, "tiny-chat", prompts, workspace / "out.jsonl", Console(quiet=True), max_new_tokens=5
    )
    assert [r["id"] for r in rows] == ["a", "b"] and all(r["completion_tokens"] <= 5 for r in rows)

    out = workspace / "export"
    export_version(store, "tiny-chat", out, "both", Console(quiet=True))
    conversations = [[{"role": "user", "content": "Tell me about the dock number 3."}]]
    folder = store.artifacts.get_tree(store.meta.resolve("tiny-chat").artifact_sha256)

    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged_in_memory = load_chat_model(folder, store.workspace.cache_dir, workspace, merge=True)
    tokenizer = AutoTokenizer.from_pretrained(str(out / "merged"))
    reloaded = ChatModel(
        AutoModelForCausalLM.from_pretrained(str(out / "merged")), tokenizer, template_of(tokenizer)
    )
    assert reloaded.template.sha256 == merged_in_memory.template.sha256
    expected = merged_in_memory.generate(conversations, max_new_tokens=12)
    assert reloaded.generate(conversations, max_new_tokens=12) == expected

    unmerged = load_chat_model(folder, store.workspace.cache_dir, workspace, merge=False)
    config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    base = AutoModelForCausalLM.from_pretrained(config["base_model_name_or_path"])
    adapter = PeftModel.from_pretrained(base, str(out / "adapter"))
    adapter_tokenizer = AutoTokenizer.from_pretrained(str(out / "adapter"))
    from_adapter = ChatModel(adapter.eval(), adapter_tokenizer, unmerged.template)
    assert from_adapter.generate(conversations, max_new_tokens=12) == unmerged.generate(
        conversations, max_new_tokens=12
    )


def test_stored_inference_dtype_is_what_evaluation_and_serving_load(workspace: Path) -> None:
    import shutil

    from tunegate.errors import ModelError
    from tunegate.models.causal_lm import load_base_chat_model

    store = open_store(workspace / "ws")
    folder = store.artifacts.get_tree(store.meta.resolve("tiny-chat").artifact_sha256)
    assert json.loads((folder / "sft.json").read_text())["inference_dtype"] == "float32"  # the default
    copy = workspace / "bf16-artifact"
    shutil.copytree(folder, copy)
    info = json.loads((copy / "sft.json").read_text())
    (copy / "sft.json").write_text(json.dumps({**info, "inference_dtype": "bfloat16"}))

    def dtypes(chat: ChatModel) -> set[torch.dtype]:
        return {p.dtype for p in chat.model.parameters()}

    bf16 = load_chat_model(copy, store.workspace.cache_dir, workspace)
    assert dtypes(bf16) == {torch.bfloat16}
    assert bf16.generate([[{"role": "user", "content": "Tell me about the tide."}]], max_new_tokens=4)
    assert dtypes(load_chat_model(copy, store.workspace.cache_dir, workspace, dtype="float32")) == {
        torch.float32
    }
    base = load_base_chat_model("base", store.workspace.cache_dir, workspace, dtype="bfloat16")
    assert dtypes(base) == {torch.bfloat16}

    (copy / "sft.json").write_text(json.dumps({**info, "inference_dtype": "float16"}))
    with pytest.raises(ModelError, match="inference_dtype 'float16'"):
        load_chat_model(copy, store.workspace.cache_dir, workspace)
