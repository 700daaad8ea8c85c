"""One Llama-family decoder layer as a pure function of its weights, for packed rows.

The function is built once per layer shape (`make_layer_fn`) and called for every layer, so
`torch.compile` traces and compiles it once and every layer reuses the kernels. Compiled, Inductor
fuses RMSNorm, RoPE, SwiGLU and the residual adds into a few Triton kernels (what Liger's
hand-written kernels do for the HF modules), and its partitioner recomputes cheap elementwise
results in the backward pass instead of keeping them in memory.

Fused matmuls: q, k and v share one weight matrix (one large matmul instead of three, two of them
narrow), and so do gate and up. LoRA adapters of one fused group share one A matmul on their
common input (the A matrices stacked) and one B matmul against the block-diagonal of the scaled B
matrices, accumulated into the base output in place by one opaque op (lora_op.py), so no copy of
the base output is made. The LoRA parameters stay PEFT's own tensors (fp32 master copies, cast to
the compute dtype here), so gradients land where PEFT and the optimizer expect them.

Attention is causal within a document only (`doc_ids`), in one of three ways:
- "varlen": the rows flattened into one [tokens, heads, head_dim] sequence of documents and
  PyTorch's variable-length flash attention over them (`torch.nn.attention.varlen`, CUDA), told
  where each document starts (`doc_spans`); no masked blocks, no q/k/v or output transposes. The
  flash kernel takes a document count and a longest-document length that change every micro-batch,
  which a graph compiled with static shapes would recompile for, so this path compiles the parts
  before and after attention and calls the kernel between them. On CPU the same layout runs a loop
  of causal SDPA calls, one per document, so the tests can check the path without a GPU.
- "flex": FlexAttention with a block mask (blocks between documents are skipped), compiled with
  the rest of the layer into one graph.
- "sdpa": a dense boolean mask with PyTorch's SDPA, the portable fallback used on CPU.
Deliberately not here: attention biases other than the document mask (sliding windows, ALiBi,
soft-capping), QK-norm, dropout on the LoRA input.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

import torch
import torch.nn.functional as F

from tunegate.train.engine.lora_op import lora_linear


@dataclass(frozen=True)
class LayerSpec:
    hidden: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    intermediate: int
    rms_eps: float
    qkv_bias: bool
    # Per fused group, which members carry a LoRA adapter: (q, k, v), (o,), (gate, up), (down,).
    lora_qkv: tuple[bool, bool, bool] = (False, False, False)
    lora_o: tuple[bool] = (False,)
    lora_gate_up: tuple[bool, bool] = (False, False)
    lora_down: tuple[bool] = (False,)
    attention: str = "sdpa"  # "varlen", "flex" or "sdpa"

    @property
    def qkv_sizes(self) -> tuple[int, int, int]:
        q = self.n_heads * self.head_dim
        kv = self.n_kv_heads * self.head_dim
        return (q, kv, kv)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    # Same arithmetic as transformers' LlamaRMSNorm: statistics in fp32, scale in the weight's dtype.
    xf = x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return weight * xf.to(x.dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: [..., H, D]; cos, sin: [..., D] from the model's own rotary module (any RoPE scaling)."""
    cos = cos.unsqueeze(-2)
    sin = sin.unsqueeze(-2)
    return x * cos + _rotate_half(x) * sin


