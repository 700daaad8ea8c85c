"""The engine's LoRA linear op (lora_op.py): the in-place add gives the out-of-place result, eager
and inside a compiled graph, and its registration passes PyTorch's own op checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tunegate.train.engine.layer import LayerSpec, _linear_lora, make_layer_fn
from tunegate.train.engine.lora_op import lora_linear


def reference(x, weight, bias, a, b):
    return torch.addmm(F.linear(x, weight, bias), F.linear(x, a), b.t())


def tensors(seed: int, bias: bool, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)

    def r(*shape, grad=False):
        return torch.randn(*shape, generator=g, dtype=dtype).requires_grad_(grad)

    return r(40, 24, grad=True), r(36, 24), r(36) if bias else None, r(4, 24, grad=True), r(36, 4, grad=True)


def grads_of(fn, x, weight, bias, a, b, upstream):
    leaves = [t.detach().clone().requires_grad_() for t in (x, a, b)]
    y = fn(leaves[0], weight, bias, leaves[1], leaves[2])
    y.backward(upstream)
    return [y.detach()] + [t.grad for t in leaves]


@pytest.mark.parametrize("bias", [False, True])
def test_in_place_add_equals_out_of_place_fp32(bias: bool) -> None:
    x, w, bs, a, b = tensors(0, bias)
    upstream = torch.randn(40, 36, generator=torch.Generator().manual_seed(9))
    got = grads_of(lambda *t: lora_linear(*t)[0], x, w, bs, a, b, upstream)
    want = grads_of(reference, x, w, bs, a, b, upstream)
    for name, g_, w_ in zip(("y", "dx", "dA", "dB"), got, want, strict=True):
        torch.testing.assert_close(g_, w_, rtol=0, atol=1e-6, msg=name)


def test_second_output_carries_its_gradient() -> None:
    # Nothing in the engine uses x @ A.T, but if something did, its gradient must reach x and A.
    x, w, _, a, b = tensors(1, False)
    y, xa = lora_linear(x, w, None, a, b)
    (y.sum() + (xa**2).sum()).backward()
    x2, a2, b2 = (t.detach().clone().requires_grad_() for t in (x, a, b))
    xa2 = F.linear(x2, a2)
    (torch.addmm(F.linear(x2, w), xa2, b2.t()).sum() + (xa2**2).sum()).backward()
    for got, want in ((x.grad, x2.grad), (a.grad, a2.grad), (b.grad, b2.grad)):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-5)


def test_refuses_a_base_weight_that_trains() -> None:
    x, w, _, a, b = tensors(2, False)
    with pytest.raises(RuntimeError, match="frozen"):
        lora_linear(x, w.requires_grad_(), None, a, b)


def test_layer_trains_base_and_adapter_with_plain_ops() -> None:
    # Base weights that train (besides LoRA) take the out-of-place path, whose autograd covers them.
    x, w, bs, a, b = tensors(3, True)
    w.requires_grad_()
    y = _linear_lora(x, w, bs, (a, b))
    y.sum().backward()
    assert w.grad is not None and torch.count_nonzero(w.grad) > 0
    torch.testing.assert_close(y, reference(x, w, bs, a, b))


def test_op_registration_passes_opcheck() -> None:
    x, w, bs, a, b = tensors(4, True)
    torch.library.opcheck(torch.ops.tunegate.lora_linear.default, (x, w, bs, a, b))
    dy, xa = torch.randn(40, 36), torch.randn(40, 4)
    torch.library.opcheck(
        torch.ops.tunegate.lora_linear_backward.default, (dy, None, x.detach(), w, a.detach(), b.detach(), xa)
    )


def test_compiled_layer_with_the_op_equals_eager() -> None:
    # AOTAutograd traces the op through its fake and autograd registrations, as on the GPU path
    # (aot_eager: the same tracing as Inductor without generating kernels, so it is quick on CPU).
    spec = LayerSpec(
        hidden=32,
        n_heads=4,
        n_kv_heads=2,
        head_dim=8,
        intermediate=48,
        rms_eps=1e-6,
        qkv_bias=False,
        lora_qkv=(True, True, True),
        lora_o=(True,),
        lora_gate_up=(True, True),
        lora_down=(True,),
        attention="sdpa",
    )
    g = torch.Generator().manual_seed(5)

    def r(*shape, scale=0.1):
        return (scale * torch.randn(*shape, generator=g)).requires_grad_(False)

    weights = [torch.ones(32), r(64, 32), None, r(32, 32), torch.ones(32), r(96, 32), r(32, 48)]
    ins = (32, 32, 32, 32, 32, 32, 48)
    outs = (32, 16, 16, 32, 48, 48, 32)
    lora_a = [r(2, i).requires_grad_() for i in ins]
    lora_b = [r(o, 2).requires_grad_() for o in outs]
    x = r(2, 6, 32, scale=1.0).requires_grad_()
    cos, sin = torch.ones(2, 6, 8), torch.zeros(2, 6, 8)
    mask = torch.ones(6, 6, dtype=torch.bool).tril()[None, None].expand(2, 1, 6, 6)
    scales = [2.0] * 7

    def run(fn):
        leaves = [t.detach().clone().requires_grad_() for t in (x, *lora_a, *lora_b)]
        out = fn(leaves[0], cos, sin, mask, weights, leaves[1:8], leaves[8:], scales)
        (out**2).sum().backward()
        return [out.detach()] + [t.grad for t in leaves]

    eager = run(make_layer_fn(spec))
    compiled = run(make_layer_fn(spec, lambda f: torch.compile(f, backend="aot_eager", fullgraph=True)))
    assert any(
        "tunegate.lora_linear" in str(n) for n in _graph_ops(spec, x, cos, sin, mask, weights, lora_a, lora_b)
    )
    for got, want in zip(compiled, eager, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def _graph_ops(spec, x, cos, sin, mask, weights, lora_a, lora_b) -> list[object]:
    """The ops of the layer's forward graph as Dynamo captures it."""
    seen: list[object] = []

    def backend(gm, _inputs):
        seen.extend(node.target for node in gm.graph.nodes if node.op == "call_function")
        return gm.forward

    torch._dynamo.reset()
    fn = make_layer_fn(spec, lambda f: torch.compile(f, backend=backend, fullgraph=True))
    fn(x, cos, sin, mask, weights, lora_a, lora_b, [2.0] * 7)
    return seen
