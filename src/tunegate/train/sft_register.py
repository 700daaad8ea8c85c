"""Train a spec's chat model and register it as a candidate version: `train_sft_version`.

The recipe a user runs with `tunegate train` on a `task: sft` spec, top to bottom: refuse data with
blockers; resolve the base model (packaged GGUF converted once into the workspace cache, or a local
folder); take the chat template from the base tokenizer; hold out the validation conversations;
tokenize (assistant-only labels; the end-of-turn check); train with TRL (`sft.train_sft`) or tunegate's
engine (`sft_engine`, chosen by `sft.engine`; the lineage says which and its memory plan); write the artifact
(adapter or weights as safetensors, tokenizer, the exact template, the training log and the
consumed-examples log) into the content-addressed store; register a version with the same lineage
keys as the classifier plus what SFT adds.

The run folder is `<workspace>/runs/<name>-<spec sha>-<data fingerprint>/`, so `--resume` finds the
checkpoints of the same spec on the same data and nothing else.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

from tunegate.data.chat_check import ChatDataReport, check_chat_data
from tunegate.errors import DataError
from tunegate.models.causal_lm import BASE_INFO, PACKAGED_CAUSAL_LMS, load_tokenizer, resolve_causal_lm
from tunegate.models.chat_template import template_of
from tunegate.progress import StepProgress
from tunegate.spec import Spec
from tunegate.spec.load import LoadedSpec
from tunegate.store import Store, VersionRecord
from tunegate.train.lineage import base_lineage, register_trained
from tunegate.train.sft import SftResult, save_sft_artifact, train_sft
from tunegate.train.sft_data import TrainingRow, split_validation, tokenize_for_training
from tunegate.train.sft_engine import choose_engine, read_base_config, train_sft_engine


def run_dir_for(store: Store, loaded: LoadedSpec, data_fingerprint: str) -> Path:
    return store.workspace.runs_dir / f"{loaded.spec.name}-{loaded.sha256[:12]}-{data_fingerprint[:12]}"


def checked_report(loaded: LoadedSpec, store: Store, report: ChatDataReport | None = None) -> ChatDataReport:
    """The data check's report (run now unless given); raises DataError when it found blockers."""
    if report is None:
        report = check_chat_data(loaded, store.workspace.cache_dir)
    if report.blockers:
        raise DataError(
            "data check found blockers; fix them or run `tunegate data check` for details:\n  "
            + "\n  ".join(report.blockers)
        )
    return report


