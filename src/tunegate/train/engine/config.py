"""What `train_sft` takes and returns. Internal config: frozen dataclasses, validated on creation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tunegate.errors import TrainError
from tunegate.train.engine.planner import MemoryPlan


@dataclass(frozen=True)
class EngineConfig:
    """How to train. Leave the None fields alone to let the engine decide (GPU: planner, compile,
    FlexAttention, fused loss; CPU: eager PyTorch, SDPA with a dense document mask, plain loss)."""

    seq_len: int = 2048
    """Tokens per packed row; longer examples are truncated."""
    mode: Literal["lora", "full"] = "lora"
    lora_rank: int = 16
    lora_alpha: float = 32.0
    lora_targets: str | tuple[str, ...] = "all-linear"
    """Used only when the model has no LoRA adapter yet (a PeftModel passed in keeps its own)."""
    learning_rate: float = 2e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    lr_schedule: Literal["constant", "linear", "cosine"] = "constant"
    warmup_steps: int = 0
    max_grad_norm: float | None = 1.0
    tokens_per_step: int | None = 65536
    """Row tokens per optimizer step over all GPUs (rows_per_step = tokens_per_step // seq_len);
    None: one micro-batch per GPU per step, whatever size the planner picks."""
    epochs: int = 1
    max_steps: int | None = None
    seed: int = 0
    shuffle: bool = True
    fsdp_lora_replicate_base: bool = False
    """Several GPUs, LoRA: keep the frozen base whole on each GPU (FSDP2 hybrid mesh) instead of
    sharding it; only adapter gradients then cross GPUs. Needs the base to fit on one GPU."""
    micro_batch_rows: int | None = None
    checkpoint_layers: int | None = None
    compile: bool | None = None
    attention: Literal["auto", "varlen", "flex", "sdpa"] = "auto"
    """auto: "flex" on CUDA, "sdpa" on CPU. "varlen" (PyTorch's flash attention for variable
    lengths) needs a bf16/fp16 model on CUDA; on a CPU it runs a slow per-document loop (tests)."""
    fused_loss: bool | None = None
    memory_budget_gib: float | None = None
    micro_batch_tokens: int | None = None
    """Planner's target tokens per micro-batch (default: 8192 for hidden >= 4096, else 32768)."""
    timing_warmup_steps: int = 1
    """Steps excluded from the throughput numbers (compilation happens in the first)."""
    log_every: int = 10
    eval_every: int | None = None
    """Validation loss every this many steps (and always after the last), when `train_sft` is
    given validation examples."""

    def __post_init__(self) -> None:
        if self.seq_len < 8:
            raise TrainError(f"engine config: seq_len={self.seq_len} must be at least 8")
        if self.tokens_per_step is not None and self.tokens_per_step < self.seq_len:
            raise TrainError(
                f"engine config: tokens_per_step={self.tokens_per_step} is below seq_len={self.seq_len}"
            )
        if self.mode not in ("lora", "full"):
            raise TrainError(f"engine config: mode={self.mode!r} must be 'lora' or 'full'")
        if self.attention not in ("auto", "varlen", "flex", "sdpa"):
            raise TrainError(
                f"engine config: attention={self.attention!r} must be auto, varlen, flex or sdpa"
            )
        if self.lr_schedule not in ("constant", "linear", "cosine"):
            raise TrainError(
                f"engine config: lr_schedule={self.lr_schedule!r} must be constant, linear or cosine"
            )

    @property
    def rows_per_step(self) -> int | None:
        return None if self.tokens_per_step is None else self.tokens_per_step // self.seq_len


@dataclass
class EngineResult:
    steps: int
    losses: list[float]
    """Mean loss per labelled token, per optimizer step."""
    useful_tokens: int
    """Non-padding tokens trained on."""
    labelled_tokens: int
    row_tokens: int
    """All row positions processed, padding included."""
    train_seconds: float
    timed_useful_tokens: int
    timed_seconds: float
    """Wall time and useful tokens of the steps after `timing_warmup_steps`."""
    model_flops: float
    """Useful model FLOPs of the timed steps (see flops.py)."""
    peak_memory_bytes: int
    world_size: int
    plan: MemoryPlan | None
    settings: dict[str, object] = field(default_factory=dict)
    adapter_state: dict[str, object] | None = None
    """Distributed runs only: the trained LoRA tensors under PEFT's names, gathered on rank 0."""
    validation_losses: list[tuple[int, float]] = field(default_factory=list)
    """(step, mean loss per labelled validation token), when validation examples were given."""
    step_examples: list[list[int]] = field(default_factory=list)
    """Indices of the examples each optimizer step trained on, in order."""

    @property
    def useful_tokens_per_s(self) -> float:
        return self.timed_useful_tokens / self.timed_seconds if self.timed_seconds > 0 else 0.0

    @property
    def padding_fraction(self) -> float:
        return 1.0 - self.useful_tokens / self.row_tokens if self.row_tokens else 0.0
