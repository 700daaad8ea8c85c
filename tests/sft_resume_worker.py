"""Subprocess for tests/test_sft_resume.py: train the tiny model, optionally resuming; write the result.

    python tests/sft_resume_worker.py WORKDIR [--resume] [--step-delay-s 0.2]

Reads WORKDIR/base (a tiny base model) and WORKDIR/train.jsonl, trains into WORKDIR/run, appends
each finished step number to WORKDIR/progress (so the parent knows when to kill it), and on success
writes WORKDIR/out/adapter.safetensors and WORKDIR/out/consumed.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from safetensors.torch import save_file

from tunegate.data.chat import read_chat_file
from tunegate.models.causal_lm import load_tokenizer
from tunegate.models.chat_template import template_of
from tunegate.spec.sft import LoraSpec, SftSpec
from tunegate.train.sft import train_sft
from tunegate.train.sft_data import split_validation, tokenize_for_training

CONFIG = SftSpec(
    batch_size=4,
    epochs=2,
    save_steps=4,
    eval_steps=6,
    learning_rate=2e-3,
    warmup_ratio=0.1,
    lora=LoraSpec(r=4, alpha=8, dropout=0.1),
    validation_fraction=0.15,
    keep_checkpoints=2,
    seed=7,
)


def main(workdir: Path, resume: bool, step_delay_s: float) -> None:
    tokenizer = load_tokenizer(workdir / "base")
    template = template_of(tokenizer)
    examples, errors = read_chat_file(workdir / "train.jsonl")
    assert not errors, errors
    train, validation = split_validation(examples, CONFIG.validation_fraction, CONFIG.seed)
    rows, _ = tokenize_for_training(train, template, tokenizer, 256)
    val_rows, _ = tokenize_for_training(validation, template, tokenizer, 256)
    progress = (workdir / "progress").open("a")

    def on_step(step: int, total: int, logs: dict) -> None:
        progress.write(f"{step}\n")
        progress.flush()
        time.sleep(step_delay_s)  # gives the parent time to kill us mid-run

    result = train_sft(
        rows,
        val_rows,
        workdir / "base",
        tokenizer,
        CONFIG,
        workdir / "run",
        resume=resume,
        run_info={"test": "resume"},
        on_step=on_step,
    )
    out = workdir / "out"
    out.mkdir(exist_ok=True)
    tensors = {k: v.detach().contiguous() for k, v in result.model.state_dict().items() if "lora_" in k}
    save_file(tensors, str(out / "adapter.safetensors"))
    (out / "consumed.json").write_text(json.dumps({str(k): v for k, v in result.consumed.items()}))
    (out / "result.json").write_text(
        json.dumps({"steps": result.steps, "resumed_from": result.resumed_from_step})
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--step-delay-s", type=float, default=0.0)
    ns = parser.parse_args()
    main(ns.workdir, ns.resume, ns.step_delay_s)
