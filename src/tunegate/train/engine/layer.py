"""One Llama-family decoder layer as a pure function of its weights, for packed rows.

The function is built once per layer shape (`make_layer_fn`) and called for every layer, so
`torch.compile` traces and compiles it once and every layer reuses the kernels. Compiled, Inductor
fuses RMSNorm, RoPE, SwiGLU and the residual adds into a few Triton kernels (what Liger's
hand-written kernels do for the HF modules), and its partitioner recomputes cheap elementwise
results in the backward pass instead of keeping them in memory.

Fused matmuls: q, k and v share one weight matrix (one large matmul instead of three, two of them
narrow), and so do gate and up. LoRA adapters of one fused group share one A matmul on their
common input (the A matrices stacked) and one B matmul against the block-diagonal of the scaled B
matrices, added into the base output in place by `addmm`. The LoRA parameters stay PEFT's own
tensors (fp32 master copies, cast to the compute dtype here), so gradients land where PEFT and the
optimizer expect them.

Attention is causal within a document only (`doc_ids`): FlexAttention with a block mask on CUDA
(empty blocks between documents are skipped), or a dense boolean mask with PyTorch's SDPA, the
portable fallback used on CPU. Deliberately not here: attention biases other than the document
mask (sliding windows, ALiBi, soft-capping), QK-norm, dropout on the LoRA input.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F


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
    attention: str = "sdpa"  # "flex" or "sdpa"

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
    """x: [B, H, S, D]; cos, sin: [B, S, D] from the model's own rotary module (any RoPE scaling)."""
    cos = cos.unsqueeze(1)
    sin = sin.unsqueeze(1)
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
    y = F.linear(x2d, weight, bias)
    if lora is None:
        return y
    a, b = lora
    return torch.addmm(y, F.linear(x2d, a), b.t())


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


def make_layer_fn(spec: LayerSpec) -> Callable[..., torch.Tensor]:
    """The layer as a function: (x, cos, sin, mask, weights, lora tensors) -> x after the layer."""
    dq, dk, dv = spec.qkv_sizes
    inter = spec.intermediate
    scale = spec.head_dim**-0.5
    if spec.attention == "flex":
        from torch.nn.attention.flex_attention import flex_attention

    def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: object) -> torch.Tensor:
        if spec.attention == "flex":
            # Contiguous [B, H, S, D]: compiled FlexAttention on transposed views of the fused qkv
            # output computed wrong results (seen with torch 2.13 on CPU; tests/test_engine_exact.py).
            q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
            return flex_attention(
                q, k, v, block_mask=mask, scale=scale, enable_gqa=spec.n_kv_heads != spec.n_heads
            )
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, scale=scale, enable_gqa=spec.n_kv_heads != spec.n_heads
        )

    def layer(
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: object,
        weights: Sequence[torch.Tensor | None],
        lora_a: Sequence[torch.Tensor | None],
        lora_b: Sequence[torch.Tensor | None],
        lora_scales: Sequence[float],
    ) -> torch.Tensor:
        ln1, qkv_w, qkv_b, o_w, ln2, gu_w, down_w = weights
        dt = x.dtype
        bsz, seq, hidden = x.shape
        # LoRA tensors arrive in a fixed order: q, k, v, o, gate, up, down (None where absent).
        lq = lora_matrices(lora_a[0:3], lora_b[0:3], lora_scales[0:3], (dq, dk, dv), dt)
        lo = lora_matrices(lora_a[3:4], lora_b[3:4], lora_scales[3:4], (hidden,), dt)
        lgu = lora_matrices(lora_a[4:6], lora_b[4:6], lora_scales[4:6], (inter, inter), dt)
        ld = lora_matrices(lora_a[6:7], lora_b[6:7], lora_scales[6:7], (hidden,), dt)

        h = rms_norm(x, ln1, spec.rms_eps).view(bsz * seq, hidden)
        qkv = _linear_lora(h, qkv_w, qkv_b, lq)
        q, k, v = qkv.split((dq, dk, dv), dim=-1)
        q = q.view(bsz, seq, spec.n_heads, spec.head_dim).transpose(1, 2)
        k = k.view(bsz, seq, spec.n_kv_heads, spec.head_dim).transpose(1, 2)
        v = v.view(bsz, seq, spec.n_kv_heads, spec.head_dim).transpose(1, 2)
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)
        o = attention(q, k, v, mask).transpose(1, 2).reshape(bsz * seq, dq)
        x = x + _linear_lora(o, o_w, None, lo).view(bsz, seq, hidden)

        h = rms_norm(x, ln2, spec.rms_eps).view(bsz * seq, hidden)
        gate, up = _linear_lora(h, gu_w, None, lgu).split((inter, inter), dim=-1)
        act = F.silu(gate) * up
        return x + _linear_lora(act, down_w, None, ld).view(bsz, seq, hidden)

    return layer
