"""Memory planner: micro-batch size, activation checkpointing and fused loss for the GPU at hand.

A pure function of the model's shape, the training mode, the row length and the free memory. It
estimates what one micro-batch keeps alive (weights, optimizer state, activations saved for the
backward pass, the loss's working set) and picks, in this order of preference:

1. no checkpointing (recomputing a layer costs a third more of its work) with a micro-batch of
   `target_tokens` (enough tokens that the matmuls run at full speed; more only costs memory);
2. fewer rows, down to one, still without checkpointing;
3. checkpointing on the fewest layers that makes `target_tokens` fit, then on all layers with
   fewer rows.

The fused loss (Liger's fused linear cross-entropy) is chosen whenever the vocabulary logits of the
labelled tokens would take more than a small share of memory, and on CUDA it is always available.
`explain()` prints what was chosen and why; the training loop then checks the estimate against the
first real step's peak and replans when the estimate was optimistic (`replan_from_probe`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from tunegate.train.engine.flops import ModelShape

GIB = 1024**3


@dataclass(frozen=True)
class MemoryPlan:
    micro_batch_rows: int
    checkpoint_layers: int
    fused_loss: bool
    estimated_peak_bytes: int
    budget_bytes: int
    reasons: tuple[str, ...] = field(default_factory=tuple)
    resident_bytes: int = 0
    """Already on the GPU when planning (the model's weights); not part of the budget."""

    def explain(self) -> str:
        head = (
            f"memory plan: micro-batch {self.micro_batch_rows} rows, checkpointing "
            f"{self.checkpoint_layers} layers, fused loss {'on' if self.fused_loss else 'off'}; "
            f"estimated peak {(self.estimated_peak_bytes + self.resident_bytes) / GIB:.1f} GiB "
            f"({self.resident_bytes / GIB:.1f} GiB of weights already resident, "
            f"{self.estimated_peak_bytes / GIB:.1f} GiB more within a {self.budget_bytes / GIB:.1f} GiB budget)"
        )
        return "\n".join([head, *(f"  - {r}" for r in self.reasons)])


def activation_bytes_per_token(shape: ModelShape, lora_rank: int | None) -> int:
    """bf16 bytes one layer keeps per token for its backward pass, without checkpointing.

    Layer input and its normed copy, q/k/v after RoPE, attention output and log-sum-exp, the
    mid-layer residual and its normed copy, gate, up and their product, LoRA intermediates."""
    d, dq, dkv, i = (
        shape.hidden,
        shape.n_heads * shape.head_dim,
        shape.n_kv_heads * shape.head_dim,
        shape.intermediate,
    )
    r = lora_rank or 0
    elements = 4 * d + 2 * dq + 2 * dkv + 3 * i + 7 * r + 2 * shape.n_heads
    return 2 * elements


def static_bytes(shape: ModelShape, lora_rank: int | None, world_size: int, weights_resident: bool) -> int:
    """Weights (unless already on the GPU) and the trainable state.

    LoRA: bf16 base weights (replicated), fp32 adapters with gradient and two Adam moments.
    Full fine-tuning on one GPU: bf16 weights, gradients and Adam moments (2 + 2 + 4 bytes);
    over several GPUs (FSDP2): fp32 master shards, fp32 gradients, fp32 moments (4 + 4 + 8)."""
    if lora_rank is not None:
        weights = 0 if weights_resident else 2 * shape.total_params
        return weights + 16 * shape.lora_params(lora_rank)
    weight_bytes, state_bytes = (4, 12) if world_size > 1 else (2, 6)
    weights = 0 if weights_resident else weight_bytes * shape.total_params // world_size
    return weights + state_bytes * shape.total_params // world_size


def loss_bytes(shape: ModelShape, labelled_tokens: int, fused: bool) -> int:
    if fused:
        # Hidden rows, their gradient, one chunk of ~2k rows of bf16 logits plus fp32 scratch.
        return 3 * 2 * labelled_tokens * shape.hidden + 2048 * shape.vocab * 6
    return labelled_tokens * shape.vocab * 10  # bf16 logits, fp32 copy, fp32 gradient


def estimate_peak(
    shape: ModelShape,
    lora_rank: int | None,
    tokens: int,
    checkpoint_layers: int,
    fused: bool,
    labelled_fraction: float,
    world_size: int = 1,
    weights_resident: bool = True,
) -> int:
    per_layer = activation_bytes_per_token(shape, lora_rank)
    kept_layers = shape.n_layers - checkpoint_layers
    acts = tokens * (kept_layers * per_layer + checkpoint_layers * 2 * shape.hidden)
    if checkpoint_layers:
        acts += tokens * per_layer  # the layer being recomputed
    # Backward transients: gradients of the widest activations of one layer.
    widest = max(2 * shape.intermediate, (shape.n_heads + 2 * shape.n_kv_heads) * shape.head_dim)
    transient = 3 * 2 * tokens * widest
    embed = tokens * 2 * (shape.hidden + 2 * shape.head_dim)
    loss = loss_bytes(shape, int(tokens * labelled_fraction), fused)
    return static_bytes(shape, lora_rank, world_size, weights_resident) + acts + transient + embed + loss


def plan_memory(
    shape: ModelShape,
    lora_rank: int | None,
    seq_len: int,
    available_bytes: int,
    target_tokens: int | None = None,
    labelled_fraction: float = 1.0,
    world_size: int = 1,
    weights_resident: bool = True,
    fused_loss_available: bool = True,
    safety_fraction: float = 0.9,
    resident_bytes: int = 0,
) -> MemoryPlan:
    """Chooses rows per micro-batch, checkpointed layers and the fused loss (see module docstring)."""
    budget = int(available_bytes * safety_fraction)
    if target_tokens is None:
        # Past ~8k tokens a large model's matmuls are saturated and one micro-batch runs for half a
        # second, so fixed costs per micro-batch vanish; a small model's micro-batch is short, and
        # more tokens spread its fixed costs (mask, loss chunks, optimizer step). Measured on an
        # H200 (benchmarks/profile_engine.py, 2026-12-02): the 1B shape at 16k / 32k / 64k tokens
        # 75.6k / 87.3k / 87.0k useful tok/s; the 8B shape saturates at 8k (benchmarks/RESULTS.md).
        target_tokens = 8192 if shape.hidden >= 4096 else 32768
    target_rows = max(1, target_tokens // seq_len)
    reasons = [
        f"target {target_rows} rows x {seq_len} tokens = {target_rows * seq_len} tokens per micro-batch"
    ]
    logits_bytes = loss_bytes(shape, int(target_rows * seq_len * labelled_fraction), fused=False)
    fused = fused_loss_available and logits_bytes > 0.02 * budget
    if fused:
        reasons.append(f"fused loss: unfused logits would take {logits_bytes / GIB:.1f} GiB")
    elif fused_loss_available:
        reasons.append("plain loss: its logits are small here")
    else:
        reasons.append("plain loss: the fused kernel needs CUDA")

    def peak(rows: int, ckpt: int) -> int:
        return estimate_peak(
            shape, lora_rank, rows * seq_len, ckpt, fused, labelled_fraction, world_size, weights_resident
        )

    for rows in range(target_rows, 0, -1):
        if peak(rows, 0) <= budget:
            if rows < target_rows:
                reasons.append(
                    f"{target_rows} rows without checkpointing need {peak(target_rows, 0) / GIB:.1f} GiB"
                )
            reasons.append(f"no checkpointing: {rows} rows fit ({peak(rows, 0) / GIB:.1f} GiB)")
            return MemoryPlan(rows, 0, fused, peak(rows, 0), budget, tuple(reasons), resident_bytes)
    reasons.append(f"even 1 row without checkpointing needs {peak(1, 0) / GIB:.1f} GiB")
    for rows in range(target_rows, 0, -1):
        for ckpt in range(1, shape.n_layers + 1):
            if peak(rows, ckpt) <= budget:
                reasons.append(f"checkpointing {ckpt} of {shape.n_layers} layers lets {rows} rows fit")
                return MemoryPlan(rows, ckpt, fused, peak(rows, ckpt), budget, tuple(reasons), resident_bytes)
    reasons.append("does not fit even with one row and every layer checkpointed; trying anyway")
    return MemoryPlan(
        1, shape.n_layers, fused, peak(1, shape.n_layers), budget, tuple(reasons), resident_bytes
    )


def replan_from_probe(
    plan: MemoryPlan,
    measured_peak_bytes: int,
    shape: ModelShape,
    lora_rank: int | None,
    seq_len: int,
    labelled_fraction: float,
    world_size: int = 1,
) -> MemoryPlan:
    """After the first real step: if it needed more than the budget, shrink the budget by the factor
    the estimate was off and plan again (with at most the tokens of the first plan); else keep it."""
    used = measured_peak_bytes - plan.resident_bytes
    if used <= plan.budget_bytes:
        return plan
    excess = used / max(plan.estimated_peak_bytes, 1)
    new = plan_memory(
        shape,
        lora_rank,
        seq_len,
        int(plan.budget_bytes / excess),
        target_tokens=plan.micro_batch_rows * seq_len,
        labelled_fraction=labelled_fraction,
        world_size=world_size,
        fused_loss_available=plan.fused_loss,
        safety_fraction=1.0,
        resident_bytes=plan.resident_bytes,
    )
    note = (
        f"first step used {used / GIB:.1f} GiB beyond the weights, over the {plan.budget_bytes / GIB:.1f} GiB "
        f"budget ({excess:.2f}x the estimate); replanned"
    )
    return replace(new, budget_bytes=plan.budget_bytes, reasons=(*new.reasons, note))