def lora_matrices(
    a_list: Sequence[torch.Tensor | None],
    b_list: Sequence[torch.Tensor | None],
    scales: Sequence[float],
    out_sizes: Sequence[int],
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Stacked A [sum r, in] and block-diagonal scaled B [sum out, sum r] for one fused group."""
    a_present = [a for a in a_list if a is not None]
    if not a_present:
        return None
    a = torch.cat(a_present).to(dtype)
    blocks = []
    for b, s, n in zip(b_list, scales, out_sizes, strict=True):
        blocks.append((b * s).to(dtype) if b is not None else a.new_zeros((n, 0)))
    return a, torch.block_diag(*blocks)


def _linear_lora(
    x2d: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    lora: tuple[torch.Tensor, torch.Tensor] | None,
) -> torch.Tensor:
    if lora is None:
        return F.linear(x2d, weight, bias)
    a, b = lora
    if weight.requires_grad or (bias is not None and bias.requires_grad):
        # Base and adapter both trained (rare): plain ops, whose autograd covers the base weights.
        return torch.addmm(F.linear(x2d, weight, bias), F.linear(x2d, a), b.t())
    return lora_linear(x2d, weight, bias, a, b)[0]


def doc_mask_dense(doc_ids: torch.Tensor) -> torch.Tensor:
    """[B, 1, S, S] boolean: True where query i may attend key j (same document, j <= i)."""
    s = doc_ids.shape[1]
    causal = torch.ones(s, s, dtype=torch.bool, device=doc_ids.device).tril()
    same_doc = doc_ids[:, :, None] == doc_ids[:, None, :]
    return (same_doc & causal)[:, None]


def doc_block_mask(doc_ids: torch.Tensor, compile_mask: bool) -> object:
    """FlexAttention BlockMask for causal attention within documents."""
    from torch.nn.attention.flex_attention import create_block_mask

    def mask_mod(b, h, q_idx, kv_idx):
        return (doc_ids[b, q_idx] == doc_ids[b, kv_idx]) & (q_idx >= kv_idx)

    b, s = doc_ids.shape
    make = _compiled_create_block_mask() if compile_mask else create_block_mask
    return make(mask_mod, b, None, s, s, device=doc_ids.device)


_CREATE_BLOCK_MASK: Callable | None = None


def _compiled_create_block_mask() -> Callable:
    global _CREATE_BLOCK_MASK
    if _CREATE_BLOCK_MASK is None:
        from torch.nn.attention.flex_attention import create_block_mask

        # Compiled, the mask is built block by block without materialising [S, S] (the documented way).
        _CREATE_BLOCK_MASK = torch.compile(create_block_mask)
    return _CREATE_BLOCK_MASK


@dataclass(frozen=True)
class DocSpans:
    """Where each document of a micro-batch starts in the flattened rows, for "varlen" attention."""

    cu_seqlens: torch.Tensor
    """int32 [documents + 1]: 0, the start of each later document, then rows * seq_len."""
    max_len: int
    """Tokens in the longest document."""

    def to(self, device: torch.device | str) -> DocSpans:
        cu = self.cu_seqlens
        if torch.device(device).type == "cuda":
            cu = cu.pin_memory()  # so the copy below does not hold up the CPU
        return DocSpans(cu.to(device, non_blocking=True), self.max_len)


def doc_spans(doc_ids: torch.Tensor) -> DocSpans:
    """Documents of `doc_ids` [B, S] (padding is a document of its own); computed where doc_ids is,
    so on the CPU before the batch moves, without waiting for the GPU."""
    bsz, seq = doc_ids.shape
    starts = torch.ones_like(doc_ids, dtype=torch.bool)
    starts[:, 1:] = doc_ids[:, 1:] != doc_ids[:, :-1]  # column 0: every row starts a document
    offsets = starts.flatten().nonzero().squeeze(1)
    cu = torch.cat([offsets, offsets.new_tensor([bsz * seq])]).to(torch.int32)
    return DocSpans(cu, int((cu[1:] - cu[:-1]).max()))


def varlen_available() -> bool:
    """Whether this PyTorch has variable-length flash attention (2.10 and later)."""
    import importlib.util

    return importlib.util.find_spec("torch.nn.attention.varlen") is not None


def _varlen_cuda(spec: LayerSpec) -> Callable[..., torch.Tensor]:
    """PyTorch's varlen flash attention, causal within each document. Its keyword for causality
    changed between releases (is_causal in 2.10, window_size=(-1, 0) later), so it is read from
    the signature; the default softmax scale is 1/sqrt(head_dim), the layer's, and the flash kernel
    takes fewer key/value heads than query heads (GQA) natively."""
    import inspect

    from torch.nn.attention.varlen import varlen_attn

    params = inspect.signature(varlen_attn).parameters
    kwargs: dict[str, object] = {"window_size": (-1, 0)} if "window_size" in params else {"is_causal": True}
    if "enable_gqa" in params and spec.n_kv_heads != spec.n_heads:
        kwargs["enable_gqa"] = True

    def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, spans: DocSpans) -> torch.Tensor:
        cu = spans.cu_seqlens
        return varlen_attn(q, k, v, cu, cu, spans.max_len, spans.max_len, **kwargs)

    return attend


def _varlen_reference(spec: LayerSpec) -> Callable[..., torch.Tensor]:
    """The same function on any device: causal SDPA over each document in turn (slow; CPU tests)."""
    scale = spec.head_dim**-0.5
    gqa = spec.n_kv_heads != spec.n_heads

    def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, spans: DocSpans) -> torch.Tensor:
        bounds = spans.cu_seqlens.tolist()
        outs = []
        for start, end in pairwise(bounds):
            qd, kd, vd = (t[start:end].transpose(0, 1) for t in (q, k, v))  # [H, L, D]
            outs.append(
                F.scaled_dot_product_attention(
                    qd, kd, vd, is_causal=True, scale=scale, enable_gqa=gqa
                ).transpose(0, 1)
            )
        return torch.cat(outs)

    return attend


def make_layer_fn(spec: LayerSpec, compile_fn: Callable | None = None) -> Callable[..., torch.Tensor]:
    """The layer as a function: (x, cos, sin, mask, weights, lora tensors) -> x after the layer.

    `compile_fn` (torch.compile with static shapes) is applied to the whole layer, or for "varlen"
    to the parts before and after attention; mask is a DocSpans for "varlen", else what
    `doc_block_mask` ("flex") or `doc_mask_dense` ("sdpa") returns."""
    dq, dk, dv = spec.qkv_sizes
    inter = spec.intermediate
    scale = spec.head_dim**-0.5
    gqa = spec.n_kv_heads != spec.n_heads

    Weights = Sequence[torch.Tensor | None]
    Lora = Sequence[torch.Tensor | None]

    def qkv_rope(
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        weights: Weights,
        lora_a: Lora,
        lora_b: Lora,
        lora_scales: Sequence[float],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v as [B * S, heads, head_dim] (the rows flattened), RoPE applied to q and k."""
        ln1, qkv_w, qkv_b = weights[0:3]
        bsz, seq, hidden = x.shape
        # LoRA tensors arrive in a fixed order: q, k, v, o, gate, up, down (None where absent).
        lq = lora_matrices(lora_a[0:3], lora_b[0:3], lora_scales[0:3], (dq, dk, dv), x.dtype)
        h = rms_norm(x, ln1, spec.rms_eps).view(bsz * seq, hidden)
        q, k, v = _linear_lora(h, qkv_w, qkv_b, lq).split((dq, dk, dv), dim=-1)
        cos, sin = cos.flatten(0, 1), sin.flatten(0, 1)
        q = apply_rope(q.view(bsz * seq, spec.n_heads, spec.head_dim), cos, sin)
        k = apply_rope(k.view(bsz * seq, spec.n_kv_heads, spec.head_dim), cos, sin)
        v = v.view(bsz * seq, spec.n_kv_heads, spec.head_dim)
        if spec.attention == "varlen":
            # Flash takes [tokens, heads, head_dim] as is. v made contiguous so that attention keeps
            # v alone for backward, not the whole fused q/k/v output it views.
            v = v.contiguous()
        return q, k, v

    def out_mlp(
        x: torch.Tensor,
        o: torch.Tensor,
        weights: Weights,
        lora_a: Lora,
        lora_b: Lora,
        lora_scales: Sequence[float],
    ) -> torch.Tensor:
        """x + o_proj(o), then the MLP block; o: [B * S, n_heads * head_dim]."""
        o_w, ln2, gu_w, down_w = weights[3:7]
        bsz, seq, hidden = x.shape
        lo = lora_matrices(lora_a[3:4], lora_b[3:4], lora_scales[3:4], (hidden,), x.dtype)
        lgu = lora_matrices(lora_a[4:6], lora_b[4:6], lora_scales[4:6], (inter, inter), x.dtype)
        ld = lora_matrices(lora_a[6:7], lora_b[6:7], lora_scales[6:7], (hidden,), x.dtype)
        x = x + _linear_lora(o, o_w, None, lo).view(bsz, seq, hidden)
        h = rms_norm(x, ln2, spec.rms_eps).view(bsz * seq, hidden)
        gate, up = _linear_lora(h, gu_w, None, lgu).split((inter, inter), dim=-1)
        act = F.silu(gate) * up
        return x + _linear_lora(act, down_w, None, ld).view(bsz, seq, hidden)

    if spec.attention == "varlen":
        before = compile_fn(qkv_rope) if compile_fn else qkv_rope
        after = compile_fn(out_mlp) if compile_fn else out_mlp
        attend_cuda = _varlen_cuda(spec) if torch.cuda.is_available() else None
        attend_any = _varlen_reference(spec)

        def varlen_layer(
            x: torch.Tensor,
            cos: torch.Tensor,
            sin: torch.Tensor,
            mask: DocSpans,
            weights: Weights,
            lora_a: Lora,
            lora_b: Lora,
            lora_scales: Sequence[float],
        ) -> torch.Tensor:
            q, k, v = before(x, cos, sin, weights, lora_a, lora_b, lora_scales)
            attend = attend_cuda if attend_cuda is not None and q.is_cuda else attend_any
            o = attend(q, k, v, mask)  # [tokens, heads, head_dim], contiguous: flatten is a view
            return after(x, o.flatten(1), weights, lora_a, lora_b, lora_scales)

        return varlen_layer

    if spec.attention == "flex":
        from torch.nn.attention.flex_attention import flex_attention

    def layer(
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: object,
        weights: Weights,
        lora_a: Lora,
        lora_b: Lora,
        lora_scales: Sequence[float],
    ) -> torch.Tensor:
        bsz, seq, _ = x.shape
        q, k, v = [
            t.view(bsz, seq, -1, spec.head_dim).transpose(1, 2)  # [B, H, S, D]
            for t in qkv_rope(x, cos, sin, weights, lora_a, lora_b, lora_scales)
        ]
        if spec.attention == "flex":
            # Contiguous [B, H, S, D]: compiled FlexAttention on transposed views of the fused qkv
            # output computed wrong results (seen with torch 2.13 on CPU; tests/test_engine_exact.py).
            q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
            o = flex_attention(q, k, v, block_mask=mask, scale=scale, enable_gqa=gqa)
        else:
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=gqa)
        o = o.transpose(1, 2).reshape(bsz * seq, dq)
        return out_mlp(x, o, weights, lora_a, lora_b, lora_scales)

    return compile_fn(layer) if compile_fn else layer
