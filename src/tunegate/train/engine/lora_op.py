"""A linear layer with its LoRA product added in place, as one opaque op for `torch.compile`.

    y = x @ W.T (+ bias) + (x @ A.T) @ B.T

Written as `torch.addmm(x @ W.T, x @ A.T, B.T)` inside a compiled graph, the add is out of place:
a compiled graph is functional, and aten's addmm copies the base output into a fresh tensor
before the matmul accumulates into it. That copy is a full pass over the layer's output (the
largest tensors of a step, `tokens x 2 * intermediate` for gate/up), 82 device copies and 3.4% of
a 1B step's GPU time on an H200 (docs/gpu-training.md). As a custom op the graph sees one call;
inside it the LoRA product is accumulated into the base output by the matmul itself (`addmm_`,
beta = 1). The backward pass does the same for the input gradient.

The forward arithmetic is that of the out-of-place form (the same matmuls, the sum taken in the
second matmul's epilogue). The input gradient is rounded once instead of twice (the LoRA part is
summed inside the matmul, not added to a rounded base part), so in bf16 it can differ from the
out-of-place form in the last bit; in fp32 the tests find them equal.
`B` here is the scaled (block-diagonal, for fused groups) B of layer.py's `lora_matrices`; `W` is
frozen (LoRA trains only A and B): the op refuses a `W` or bias that needs a gradient, and
layer.py uses plain ops in the rare case that both base and adapter train.
"""

import torch
import torch.nn.functional as F


@torch.library.custom_op("tunegate::lora_linear", mutates_args=())
def lora_linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, a: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """x [T, in], weight [out, in], a [r, in], b [out, r] -> (y [T, out], x @ a.T [T, r]).

    The second output is kept for the backward pass (B's gradient needs it); callers ignore it."""
    xa = x @ a.t()
    y = F.linear(x, weight, bias)
    y.addmm_(xa, b.t())
    return y, xa


@lora_linear.register_fake
def _lora_linear_fake(x, weight, bias, a, b):
    return x.new_empty(x.shape[0], weight.shape[0]), x.new_empty(x.shape[0], a.shape[0])


@torch.library.custom_op("tunegate::lora_linear_backward", mutates_args=())
def lora_linear_backward(
    dy: torch.Tensor,
    d_xa: torch.Tensor | None,
    x: torch.Tensor,
    weight: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    xa: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of x, a and b, given dy (and d_xa, should anything have used the second output)."""
    g_xa = dy @ b  # [T, r]
    if d_xa is not None:
        g_xa = g_xa + d_xa
    dx = dy @ weight  # [T, in]
    dx.addmm_(g_xa, a)
    da = g_xa.t() @ x  # [r, in]
    db = dy.t() @ xa  # [out, r]
    return dx, da, db


@lora_linear_backward.register_fake
def _lora_linear_backward_fake(dy, d_xa, x, weight, a, b, xa):
    return torch.empty_like(x), torch.empty_like(a), torch.empty_like(b)


def _setup_context(ctx, inputs, output) -> None:
    x, weight, bias, a, b = inputs
    if weight.requires_grad or (bias is not None and bias.requires_grad):
        raise RuntimeError("tunegate::lora_linear: the base weight and bias are frozen; they get no gradient")
    ctx.save_for_backward(x, weight, a, b, output[1])


def _backward(ctx, dy, d_xa):
    x, weight, a, b, xa = ctx.saved_tensors
    dx, da, db = lora_linear_backward(dy, d_xa, x, weight, a, b, xa)
    return dx, None, None, da, db


lora_linear.register_autograd(_backward, setup_context=_setup_context)
