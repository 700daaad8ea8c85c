"""Exactness of the training engine on CPU (tiny Llama, fp32): packing changes nothing, and its
training steps equal a plain HF + PEFT loop's."""

from __future__ import annotations

import copy
import random
import sys

import pytest
import torch

peft = pytest.importorskip("peft")
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from tunegate.train.engine import (  # noqa: E402
    EngineConfig,
    PackedCausalLM,
    TokenExample,
    build_batch,
    pack_rows,
    plan_steps,
    train_sft,
)
from tunegate.train.engine.layer import doc_block_mask, doc_mask_dense, doc_spans  # noqa: E402
from tunegate.train.engine.packing import IGNORE_INDEX  # noqa: E402

VOCAB = 128


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
    )
    config._attn_implementation = "sdpa"
    return LlamaForCausalLM(config).float().eval()


def random_examples(n: int, seed: int, min_len: int = 4, max_len: int = 40) -> list[TokenExample]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        length = rng.randint(min_len, max_len)
        prompt = rng.randint(1, length - 1)
        ids = tuple(rng.randrange(1, VOCAB) for _ in range(length))
        out.append(TokenExample(ids, (False,) * prompt + (True,) * (length - prompt)))
    return out


def with_lora(model: LlamaForCausalLM, rank: int = 4) -> object:
    config = peft.LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear", lora_dropout=0.0)
    peft_model = peft.get_peft_model(model, config)
    # B starts at zero in PEFT; random B makes the adapters matter from the first forward pass.
    torch.manual_seed(1)
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)
    return peft_model


def unpacked_example_loss(hf_model: object, ex: TokenExample) -> float:
    ids = torch.tensor([ex.input_ids])
    labels = torch.tensor(
        [[t if lab else IGNORE_INDEX for t, lab in zip(ex.input_ids, ex.labelled, strict=True)]]
    )
    with torch.no_grad():
        return float(hf_model(input_ids=ids, labels=labels).loss)


def mask_for(attention: str, doc_ids: torch.Tensor) -> object:
    if attention == "varlen":
        return doc_spans(doc_ids)
    if attention == "flex":
        return doc_block_mask(doc_ids, compile_mask=False)
    return doc_mask_dense(doc_ids)


@pytest.mark.parametrize("attention", ["sdpa", "flex", "varlen"])
def test_packed_per_example_loss_equals_unpacked(attention: str) -> None:
    hf = with_lora(tiny_llama())
    examples = random_examples(12, seed=3)
    reference = [unpacked_example_loss(hf, ex) for ex in examples]

    engine = PackedCausalLM.from_hf(hf, attention=attention)
    rows = pack_rows([len(e) for e in examples], seq_len=64)
    assert len(rows) < len(examples)  # several examples really share rows
    batch = build_batch(examples, rows, seq_len=64, pad_id=0)
    mask = mask_for(attention, batch.doc_ids)
    losses = engine.token_losses(batch.input_ids, batch.position_ids, mask, batch.targets)

    for r, row in enumerate(rows):
        start = 0
        for i in row:
            n = len(examples[i])
            tgt = batch.targets[r, start : start + n]
            packed = float(losses[r, start : start + n][tgt != IGNORE_INDEX].mean())
            assert packed == pytest.approx(reference[i], abs=1e-5), f"example {i}"
            start += n


def test_training_loss_sum_matches_token_losses() -> None:
    hf = with_lora(tiny_llama())
    examples = random_examples(8, seed=4)
    engine = PackedCausalLM.from_hf(hf)
    batch = build_batch(examples, pack_rows([len(e) for e in examples], 64), 64, pad_id=0)
    mask = doc_mask_dense(batch.doc_ids)
    flat = batch.targets.view(-1)
    index = (flat != IGNORE_INDEX).nonzero().squeeze(1)
    loss_sum = engine(batch.input_ids, batch.position_ids, mask, index, flat[index])
    per_token = engine.token_losses(batch.input_ids, batch.position_ids, mask, batch.targets)
    assert float(loss_sum.detach()) == pytest.approx(float(per_token.sum()), rel=1e-5)
    assert batch.labelled_tokens == index.numel()