def train_sft_version(
    loaded: LoadedSpec,
    store: Store,
    console: Console,
    report: ChatDataReport | None = None,
    resume: bool = False,
    processes: int = 1,
) -> VersionRecord | None:
    """Train and register; `processes` > 1 only inside `accelerate launch` (see sft_launch), where
    every rank calls this and only rank 0 writes the artifact and returns the version."""
    spec = loaded.spec
    report = checked_report(loaded, store, report)
    base_path = resolve_causal_lm(spec.base_model, store.workspace.cache_dir, loaded.root)
    tokenizer = load_tokenizer(base_path)
    template = template_of(tokenizer, spec.sft.end_of_turn_token, name=f"chat template of {spec.base_model}")
    train, validation = split_validation(report.train, spec.sft.validation_fraction, spec.sft.seed)
    rows, notes = tokenize_for_training(train, template, tokenizer, spec.sft.max_length)
    val_rows, val_notes = (
        tokenize_for_training(validation, template, tokenizer, spec.sft.max_length)
        if validation
        else ([], [])
    )
    for note in notes + val_notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)

    choice = choose_engine(
        spec.sft, read_base_config(base_path), resume=resume, cuda=_cuda(), processes=processes
    )
    console.print(f"training path: {choice.name} ({choice.reason})", highlight=False)
    if choice.name == "tunegate":

        def say(line: str) -> None:
            console.print(line, highlight=False, markup=False)

        result = train_sft_engine(rows, val_rows, base_path, tokenizer, spec.sft, log=say)
        if result.model is None:  # a rank other than 0 of a distributed run: rank 0 registers
            return None
    else:
        run_info = {
            "spec_sha256": loaded.sha256,
            "data_fingerprint": report.fingerprint,
            "template": template.sha256,
        }
        run_dir = run_dir_for(store, loaded, report.fingerprint)
        result = _train_with_trl(
            spec, console, rows, val_rows, base_path, tokenizer, run_dir, run_info, resume
        )

    lineage = base_lineage(
        base_model=spec.base_model,
        base_model_path=base_path,
        data_fingerprint=report.fingerprint,
        spec=spec.model_dump(mode="json"),
        spec_sha256=loaded.sha256,
        wall_s=result.wall_s,
        hourly_price_usd=spec.targets.cost.hourly_price_usd,
    )
    base_info = json.loads((base_path / BASE_INFO).read_text()) if (base_path / BASE_INFO).is_file() else {}
    lineage.update(
        method=spec.sft.method,
        steps=result.steps,
        epochs=result.epochs,
        train_examples=len(rows),
        validation_examples=len(val_rows),
        train_tokens=result.train_tokens,
        trained_tokens_per_epoch=result.trained_tokens,
        resumed_from_step=result.resumed_from_step,
        chat_template_sha256=template.sha256,
        end_of_turn=template.end_of_turn,
        base_weights=base_info,
        final_eval_loss=_last(result.log_history, "eval_loss"),
        final_train_loss=_last(result.log_history, "loss"),
        engine=result.engine,
    )
    # A packaged base is named (any machine can resolve it); a local folder is recorded by absolute path,
    # so loading the artifact does not depend on the directory the spec was in.
    base_ref = spec.base_model if spec.base_model in PACKAGED_CAUSAL_LMS else str(base_path)
    with tempfile.TemporaryDirectory(dir=store.workspace.root, prefix=".train-") as tmp:
        folder = Path(tmp)
        save_sft_artifact(
            result.model,
            tokenizer,
            template,
            folder,
            {
                "method": spec.sft.method,
                "base_model": base_ref,
                "max_length": spec.sft.max_length,
                "inference_dtype": spec.sft.inference_dtype,
            },
        )
        (folder / "training-log.json").write_text(json.dumps(result.log_history, indent=0))
        (folder / "consumed-examples.json").write_text(
            json.dumps({str(k): v for k, v in result.consumed.items()}, indent=0)
        )
        version = register_trained(store, loaded, folder, lineage, report.fingerprint)
    console.print(
        f"trained {version.ref}: {len(rows)} conversations, {result.epochs:g} epochs, {result.steps} steps, "
        f"{result.wall_s:.1f} s, ${lineage['cost_usd']:.5f}"
    )
    return version


def _train_with_trl(
    spec: Spec,
    console: Console,
    rows: list[TrainingRow],
    val_rows: list[TrainingRow],
    base_path: Path,
    tokenizer: Any,
    run_dir: Path,
    run_info: dict[str, Any],
    resume: bool,
) -> SftResult:
    """TRL's SFTTrainer with checkpoints in the run folder and a progress bar."""
    if not resume:
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # a fresh run never mixes with an old one
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
    )
    with StepProgress(*columns, console=console) as progress:
        task = progress.add_task(f"train {spec.name} ({spec.sft.method})", total=None, info="")

        def on_step(step: int, total: int, logs: dict[str, float]) -> None:
            info = " ".join(f"{k} {logs[k]:.3f}" for k in ("loss", "eval_loss") if k in logs)
            progress.update(task, completed=step, total=total, info=info)

        result = train_sft(
            rows,
            val_rows,
            base_path,
            tokenizer,
            spec.sft,
            run_dir,
            resume=resume,
            run_info=run_info,
            on_step=on_step,
        )
    if result.resumed_from_step:
        console.print(f"resumed from the checkpoint at step {result.resumed_from_step}")
    return result


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _last(history: list[dict[str, Any]], key: str) -> float | None:
    values = [h[key] for h in history if key in h]
    return float(values[-1]) if values else None
