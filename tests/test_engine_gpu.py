"""The engine's GPU path (compiled layers, varlen flash attention, FlexAttention, Liger's fused loss,
bf16) against its exact CPU-style path. Skipped without CUDA; run on a GPU machine with
`pytest tests/test_engine_gpu.py`."""

from __future__ import annotations

import sys

import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from test_engine_exact import random_examples, tiny_llama, with_lora  # noqa: E402
from tunegate.train.engine import EngineConfig, PackedCausalLM, build_batch, pack_rows, train_sft  # noqa: E402
from tunegate.train.engine.layer import (  # noqa: E402
    DocSpans,
    LayerSpec,
    _varlen_cuda,
    _varlen_reference,
    doc_block_mask,
    doc_mask_dense,
    doc_spans,
)
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


def test_varlen_flash_equals_per_document_sdpa_forward_and_backward() -> None:
    # GQA (8 query heads, 2 key/value heads), documents of uneven lengths, one of a single token.
    spec = LayerSpec(
        hidden=512, n_heads=8, n_kv_heads=2, head_dim=64, intermediate=1024, rms_eps=1e-5, qkv_bias=False
    )
    lengths = [300, 1, 77, 129, 1024, 517]
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    spans = DocSpans(cu.cuda(), max(lengths))
    gen = torch.Generator(device="cuda").manual_seed(0)
    total = sum(lengths)

    def rand(heads: int) -> torch.Tensor:
        return torch.randn(total, heads, 64, device="cuda", generator=gen, dtype=torch.bfloat16)

    q, k, v, grad = rand(8), rand(2), rand(2), rand(8)
    outs, grads = [], []
    for attend, dtype in ((_varlen_cuda(spec), torch.bfloat16), (_varlen_reference(spec), torch.float64)):
        inputs = [t.detach().to(dtype).requires_grad_(True) for t in (q, k, v)]
        out = attend(*inputs, spans)
        out.backward(grad.to(dtype))
        outs.append(out.double())
        grads.append([t.grad.double() for t in inputs])
    assert float((outs[0] - outs[1]).norm() / outs[1].norm()) < 1e-2
    for fast, ref in zip(grads[0], grads[1], strict=True):
        assert float((fast - ref).norm() / ref.norm()) < 2e-2


@pytest.mark.parametrize("attention", ["varlen", "flex"])
def test_compiled_bf16_matches_eager_fp32(attention: str) -> None:
    examples = random_examples(60, seed=3, max_len=200)
    rows = pack_rows([len(e) for e in examples], 512)
    batch = build_batch(examples, rows, 512, pad_id=0).to("cuda")
    reference = PackedCausalLM.from_hf(with_lora(tiny_llama()).cuda(), attention="sdpa")
    ref = reference.token_losses(
        batch.input_ids, batch.position_ids, doc_mask_dense(batch.doc_ids), batch.targets
    )
    fast = PackedCausalLM.from_hf(with_lora(tiny_llama()).to("cuda", torch.bfloat16), attention=attention)
    fast.set_layer_fn(compile_layers=True)
    mask = (
        doc_spans(batch.doc_ids.cpu()).to("cuda")
        if attention == "varlen"
        else doc_block_mask(batch.doc_ids, True)
    )
    out = fast.token_losses(batch.input_ids, batch.position_ids, mask, batch.targets)
    keep = batch.targets != IGNORE_INDEX
    assert float((out[keep] - ref[keep]).abs().mean()) < 2e-2 * float(ref[keep].abs().mean())


@pytest.mark.parametrize("attention", ["auto", "varlen"])
def test_gpu_training_matches_cpu_style_training(attention: str) -> None:
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
        EngineConfig(**cfg, fused_loss=True, attention=attention),
        log=print,
    )
    assert (
        fast.settings["attention"] == ("flex" if attention == "auto" else attention)
        and fast.settings["compile"]
        and fast.settings["fused_loss"] is True
    )
    assert fast.plan is not None and fast.plan.micro_batch_rows >= 1
    for a, b in zip(fast.losses, exact.losses, strict=True):
        assert a == pytest.approx(b, rel=2e-2)