def plain_hf_peft_steps(
    peft_model: object,
    examples: list[TokenExample],
    steps: list[list[list[int]]],
    lr: float,
    max_grad_norm: float,
) -> list[float]:
    """The reference: padded batches, HF's own loss (mean over labelled tokens), AdamW."""
    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), weight_decay=0.0)
    losses = []
    for step_rows in steps:
        batch_examples = [examples[i] for row in step_rows for i in row]
        width = max(len(e) for e in batch_examples)
        ids = torch.zeros((len(batch_examples), width), dtype=torch.long)
        attn = torch.zeros_like(ids)
        labels = torch.full_like(ids, IGNORE_INDEX)
        for b, ex in enumerate(batch_examples):
            n = len(ex)
            ids[b, :n] = torch.tensor(ex.input_ids)
            attn[b, :n] = 1
            labels[b, :n] = torch.tensor(
                [t if lab else IGNORE_INDEX for t, lab in zip(ex.input_ids, ex.labelled, strict=True)]
            )
        loss = peft_model(input_ids=ids, attention_mask=attn, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss))
    return losses


@pytest.mark.parametrize("attention", ["sdpa", "varlen"])
def test_twenty_steps_match_plain_hf_peft(attention: str) -> None:
    reference = with_lora(tiny_llama())
    engine_model = copy.deepcopy(reference)
    examples = random_examples(60, seed=5)
    cfg = EngineConfig(
        seq_len=64,
        tokens_per_step=128,
        micro_batch_rows=1,
        epochs=5,
        max_steps=20,
        learning_rate=1e-2,
        max_grad_norm=1.0,
        compile=False,
        attention=attention,
        seed=7,
    )
    steps = plan_steps([len(e) for e in examples], cfg.seq_len, cfg.rows_per_step, cfg.epochs, cfg.seed)[:20]
    assert len(steps) == 20 and all(
        len(s) == 2 for s in steps
    )  # two micro-batches: accumulation is exercised

    ref_losses = plain_hf_peft_steps(reference, examples, steps, lr=1e-2, max_grad_norm=1.0)
    result = train_sft(engine_model, None, examples, cfg, log=lambda _m: None)

    assert result.steps == 20
    assert result.losses == pytest.approx(ref_losses, abs=1e-5)
    ref_params = dict(reference.named_parameters())
    compared = 0
    for name, p in engine_model.named_parameters():
        if "lora_" in name:
            assert (p - ref_params[name]).abs().max() < 1e-4, name
            compared += 1
    assert compared == 2 * 7 * 2  # A and B of 7 linear layers in 2 layers
    # Training moved the adapters (the comparison above is not between two untouched copies).
    untouched = with_lora(tiny_llama())
    a0 = dict(untouched.named_parameters())[
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight"
    ]
    a1 = dict(engine_model.named_parameters())[
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight"
    ]
    assert (a1 - a0).abs().max() > 1e-3


def test_cpu_run_imports_no_gpu_modules() -> None:
    hf = with_lora(tiny_llama())
    cfg = EngineConfig(seq_len=64, tokens_per_step=128, max_steps=2, log_every=1)
    result = train_sft(hf, None, random_examples(10, seed=6), cfg, log=lambda _m: None)
    assert result.settings["attention"] == "sdpa" and result.settings["compile"] is False
    assert result.settings["fused_loss"] is False
    assert "liger_kernel" not in sys.modules
    assert "triton" not in sys.modules or torch.cuda.is_available()


def test_full_finetune_updates_the_hf_model_through_views() -> None:
    hf = tiny_llama()
    before = hf.model.layers[0].self_attn.k_proj.weight.detach().clone()
    cfg = EngineConfig(
        seq_len=64, tokens_per_step=128, mode="full", max_steps=3, learning_rate=1e-3, compile=False
    )
    examples = random_examples(12, seed=8)
    train_sft(hf, None, examples, cfg, log=lambda _m: None)
    after = hf.model.layers[0].self_attn.k_proj.weight
    assert (after - before).abs().max() > 1e-5
    # The HF model computes with the trained weights: its loss equals the engine's on a fresh pack.
    engine = PackedCausalLM.from_hf(hf)
    ex = examples[0]
    batch = build_batch([ex], [[0]], 64, pad_id=0)
    losses = engine.token_losses(
        batch.input_ids, batch.position_ids, doc_mask_dense(batch.doc_ids), batch.targets
    )
    packed = float(losses[0, : len(ex)][batch.targets[0, : len(ex)] != IGNORE_INDEX].mean())
    assert packed == pytest.approx(unpacked_example_loss(hf, ex), abs=1e-5)
