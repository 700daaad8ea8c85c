"""The engine's GPU path (compiled layers, FlexAttention, Liger's fused loss, bf16) against its
exact CPU-style path. Skipped without CUDA; run on a GPU machine with `pytest tests/test_engine_gpu.py`."""

from __future__ import annotations

import sys

import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from test_engine_exact import random_examples, tiny_llama, with_lora  # noqa: E402
from tunegate.train.engine import EngineConfig, PackedCausalLM, build_batch, pack_rows, train_sft  # noqa: E402
from tunegate.train.engine.layer import doc_block_mask, doc_mask_dense  # noqa: E402
from tunegate.train.engine.model import labelled_loss_sum  # noqa: E402
from tunegate.train.engine.packing import IGNORE_INDEX  # noqa: E402


def test_liger_fused_loss_equals_plain_loss() -> None:
    torch.manual_seed(0)
    h = torch.randn(3000, 256, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    w = torch.randn(5000, 256, device="cuda", dtype=torch.bfloat16) * 0.05
    t = torch.randint(0, 5000, (3000,), device="cuda")
    fused = labelled_loss_sum(h, w, t, fused=True)
    (g_fused,) = torch.autograd.grad(fused, h)
    plain = labelled_loss_sum(h, w, t, fused=False)
    (g_plain,) = torch.autograd.grad(plain, h)
    assert float(fused) == pytest.approx(float(plain), rel=2e-3)
    assert float((g_fused.float() - g_plain.float()).norm() / g_plain.float().norm()) < 2e-2


def test_compiled_flex_bf16_matches_eager_fp32() -> None:
    examples = random_examples(60, seed=3, max_len=200)
    rows = pack_rows([len(e) for e in examples], 512)
    batch = build_batch(examples, rows, 512, pad_id=0).to("cuda")
    reference = PackedCausalLM.from_hf(with_lora(tiny_llama()).cuda(), attention="sdpa")
    ref = reference.token_losses(
        batch.input_ids, batch.position_ids, doc_mask_dense(batch.doc_ids), batch.targets
    )
    fast = PackedCausalLM.from_hf(with_lora(tiny_llama()).to("cuda", torch.bfloat16), attention="flex")
    fast.set_layer_fn(compile_layers=True)
    out = fast.token_losses(
        batch.input_ids, batch.position_ids, doc_block_mask(batch.doc_ids, True), batch.targets
    )
    keep = batch.targets != IGNORE_INDEX
    assert float((out[keep] - ref[keep]).abs().mean()) < 2e-2 * float(ref[keep].abs().mean())


def test_gpu_training_matches_cpu_style_training() -> None:
    examples = random_examples(200, seed=4, max_len=200)
    cfg = dict(seq_len=512, tokens_per_step=2048, max_steps=6, learning_rate=1e-3, log_every=1)
    exact = train_sft(
        with_lora(tiny_llama()).cuda(),
        None,
        examples,
        EngineConfig(**cfg, compile=False, attention="sdpa", fused_loss=False),
        log=print,
    )
    fast = train_sft(
        with_lora(tiny_llama()).to("cuda", torch.bfloat16),
        None,
        examples,
        EngineConfig(**cfg, fused_loss=True),
        log=print,
    )
    assert (
        fast.settings["attention"] == "flex"
        and fast.settings["compile"]
        and fast.settings["fused_loss"] is True
    )
    assert fast.plan is not None and fast.plan.micro_batch_rows >= 1
    for a, b in zip(fast.losses, exact.losses, strict=True):
        assert a == pytest.approx(b, rel=2e-2)
