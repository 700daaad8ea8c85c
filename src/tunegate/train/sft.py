"""Supervised fine-tuning of a causal LM on conversations: TRL's SFTTrainer with PEFT LoRA or full weights.

The flow, top to bottom in `train_sft`:
1. rows come tokenized from `sft_data` (assistant-only labels, end-of-turn token checked);
2. the base model loads in float32 from a local HF folder (the packaged GGUF was converted once);
3. SFTTrainer trains with our collator (packing without cross-example attention: each conversation's
   attention is computed alone, `sft_attention`) and reports the validation loss every `eval_steps`;
4. checkpoints every `save_steps` are committed atomically (`sft_checkpoints`), and `resume=True`
   continues from the newest complete one: model, optimizer, scheduler and RNG states come back
   through the Trainer's own resume, and the data order through its seeded sampler;
5. the adapters (or full weights) are written as safetensors with the tokenizer and the exact chat
   template, ready for `models.causal_lm.load_chat_model`.

TRL's dataset preparation is skipped (`skip_prepare_dataset`): tokenization is ours (see sft_data's
docstring for why). The one subclass, `_RecordingSFTTrainer`, only takes the example indices out of
each batch before TRL computes the loss, so the run can say which conversations each step consumed.
Registering the result as a version is `train/sft_register.py`.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import PrinterCallback, TrainerCallback
from trl import SFTTrainer

from tunegate.errors import TrainError
from tunegate.models.causal_lm import ARTIFACT_FORMAT, load_causal_lm
from tunegate.models.chat_template import ChatTemplate
from tunegate.spec.sft import SftSpec
from tunegate.train.sft_attention import packed_attention
from tunegate.train.sft_checkpoints import (
    CONSUMED,
    RUN_INFO,
    AtomicCheckpoints,
    ConsumedLog,
    clear_staging,
    latest_checkpoint,
)
from tunegate.train.sft_data import ChatCollator, TrainingRow, as_dataset

StepFn = Callable[[int, int, dict[str, float]], None]


@dataclass(frozen=True)
class SftResult:
    model: Any  # PeftModel (lora) or the full model, in memory
    wall_s: float  # this process's training time (a resumed run counts only its own part)
    steps: int
    epochs: float
    train_tokens: int  # tokens seen by the forward passes of this process, padding excluded
    trained_tokens: int  # assistant tokens that carried a loss, per epoch
    resumed_from_step: int | None
    log_history: list[dict[str, float]] = field(default_factory=list)
    consumed: dict[int, list[str]] = field(default_factory=dict)
    engine: dict[str, Any] = field(default_factory=lambda: {"name": "trl"})  # recorded in the lineage


class _RecordingSFTTrainer(SFTTrainer):
    """SFTTrainer that takes the example indices out of each batch (and logs them) before the loss."""

    consumed: ConsumedLog

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        index = inputs.pop("example_index")
        if model.training:
            self.consumed.record(index.tolist())
        return super().compute_loss(
            model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
        )


class _ProgressCallback(TrainerCallback):
    """Forwards (step, total steps, latest logged numbers) to the caller after every step."""

    def __init__(self, on_step: StepFn | None) -> None:
        self.on_step = on_step
        self.last: dict[str, float] = {}

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any
    ) -> None:
        self.last.update({k: v for k, v in (logs or {}).items() if isinstance(v, int | float)})

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.on_step:
            self.on_step(state.global_step, state.max_steps, dict(self.last))


def sft_training_args(config: SftSpec, output_dir: Path, has_validation: bool) -> Any:
    import torch
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(output_dir),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        num_train_epochs=config.epochs,
        learning_rate=config.learning_rate,
        lr_scheduler_type="linear",
        warmup_steps=config.warmup_ratio,  # a float below 1 is a share of the total steps
        weight_decay=config.weight_decay,
        seed=config.seed,
        data_seed=config.seed,
        logging_steps=1,
        eval_strategy="steps" if has_validation else "no",
        eval_steps=config.eval_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=None,  # pruning is AtomicCheckpoints' job, among committed checkpoints only
        report_to=[],
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        # float32 (the default) is reproducible to the last bit, which --resume's exactness relies on;
        # bfloat16 is the Trainer's own autocast (CPU or CUDA), adapters stay float32.
        bf16=config.precision == "bfloat16",
        fp16=False,
        gradient_checkpointing=False,  # a 135M model fits; recomputing activations costs a third more time
        max_length=None,  # rows are truncated by sft_data already
        packing=False,  # ours: see ChatCollator
        padding_free=False,
        dataset_kwargs={"skip_prepare_dataset": True},
        remove_unused_columns=False,  # keep example_index for the consumed-examples log
        dataloader_num_workers=0,
    )


def train_sft(
    train_rows: Sequence[TrainingRow],
    validation_rows: Sequence[TrainingRow],
    base_path: Path,
    tokenizer: Any,
    config: SftSpec,
    run_dir: Path,
    *,
    resume: bool = False,
    run_info: dict[str, Any] | None = None,
    on_step: StepFn | None = None,
) -> SftResult:
    """Train; with resume=True continue from the newest complete checkpoint under run_dir (if any)."""
    from transformers import set_seed

    if not train_rows:
        raise TrainError("no training rows")
    run_info = dict(run_info or {})
    staging, committed = run_dir / "staging", run_dir / "checkpoints"
    clear_staging(staging)
    checkpoint = latest_checkpoint(committed) if resume else None
    if checkpoint is not None:
        _check_same_run(checkpoint, run_info)

    set_seed(config.seed)  # adapter initialisation draws from the global generator
    model = load_causal_lm(base_path)
    model.config.use_cache = False  # a cache would turn off the packed-sequence mask (masking_utils)
    if config.packing:
        model.set_attn_implementation(packed_attention())  # each conversation's attention alone
    model.train()
    peft_config = lora_config(config, model) if config.method == "lora" else None
    log = ConsumedLog([r.example_id for r in train_rows])
    if checkpoint is not None:
        log.load(checkpoint / CONSUMED)
    with warnings.catch_warnings():
        # transformers 5 renamed gradient_checkpointing; TRL still sets the old name. Noise, not news.
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*gradient_checkpointing.*")
        args = sft_training_args(config, staging, has_validation=bool(validation_rows))
    trainer = _RecordingSFTTrainer(
        model=model,
        args=args,
        train_dataset=as_dataset(train_rows),
        eval_dataset=as_dataset(validation_rows) if validation_rows else None,
        processing_class=tokenizer,
        data_collator=ChatCollator(pad_token_id=_pad_id(tokenizer), packing=config.packing),
        peft_config=peft_config,
        callbacks=[
            AtomicCheckpoints(staging, committed, config.keep_checkpoints, log, run_info),
            _ProgressCallback(on_step),
        ],
    )
    trainer.consumed = log
    trainer.remove_callback(PrinterCallback)  # progress goes through on_step, not print()
    _check_targets_matched(trainer.model, config)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*gradient_checkpointing.*")
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    wall_s = time.perf_counter() - started
    if config.packing:
        trainer.model.set_attn_implementation("sdpa")  # generation and saving see the usual attention
    history = [dict(h) for h in trainer.state.log_history]
    return SftResult(
        model=trainer.model,
        wall_s=wall_s,
        steps=trainer.state.global_step,
        epochs=float(trainer.state.epoch or config.epochs),
        train_tokens=int(getattr(trainer, "_total_train_tokens", 0)),
        trained_tokens=sum(r.trained_tokens for r in train_rows),
        resumed_from_step=_step_of(checkpoint),
        log_history=history,
        consumed=log.up_to(trainer.state.global_step),
    )


def lora_config(config: SftSpec, model: Any) -> Any:
    """The spec's PEFT LoraConfig (both training paths attach adapters from this)."""
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=list(config.lora.targets),
        layers_to_transform=_top_layers(model, config.lora.top_layers),
        task_type="CAUSAL_LM",
        bias="none",
    )


