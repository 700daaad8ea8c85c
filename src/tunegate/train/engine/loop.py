"""`train_sft`: the engine's training flow, top to bottom.

tokenize -> attach LoRA (PEFT) -> build the packed model around the same weights -> shard over
GPUs (FSDP2) -> plan memory -> pack the examples into steps -> AdamW steps over micro-batches ->
result. On CPU the same flow runs eagerly with plain PyTorch ops; the GPU-only pieces (Liger,
flash attention for variable lengths, compiled FlexAttention) are imported only when CUDA is in use.

Loss: every optimizer step minimises (sum of token losses over the step's labelled tokens) /
(number of labelled tokens in the step), whatever the micro-batch split and the number of GPUs,
so the step's gradient is the one a single large padded batch would give.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.profiler import record_function

from tunegate.errors import TrainError
from tunegate.train.engine import distributed as dist
from tunegate.train.engine.config import EngineConfig, EngineResult
from tunegate.train.engine.flops import ModelShape, step_flops
from tunegate.train.engine.layer import doc_block_mask, doc_mask_dense, doc_spans, varlen_available
from tunegate.train.engine.model import PackedCausalLM, check_supported
from tunegate.train.engine.packing import (
    IGNORE_INDEX,
    PackedBatch,
    TokenExample,
    build_batch,
    micro_batches,
    pack_rows,
    plan_steps,
    to_token_example,
)
from tunegate.train.engine.planner import MemoryPlan, plan_memory, replan_from_probe


def train_sft(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Any],
    config: EngineConfig | None = None,
    log: Callable[[str], None] | None = None,
    engine_model: PackedCausalLM | None = None,
    validation: Sequence[Any] = (),
    on_step_end: Callable[[int], None] | None = None,
) -> EngineResult:
    """Trains `model` (an HF Llama/Mistral/Qwen2 causal LM, or a PeftModel around one) in place.

    LoRA mode attaches a PEFT adapter when the model has none; read the trained adapter from the
    PeftModel this returns in `result.settings["peft_model"]` (single process) or
    `result.adapter_state` (several GPUs). `engine_model` lets a caller pass a pre-built (for
    example meta-initialised and sharded) PackedCausalLM instead. `validation` examples (same
    forms as `examples`) get a loss every `config.eval_every` steps and after the last one.
    `on_step_end(step)` (1-based) is called after each optimizer step without waiting for the GPU,
    for a progress bar or a profiler's schedule."""
    cfg = config or EngineConfig()
    info = dist.dist_info()
    say = log if log is not None else (print if info.is_main else (lambda _m: None))
    cuda = info.device.type == "cuda"

    token_examples = [to_token_example(e, tokenizer, max_len=cfg.seq_len) for e in examples]
    if not token_examples:
        raise TrainError("engine: no examples to train on")
    validation_examples = [to_token_example(e, tokenizer, max_len=cfg.seq_len) for e in validation]
    pad_id = _pad_id(tokenizer)

    if engine_model is None:
        check_supported(getattr(model, "config", None) or model.get_base_model().config, cfg.seq_len)
        if cfg.mode == "lora" and not hasattr(model, "peft_config"):
            model = _attach_lora(model, cfg)
        if cfg.mode == "full":
            for p in model.parameters():
                p.requires_grad_(True)
        attention = _attention_choice(cfg, cuda, _compute_dtype(model), varlen_available())
        if cuda and info.world_size == 1:
            model.to(info.device)  # before wrapping: the HF weights become views of the engine's
        engine_model = PackedCausalLM.from_hf(model, attention=attention, keep_hf_views=info.world_size == 1)
    engine = engine_model
    lora_rank = cfg.lora_rank if cfg.mode == "lora" else None
    shape = ModelShape.from_config(engine.config)
    sharded = any(hasattr(m, "reshard") for m in engine.modules())
    if info.world_size > 1 and not sharded:
        dist.shard(
            engine,
            lora=cfg.mode == "lora",
            compute_dtype=engine.embed_w.dtype,
            replicate_base=cfg.fsdp_lora_replicate_base,
        )
        sharded = True
    if cuda and not sharded:
        engine.to(info.device)

    labelled_fraction = sum(sum(e.labelled[1:]) for e in token_examples) / sum(len(e) for e in token_examples)
    plan = _plan(cfg, shape, lora_rank, info, cuda, labelled_fraction)
    if plan is not None:
        say(plan.explain())
    micro_rows = cfg.micro_batch_rows or (
        plan.micro_batch_rows if plan else max(1, (cfg.rows_per_step or 1) // info.world_size)
    )
    engine.checkpoint_layers = (
        cfg.checkpoint_layers
        if cfg.checkpoint_layers is not None
        else (plan.checkpoint_layers if plan else 0)
    )
    engine.fused_loss = cfg.fused_loss if cfg.fused_loss is not None else (plan.fused_loss if plan else False)
    use_compile = cfg.compile if cfg.compile is not None else cuda
    engine.set_layer_fn(compile_layers=use_compile)

    lengths = [len(e) for e in token_examples]
    rows_per_step = cfg.rows_per_step or micro_rows * info.world_size
    # A micro-batch larger than this rank's share of a step would be filled up with empty rows.
    rank_share = -(-rows_per_step // info.world_size)
    if cfg.micro_batch_rows is None:
        micro_rows = min(micro_rows, rank_share)
    steps = plan_steps(lengths, cfg.seq_len, rows_per_step, cfg.epochs, cfg.seed, cfg.shuffle)
    if cfg.max_steps is not None:
        steps = steps[: cfg.max_steps]
    params = engine.trainable_parameters()
    if not params:
        raise TrainError("engine: the model has no trainable parameters")
    optimizer = _optimizer(params, cfg, cuda, info.world_size)
    scheduler = _scheduler(optimizer, cfg, len(steps))
    say(
        f"engine: {len(token_examples)} examples -> {sum(len(s) for s in steps)} rows of {cfg.seq_len} in "
        f"{len(steps)} steps; micro-batch {micro_rows} rows x {info.world_size} GPU(s); "
        f"attention {engine.spec.attention}, compile {'on' if use_compile else 'off'}, "
        f"fused loss {'on' if engine.fused_loss else 'off'}, checkpointing {engine.checkpoint_layers} layers"
    )

    losses: list[torch.Tensor] = []
    validation_losses: list[tuple[int, float]] = []
    useful = labelled = row_tokens = timed_useful = 0
    timed_flops = 0.0
    timed_eval_s = 0.0  # validation inside the timed window, taken back out of the throughput
    t_start = time.perf_counter()
    t_timed = t_start
    if cuda:
        torch.cuda.reset_peak_memory_stats(info.device)
    s = 0
    while s < len(steps):
        step_rows = steps[s]
        try:
            with record_function("tunegate.step"):
                loss_sum, n_lab = _train_step(
                    engine, optimizer, token_examples, step_rows, micro_rows, cfg, pad_id, info, params
                )
        except torch.OutOfMemoryError:
            if s > 0 or plan is None:
                raise
            optimizer.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            plan, micro_rows = _fallback_after_oom(engine, plan, micro_rows)
            say(
                f"engine: first step ran out of memory; retrying with {micro_rows} rows, checkpointing {engine.checkpoint_layers} layers"
            )
            continue
        scheduler.step()
        step_useful = sum(lengths[i] for row in step_rows for i in row)
        # Kept on the GPU: reading it every step would stall the GPU while the CPU builds the next batch.
        losses.append(loss_sum / max(n_lab, 1))
        useful += step_useful
        labelled += n_lab
        row_tokens += len(step_rows) * cfg.seq_len
        if s == 0 and cuda and plan is not None and cfg.micro_batch_rows is None:
            new = replan_from_probe(
                plan,
                torch.cuda.max_memory_allocated(info.device),
                shape,
                lora_rank,
                cfg.seq_len,
                labelled_fraction,
                info.world_size,
            )
            if new is not plan:
                plan, micro_rows = new, min(new.micro_batch_rows, rank_share)
                engine.checkpoint_layers = new.checkpoint_layers
                say(new.explain())
        if s + 1 == cfg.timing_warmup_steps:
            _sync(cuda)
            t_timed = time.perf_counter()
        elif s + 1 > cfg.timing_warmup_steps:
            timed_useful += step_useful
            docs = [lengths[i] for row in step_rows for i in row]
            timed_flops += step_flops(shape, docs, n_lab, lora_rank)
        if (s + 1) % cfg.log_every == 0 or s + 1 == len(steps):
            say(f"step {s + 1}/{len(steps)} loss {float(losses[-1]):.4f} lr {scheduler.get_last_lr()[0]:.2e}")
        if validation_examples and (
            (cfg.eval_every and (s + 1) % cfg.eval_every == 0) or s + 1 == len(steps)
        ):
            t_eval = time.perf_counter()
            val = _validation_loss(engine, validation_examples, micro_rows, cfg, pad_id, info)
            validation_losses.append((s + 1, val))
            say(f"step {s + 1}/{len(steps)} validation loss {val:.4f}")
            if s + 1 >= cfg.timing_warmup_steps:
                timed_eval_s += time.perf_counter() - t_eval
        s += 1
        if on_step_end is not None:
            on_step_end(s)
    _sync(cuda)
    t_end = time.perf_counter()
    timed_seconds = t_end - t_timed - timed_eval_s if len(steps) > cfg.timing_warmup_steps else 0.0

    result = EngineResult(
        steps=len(steps),
        losses=[float(x) for x in torch.stack(losses).tolist()] if losses else [],
        useful_tokens=useful,
        labelled_tokens=labelled,
        row_tokens=row_tokens,
        train_seconds=t_end - t_start,
        timed_useful_tokens=timed_useful,
        timed_seconds=timed_seconds,
        model_flops=timed_flops,
        peak_memory_bytes=torch.cuda.max_memory_allocated(info.device) if cuda else 0,
        world_size=info.world_size,
        plan=plan,
        validation_losses=validation_losses,
        step_examples=[[i for row in step_rows for i in row] for step_rows in steps],
        settings={
            "micro_batch_rows": micro_rows,
            "checkpoint_layers": engine.checkpoint_layers,
            "fused_loss": engine.fused_loss,
            "compile": use_compile,
            "attention": engine.spec.attention,
            "peft_model": model if info.world_size == 1 else None,
        },
    )
    if info.world_size > 1:
        result.adapter_state = _gather_adapter(engine, info) if cfg.mode == "lora" else None
    return result


def _train_step(
    engine: PackedCausalLM,
    optimizer: torch.optim.Optimizer,
    examples: list[TokenExample],
    step_rows: list[list[int]],
    micro_rows: int,
    cfg: EngineConfig,
    pad_id: int,
    info: dist.DistInfo,
    params: list[torch.nn.Parameter],
) -> tuple[torch.Tensor, int]:
    """One optimizer step; returns (summed loss over all ranks, labelled tokens of the step)."""
    n_lab = sum(sum(examples[i].labelled[1:]) for row in step_rows for i in row)
    denom = max(n_lab, 1) / info.world_size  # FSDP2 averages gradients over ranks
    mbs = micro_batches(step_rows, micro_rows, info.rank, info.world_size)
    total = torch.zeros((), dtype=torch.float32, device=info.device)
    # The record_function labels name the phases in a profiler trace (benchmarks/profile_engine.py).
    for m, rows in enumerate(mbs):
        dist.set_gradient_sync(engine, m == len(mbs) - 1)
        with record_function("tunegate.batch"):
            batch = build_batch(examples, rows, cfg.seq_len, pad_id)
        with record_function("tunegate.forward"):
            loss_sum = _forward(engine, batch, info.device)
        with record_function("tunegate.backward"):
            (loss_sum / denom).backward()
        total += loss_sum.detach()
    with record_function("tunegate.optimizer"):
        if cfg.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return dist.all_reduce_sum(total, info.world_size), n_lab


@torch.no_grad()
def _validation_loss(
    engine: PackedCausalLM,
    examples: list[TokenExample],
    micro_rows: int,
    cfg: EngineConfig,
    pad_id: int,
    info: dist.DistInfo,
) -> float:
    """Mean loss per labelled token over all validation examples (packed like training, no
    shuffle); every rank runs the same number of forward passes, as FSDP2's collectives need."""
    rows = pack_rows([len(e) for e in examples], cfg.seq_len)
    n_lab = sum(sum(examples[i].labelled[1:]) for row in rows for i in row)
    total = torch.zeros((), dtype=torch.float32, device=info.device)
    for batch_rows in micro_batches(rows, micro_rows, info.rank, info.world_size):
        total += _forward(engine, build_batch(examples, batch_rows, cfg.seq_len, pad_id), info.device).float()
    return float(dist.all_reduce_sum(total, info.world_size)) / max(n_lab, 1)


def _forward(engine: PackedCausalLM, batch: PackedBatch, device: torch.device) -> torch.Tensor:
    flat_targets = batch.targets.view(-1)
    label_index = (flat_targets != IGNORE_INDEX).nonzero().squeeze(1)
    label_targets = flat_targets.index_select(0, label_index)
    cpu_doc_ids = batch.doc_ids
    if device.type == "cuda":
        batch = _pinned(batch).to(device)
        label_index = label_index.pin_memory().to(device, non_blocking=True)
        label_targets = label_targets.pin_memory().to(device, non_blocking=True)
    if engine.spec.attention == "varlen":
        # Document starts come from the CPU copy of doc_ids: no wait for the GPU.
        spans = doc_spans(cpu_doc_ids)
        mask: object = spans.to(device) if device.type == "cuda" else spans
    elif engine.spec.attention == "flex":
        mask = doc_block_mask(batch.doc_ids, compile_mask=device.type == "cuda")
    else:
        mask = doc_mask_dense(batch.doc_ids)
    return engine(batch.input_ids, batch.position_ids, mask, label_index, label_targets)


def _sync(cuda: bool) -> None:
    if cuda:
        torch.cuda.synchronize()


def _pinned(batch: PackedBatch) -> PackedBatch:
    return PackedBatch(
        batch.input_ids.pin_memory(),
        batch.targets.pin_memory(),
        batch.position_ids.pin_memory(),
        batch.doc_ids.pin_memory(),
        batch.example_indices,
        batch.useful_tokens,
        batch.labelled_tokens,
    )


def _attach_lora(model: Any, cfg: EngineConfig) -> Any:
    from peft import LoraConfig, get_peft_model

    targets = cfg.lora_targets if isinstance(cfg.lora_targets, str) else list(cfg.lora_targets)
    lora = LoraConfig(
        r=cfg.lora_rank,
        lora_alpha=cfg.lora_alpha,
        target_modules=targets,
        lora_dropout=0.0,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def _attention_choice(cfg: EngineConfig, cuda: bool, dtype: torch.dtype, has_varlen: bool) -> str:
    if cfg.attention == "varlen" and cuda:
        if not has_varlen:
            raise TrainError(
                "engine config: attention='varlen' needs torch.nn.attention.varlen (PyTorch 2.10 "
                f"or later); this is PyTorch {torch.__version__}"
            )
        if dtype not in (torch.bfloat16, torch.float16):
            raise TrainError(f"engine config: attention='varlen' needs a bf16 or fp16 model, not {dtype}")
    if cfg.attention != "auto":
        return cfg.attention
    # FlexAttention skips the blocks between documents, but is only fast compiled, on a GPU. It
    # measured faster than "varlen" on an H200 (docs/gpu-training.md), so auto keeps it.
    return "flex" if cuda else "sdpa"


def _compute_dtype(model: Any) -> torch.dtype:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_input_embeddings().weight.dtype


def _available_bytes(cfg: EngineConfig, info: dist.DistInfo) -> int:
    if cfg.memory_budget_gib is not None:
        return int(cfg.memory_budget_gib * 1024**3) - torch.cuda.memory_allocated(info.device)
    free, _total = torch.cuda.mem_get_info(info.device)
    return free + torch.cuda.memory_reserved(info.device) - torch.cuda.memory_allocated(info.device)


def _plan(
    cfg: EngineConfig,
    shape: ModelShape,
    lora_rank: int | None,
    info: dist.DistInfo,
    cuda: bool,
    labelled_fraction: float,
) -> MemoryPlan | None:
    if not cuda:
        return None
    return plan_memory(
        shape,
        lora_rank,
        cfg.seq_len,
        _available_bytes(cfg, info),
        target_tokens=cfg.micro_batch_tokens,
        labelled_fraction=labelled_fraction,
        world_size=info.world_size,
        weights_resident=True,
        fused_loss_available=True,
        resident_bytes=torch.cuda.memory_allocated(info.device),
    )


def _fallback_after_oom(engine: PackedCausalLM, plan: MemoryPlan, micro_rows: int) -> tuple[MemoryPlan, int]:
    if micro_rows > 1:
        micro_rows //= 2
    else:
        engine.checkpoint_layers = min(len(engine.layers), max(1, 2 * engine.checkpoint_layers))
    return plan, micro_rows


def _optimizer(
    params: list[torch.nn.Parameter], cfg: EngineConfig, cuda: bool, world_size: int
) -> torch.optim.Optimizer:
    # Fused AdamW is one kernel for all parameters on a single GPU; with FSDP2's DTensors the
    # foreach implementation is the well-trodden one.
    kwargs: dict[str, Any] = {"lr": cfg.learning_rate, "betas": cfg.betas, "weight_decay": cfg.weight_decay}
    if cuda and world_size == 1:
        kwargs["fused"] = True
    return torch.optim.AdamW(params, **kwargs)


def _scheduler(
    optimizer: torch.optim.Optimizer, cfg: EngineConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    warm = cfg.warmup_steps
    decay_steps = max(1, total_steps - warm)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        progress = min(1.0, (step - warm) / decay_steps)
        if cfg.lr_schedule == "linear":
            return 1.0 - progress
        if cfg.lr_schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _pad_id(tokenizer: Any) -> int:
    for attr in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, attr, None)
        if value is not None:
            return int(value)
    return 0


def _gather_adapter(engine: PackedCausalLM, info: dist.DistInfo) -> dict[str, object] | None:
    state = {}
    for name, p in engine.named_parameters():
        key = engine.peft_names.get(name)
        if key is not None or "lora_" in name:
            full = dist.full_tensor(p.detach())  # a collective: every rank takes part
            state[key or name] = full.cpu() if info.is_main else None
    return state if info.is_main else None
