"""Training smoke tests on a tiny random Llama: every trainable parameter moves, top_layers limits adapters,
full fine-tuning trains every weight, and the validation loss is reported."""

from __future__ import annotations

import pytest
import torch

from sft_tiny import conversation, save_tiny_base
from tunegate.data.chat import ChatExample
from tunegate.errors import TrainError
from tunegate.models.causal_lm import load_causal_lm, load_tokenizer
from tunegate.models.chat_template import template_of
from tunegate.spec.sft import LoraSpec, SftSpec
from tunegate.train.sft import train_sft
from tunegate.train.sft_data import tokenize_for_training


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tiny")
    base = save_tiny_base(root / "base", seed=2)
    tokenizer = load_tokenizer(base)
    examples = [ChatExample(tuple(conversation(i)["messages"]), f"c{i}", "t", i) for i in range(20)]
    rows, _ = tokenize_for_training(examples, template_of(tokenizer), tokenizer, 256)
    return root, base, tokenizer, rows


def _config(**kw: object) -> SftSpec:
    return SftSpec.model_validate(
        {"epochs": 1, "batch_size": 4, "save_steps": 100, "eval_steps": 2, "learning_rate": 5e-3, **kw}
    )


def test_lora_moves_every_trainable_parameter_and_reports_validation_loss(tiny) -> None:
    root, base, tokenizer, rows = tiny
    result = train_sft(rows[:16], rows[16:], base, tokenizer, _config(), root / "run-lora")
    trainable = {n: p for n, p in result.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    initial = dict(load_causal_lm(base).named_parameters())
    assert all(
        float(p.detach().abs().max()) > 0 for n, p in trainable.items() if "lora_B" in n
    )  # B starts at 0
    frozen = {n: p for n, p in result.model.named_parameters() if not p.requires_grad and "lora_" not in n}
    for name, p in frozen.items():  # the base weights are untouched
        key = name.replace("base_model.model.", "").replace(".base_layer", "")
        assert torch.equal(p, initial[key]), name
    assert any("eval_loss" in h for h in result.log_history)
    assert result.steps == 4 and len(result.consumed) == 4


def test_top_layers_adapts_only_the_top_of_the_stack(tiny) -> None:
    root, base, tokenizer, rows = tiny
    result = train_sft(
        rows[:8], [], base, tokenizer, _config(lora=LoraSpec(r=2, alpha=4, top_layers=1)), root / "run-top"
    )
    names = [n for n, p in result.model.named_parameters() if p.requires_grad]
    assert names and all(".layers.1." in n for n in names)
    with pytest.raises(TrainError, match="has 2 layers"):
        train_sft(rows[:8], [], base, tokenizer, _config(lora=LoraSpec(top_layers=3)), root / "run-bad")


def test_full_fine_tuning_trains_every_weight(tiny) -> None:
    root, base, tokenizer, rows = tiny
    result = train_sft(rows[:8], [], base, tokenizer, _config(method="full"), root / "run-full")
    initial = dict(load_causal_lm(base).named_parameters())
    changed = [n for n, p in result.model.named_parameters() if not torch.equal(p, initial[n])]
    assert set(changed) == set(initial)


def test_bfloat16_precision_computes_in_bf16_and_keeps_float32_adapters(tiny) -> None:
    root, base, tokenizer, rows = tiny
    runs = {
        precision: train_sft(
            rows[:8], [], base, tokenizer, _config(precision=precision), root / f"run-{precision}"
        )
        for precision in ("float32", "bfloat16")
    }
    adapters = {
        precision: {n: p.detach() for n, p in r.model.named_parameters() if "lora_" in n}
        for precision, r in runs.items()
    }
    assert adapters["bfloat16"] and all(p.dtype == torch.float32 for p in adapters["bfloat16"].values())
    # Autocast really ran the matmuls in bf16: the weights differ, but only by rounding-sized amounts.
    gaps = [float((adapters["bfloat16"][n] - p).abs().max()) for n, p in adapters["float32"].items()]
    assert max(gaps) > 0
    losses = {p: [h["loss"] for h in r.log_history if "loss" in h] for p, r in runs.items()}
    assert len(losses["bfloat16"]) == len(losses["float32"]) == 2
    for lo_bf16, lo_fp32 in zip(losses["bfloat16"], losses["float32"], strict=True):
        assert lo_bf16 == pytest.approx(lo_fp32, rel=0.03)