def _top_layers(model: Any, top: int | None) -> list[int] | None:
    if top is None:
        return None
    total = int(model.config.get_text_config().num_hidden_layers)
    if top > total:
        raise TrainError(f"sft.lora.top_layers is {top}, but the base model has {total} layers")
    return list(range(total - top, total))


def _pad_id(tokenizer: Any) -> int:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise TrainError("the tokenizer has neither a pad nor an EOS token to pad with")
    return int(pad)


def _step_of(checkpoint: Path | None) -> int | None:
    return None if checkpoint is None else int(checkpoint.name.split("-")[1])


def _check_same_run(checkpoint: Path, run_info: dict[str, Any]) -> None:
    """A checkpoint of another spec or other data must not be resumed as if it were this run."""
    recorded = json.loads((checkpoint / RUN_INFO).read_text())
    for key, value in run_info.items():
        if recorded.get(key) != value:
            raise TrainError(
                f"cannot resume from {checkpoint}: it was written with {key}={recorded.get(key)!r}, "
                f"this run has {key}={value!r}; start without --resume"
            )


def _check_targets_matched(model: Any, config: SftSpec) -> None:
    if config.method != "lora":
        return
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if trainable == 0:
        raise TrainError(f"sft.lora.targets {config.lora.targets} match no module of the base model")


def save_sft_artifact(
    result_model: Any, tokenizer: Any, template: ChatTemplate, folder: Path, info: dict[str, Any]
) -> None:
    """Write the trained model as loadable artifact files (safetensors + JSON + the template's source)."""
    folder.mkdir(parents=True, exist_ok=True)
    method = info["method"]
    target = folder / ("adapter" if method == "lora" else "model")
    result_model.save_pretrained(str(target), safe_serialization=True)
    tokenizer.save_pretrained(str(folder / "tokenizer"))
    (folder / "chat_template.jinja").write_text(template.source, encoding="utf-8")
    meta = {
        "format": ARTIFACT_FORMAT,
        "end_of_turn": template.end_of_turn,
        "chat_template_sha256": template.sha256,
        **info,
    }
    (folder / "sft.json").write_text(json.dumps(meta, indent=2, sort_keys=True))


def steps_per_epoch(rows: int, config: SftSpec) -> int:
    return max(1, math.ceil(math.ceil(rows / config.batch_size) / config.gradient_accumulation_steps))
