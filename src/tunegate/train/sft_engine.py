"""SFT through tunegate's own engine (`train.engine`): which path trains a spec, and the engine run.

`choose_engine` decides between TRL's SFTTrainer (`sft.py`) and the engine from `sft.engine`, the
hardware and what the engine accepts; a refusal names the spec key (or flag) it cannot honour, so
`auto` can fall back to TRL and `tunegate` can fail with a message a person can act on.
`train_sft_engine` is the engine's counterpart of `sft.train_sft`: same rows in, same `SftResult`
out, so saving and registering (`sft_register.py`) do not care which path trained.

How the spec maps onto the engine: rows are the spec's conversations packed whole into rows of
`sft.max_length` tokens (tokenization already truncated every conversation to that); a step takes
as many packed rows as the TRL path's `batch_size x gradient_accumulation_steps` conversations
fill, so both paths take about the same number of steps; linear decay after `warmup_ratio`,
AdamW, gradient clipping at 1.0, the validation loss every `eval_steps`. Each step minimises the
mean loss per assistant token of the step, as TRL's token-weighted loss does.

Deliberately not here: checkpoints and `--resume` (the engine writes none: a run that needs them
uses TRL's path), LoRA dropout and `top_layers` (the engine refuses them), full fine-tuning over
several processes (the engine gathers only LoRA adapters on rank 0).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tunegate.errors import TrainError
from tunegate.models.causal_lm import load_causal_lm
from tunegate.spec.sft import SftSpec
from tunegate.train.sft import SftResult, lora_config, steps_per_epoch
from tunegate.train.sft_data import TrainingRow


@dataclass(frozen=True)
class EngineChoice:
    name: Literal["trl", "tunegate"]
    reason: str


def engine_refusal(config: SftSpec, base_config: Any, *, resume: bool = False) -> str | None:
    """Why the engine cannot train this spec, naming the key; None when it can."""
    from tunegate.train.engine import check_supported
    from tunegate.train.engine.model import LORA_NAMES

    if resume:
        return "--resume: the tunegate engine writes no checkpoints to continue from"
    if config.method == "lora":
        if config.lora.dropout > 0:
            return (
                f"sft.lora.dropout is {config.lora.dropout}; the engine trains LoRA without dropout (set 0)"
            )
        if config.lora.top_layers is not None:
            return f"sft.lora.top_layers is {config.lora.top_layers}; the engine adapts every layer"
        other = [t for t in config.lora.targets if t not in LORA_NAMES]
        if other:
            return f"sft.lora.targets has {other}; the engine adapts only {', '.join(LORA_NAMES)}"
    try:
        check_supported(base_config, config.max_length)
    except TrainError as exc:
        return f"base_model: {exc}"
    return None


def choose_engine(
    config: SftSpec, base_config: Any, *, resume: bool, cuda: bool, processes: int = 1
) -> EngineChoice:
    """TRL or the engine for this run; raises TrainError when the spec asks for what cannot be."""
    refusal = engine_refusal(config, base_config, resume=resume)
    if processes > 1:
        if config.engine == "trl":
            raise TrainError(
                f"--gpus {processes} trains with the tunegate engine, but sft.engine is 'trl'; "
                "set sft.engine to auto or tunegate"
            )
        if refusal:
            raise TrainError(
                f"--gpus {processes} needs the tunegate engine, which refuses this spec: {refusal}"
            )
        if config.method == "full":
            raise TrainError(
                f"--gpus {processes} with sft.method full is not supported yet (the engine gathers only "
                "LoRA adapters onto rank 0); use one GPU or sft.method lora"
            )
        return EngineChoice("tunegate", f"--gpus {processes}")
    if config.engine == "trl":
        return EngineChoice("trl", "sft.engine is trl")
    if config.engine == "tunegate":
        if refusal:
            raise TrainError(f"sft.engine is 'tunegate', but the engine refuses this spec: {refusal}")
        return EngineChoice("tunegate", "sft.engine is tunegate")
    if not cuda:
        return EngineChoice("trl", "sft.engine auto: no CUDA device")
    if refusal:
        return EngineChoice("trl", f"sft.engine auto: the tunegate engine refuses this spec ({refusal})")
    return EngineChoice("tunegate", "sft.engine auto: CUDA present")


def read_base_config(base_path: Path) -> Any:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(base_path), local_files_only=True)


def engine_config(config: SftSpec, rows: Sequence[TrainingRow]) -> Any:
    """The spec's training settings as an EngineConfig (see the module docstring for the mapping)."""
    from tunegate.train.engine import EngineConfig, pack_rows

    seq_len = config.max_length
    per_epoch_trl = steps_per_epoch(len(rows), config)
    packed = len(pack_rows([len(r.input_ids) for r in rows], seq_len))
    rows_per_step = max(1, math.ceil(packed / per_epoch_trl))
    per_epoch = math.ceil(packed / rows_per_step)
    epochs = math.ceil(config.epochs)
    total = max(1, round(config.epochs * per_epoch))
    return EngineConfig(
        seq_len=seq_len,
        mode=config.method,
        lora_rank=config.lora.r,
        lora_alpha=float(config.lora.alpha),
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        lr_schedule="linear",
        warmup_steps=math.ceil(config.warmup_ratio * total),
        tokens_per_step=rows_per_step * seq_len,
        epochs=epochs,
        max_steps=total if total < epochs * per_epoch else None,
        seed=config.seed,
        log_every=max(1, total // 10),
        eval_every=config.eval_steps,
    )


def train_sft_engine(
    train_rows: Sequence[TrainingRow],
    validation_rows: Sequence[TrainingRow],
    base_path: Path,
    tokenizer: Any,
    config: SftSpec,
    *,
    log: Callable[[str], None] | None = None,
) -> SftResult:
    """Train with the engine. Under `accelerate launch` every rank calls this alike; rank 0's result
    holds the trained model, the other ranks' hold None."""
    from transformers import set_seed

    from tunegate.train.engine import train_sft
    from tunegate.train.engine.distributed import dist_info

    if not train_rows:
        raise TrainError("no training rows")
    info = dist_info()  # joins the process group when launched with several processes
    # bf16 on GPUs (the engine's design: its planner counts bf16 weights); float32 on CPU, as TRL's path.
    dtype = "bfloat16" if info.device.type == "cuda" else "float32"
    set_seed(config.seed)  # adapter initialisation draws from the global generator: alike on every rank
    model = load_causal_lm(base_path, dtype=dtype)
    model.config.use_cache = False
    if config.method == "lora":
        model = _with_lora(model, config)
    model.train()
    cfg = engine_config(config, train_rows)
    started = time.perf_counter()
    result = train_sft(model, tokenizer, list(train_rows), cfg, log=log, validation=list(validation_rows))
    wall_s = time.perf_counter() - started

    trained: Any = model
    if result.world_size > 1:
        # Sharding emptied the HF copy of the fused weights, so rank 0 puts the gathered adapter
        # into a freshly loaded model; the other ranks are done.
        del model, trained
        trained = (
            _model_with_adapter(base_path, dtype, config, result.adapter_state) if info.is_main else None
        )
    ids = [r.example_id for r in train_rows]
    plan = result.plan
    return SftResult(
        model=trained,
        wall_s=wall_s,
        steps=result.steps,
        epochs=float(config.epochs),
        train_tokens=result.useful_tokens,
        trained_tokens=sum(r.trained_tokens for r in train_rows),
        resumed_from_step=None,
        log_history=_log_history(result.losses, result.validation_losses),
        consumed={s + 1: [ids[i] for i in step] for s, step in enumerate(result.step_examples)},
        engine={
            "name": "tunegate",
            "processes": result.world_size,
            "device": info.device.type,
            "dtype": dtype,
            "memory_plan": None if plan is None else plan.explain(),
            "rows_per_step": cfg.rows_per_step,
            "row_tokens": cfg.seq_len,
            "padding_fraction": round(result.padding_fraction, 4),
            "useful_tokens_per_s": round(result.useful_tokens_per_s, 1),
            "peak_memory_bytes": result.peak_memory_bytes,
            "settings": {k: v for k, v in result.settings.items() if k != "peft_model"},
        },
    )


def _model_with_adapter(base_path: Path, dtype: str, config: SftSpec, state: Any) -> Any:
    from peft import set_peft_model_state_dict

    if state is None:
        raise TrainError("engine: rank 0 received no adapter tensors from the distributed run")
    model = _with_lora(load_causal_lm(base_path, dtype=dtype), config)
    set_peft_model_state_dict(model, state)
    return model


def _with_lora(model: Any, config: SftSpec) -> Any:
    from peft import get_peft_model

    with warnings.catch_warnings():  # PEFT asks a renamed transformers property; noise, not news
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*gradient_checkpointing.*")
        return get_peft_model(model, lora_config(config, model))


def _log_history(losses: list[float], validation: list[tuple[int, float]]) -> list[dict[str, float]]:
    """The Trainer's log_history shape: {"step", "loss"} per step, {"step", "eval_loss"} after it."""
    evals = dict(validation)
    history: list[dict[str, float]] = []
    for step, loss in enumerate(losses, start=1):
        history.append({"step": step, "loss": loss})
        if step in evals:
            history.append({"step": step, "eval_loss": evals[step]})
    return history
