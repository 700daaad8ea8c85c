"""Verbs of the chain a user runs: init, data check, train, eval, gate, run, predict, export, models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tunegate.cli._common import GpusOpt, SpecArg, WorkspaceOpt, app, console

data_app = typer.Typer(no_args_is_help=True, help="Check training and test data before spending compute.")
models_app = typer.Typer(no_args_is_help=True, help="Registered model versions.")
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")


@app.command()
def init(
    folder: Annotated[Path, typer.Argument(help="Where to write tunegate.yaml.")] = Path("."),
    name: Annotated[
        str | None, typer.Option(help="Model name (default: my-classifier / my-assistant).")
    ] = None,
    task: Annotated[
        str, typer.Option(help="classify (a text classifier) or sft (chat fine-tuning).")
    ] = "classify",
    force: Annotated[bool, typer.Option(help="Overwrite an existing spec.")] = False,
) -> None:
    """Write a commented starter tunegate.yaml: targets first, then data and training."""
    from tunegate.spec.starter import write_starter

    default_name = "my-assistant" if task == "sft" else "my-classifier"
    path = write_starter(folder, name=name or default_name, force=force, task=task)
    console.print(f"wrote {path}: set the targets before you train")


@data_app.command("check")
def data_check(
    spec: SpecArg = Path("."),
    report: Annotated[Path | None, typer.Option(help="Folder for data-report.json and .html.")] = None,
    no_fail: Annotated[bool, typer.Option("--no-fail", help="Exit 0 even when blockers are found.")] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Schema, per-row errors, duplicates, leakage, balance, lengths, PII; exit 1 on blockers."""
    from tunegate.data import check_data
    from tunegate.pipeline import actor_name
    from tunegate.spec import load_spec
    from tunegate.store import open_store
    from tunegate.store.decision_log import append_decision

    loaded = load_spec(spec)
    if loaded.spec.task == "sft":
        from tunegate.data.chat_check import check_chat_data

        result = check_chat_data(loaded)
    else:
        result = check_data(loaded)
    result.print(console)
    store = open_store(workspace)
    out = report or store.workspace.root / "reports" / f"{loaded.spec.name}-data"
    paths = result.write(out)
    console.print(f"report: {', '.join(str(p) for p in paths)}")
    append_decision(
        store.meta,
        actor=actor_name(store),
        action="data_check",
        subject=loaded.spec.name,
        reason="blocked" if result.blockers else "passed",
        payload={
            "fingerprint": result.fingerprint,
            "blockers": list(result.blockers),
            "spec_sha256": loaded.sha256,
        },
    )
    if result.blockers and not no_fail:
        raise typer.Exit(1)


def _refuse_gpus(spec: Any, gpus: int | None) -> None:
    from tunegate.errors import TrainError

    if gpus is not None:
        raise TrainError(f"--gpus applies to task sft; {spec.name} is a {spec.task!r} spec")


@app.command()
def train(
    spec: SpecArg = Path("."),
    workspace: WorkspaceOpt = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the newest complete checkpoint (task sft).")
    ] = False,
    gpus: GpusOpt = None,
) -> None:
    """Train the spec's model and register it as a candidate version."""
    from tunegate.pipeline import train_step
    from tunegate.spec import load_spec
    from tunegate.store import open_store

    loaded = load_spec(spec)
    if loaded.spec.task == "sft":
        from tunegate.pipeline_sft import train_sft_step

        version = train_sft_step(loaded, open_store(workspace), console, resume=resume, gpus=gpus)
    else:
        _refuse_gpus(loaded.spec, gpus)
        version = train_step(loaded, open_store(workspace), console)
    console.print(f"registered [bold]{version.ref}[/] (candidate)")


@app.command("eval")
def evaluate(
    spec: SpecArg = Path("."),
    version: Annotated[str | None, typer.Option(help="Version to evaluate (default: the newest).")] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Run every evaluation suite on a version: task metrics with intervals, slices, baselines, latency, cost."""
    from tunegate.pipeline import eval_step
    from tunegate.spec import load_spec
    from tunegate.store import open_store

    loaded = load_spec(spec)
    if loaded.spec.task == "sft":
        from tunegate.pipeline_sft import eval_sft_step

        eval_sft_step(loaded, open_store(workspace), version, console)
    else:
        eval_step(loaded, open_store(workspace), version, console)


@app.command()
def gate(
    spec: SpecArg = Path("."),
    version: Annotated[str | None, typer.Option(help="Version to judge (default: the newest).")] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Judge the latest evaluation against the spec's targets; exit 1 on FAIL."""
    from tunegate.pipeline import gate_step
    from tunegate.spec import load_spec
    from tunegate.store import open_store

    loaded = load_spec(spec)
    if loaded.spec.task == "sft":
        from tunegate.pipeline_sft import gate_sft_step

        record = gate_sft_step(loaded, open_store(workspace), version, console)
    else:
        record = gate_step(loaded, open_store(workspace), version, console)
    if not record.passed:
        raise typer.Exit(1)


@app.command()
def run(spec: SpecArg = Path("."), workspace: WorkspaceOpt = None, gpus: GpusOpt = None) -> None:
    """data check -> train -> eval -> gate, stopping at the first blocker."""
    from tunegate.pipeline import run_all
    from tunegate.spec import load_spec
    from tunegate.store import open_store

    loaded = load_spec(spec)
    if loaded.spec.task == "sft":
        from tunegate.pipeline_sft import run_sft

        passed = run_sft(loaded, open_store(workspace), console, gpus=gpus)
    else:
        _refuse_gpus(loaded.spec, gpus)
        passed = run_all(loaded, open_store(workspace), console)
    if not passed:
        raise typer.Exit(1)


@app.command()
def predict(
    ref: Annotated[str, typer.Argument(help="Version: name, name@3 or name@production.")],
    input_file: Annotated[Path, typer.Argument(help="JSONL or CSV with a text field.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="JSONL to write (default: stdout).")
    ] = None,
    text_field: Annotated[str, typer.Option(help="Field holding the text.")] = "text",
    workspace: WorkspaceOpt = None,
    max_new_tokens: Annotated[
        int | None, typer.Option(help="Chat models: most new tokens per answer.")
    ] = None,
    sample: Annotated[bool, typer.Option("--sample", help="Chat models: sample instead of greedy.")] = False,
    temperature: Annotated[float, typer.Option(help="Chat models: sampling temperature.")] = 0.7,
    seed: Annotated[int, typer.Option(help="Chat models: sampling seed.")] = 0,
) -> None:
    """Labels and probabilities (classifiers), or answers to chat prompts (chat models), for a file."""
    from tunegate.pipeline import predict_file
    from tunegate.store import open_store

    store = open_store(workspace)
    if store.meta.resolve(ref).task == "sft":
        from tunegate.pipeline_sft import predict_chat_file

        predict_chat_file(
            store,
            ref,
            input_file,
            output,
            console,
            max_new_tokens=max_new_tokens,
            do_sample=sample,
            temperature=temperature,
            seed=seed,
        )
        return
    predict_file(store, ref, input_file, output, text_field, console)


@app.command()
def export(
    ref: Annotated[str, typer.Argument(help="Chat model version: name, name@3 or name@production.")],
    out: Annotated[Path, typer.Argument(help="New folder to write.")],
    fmt: Annotated[
        str, typer.Option("--format", help="merged (HF safetensors), adapter (PEFT LoRA) or both.")
    ] = "both",
    workspace: WorkspaceOpt = None,
) -> None:
    """Export a chat model for other servers: merged HF safetensors and/or a PEFT adapter folder."""
    from tunegate.pipeline_sft import export_version
    from tunegate.store import open_store

    if fmt not in ("merged", "adapter", "both"):
        raise typer.BadParameter("--format must be merged, adapter or both")
    export_version(open_store(workspace), ref, out, fmt, console)


@models_app.command("list")
def models_list(name: Annotated[str | None, typer.Argument()] = None, workspace: WorkspaceOpt = None) -> None:
    """Every registered version with its stage and gate verdict."""
    from tunegate.store import open_store

    store = open_store(workspace)
    table = Table("model", "version", "stage", "task", "created", "gate")
    for v in store.meta.list_versions(name):
        gate_record = store.meta.latest_gate(v.id)
        verdict = "-" if gate_record is None else ("[green]PASS[/]" if gate_record.passed else "[red]FAIL[/]")
        table.add_row(
            v.name, str(v.version), v.stage, v.task, v.created_at.strftime("%Y-%m-%d %H:%M"), verdict
        )
    console.print(table)


@models_app.command("show")
def models_show(ref: Annotated[str, typer.Argument()], workspace: WorkspaceOpt = None) -> None:
    """One version's lineage, evaluation summary and gate verdict, as JSON."""
    from tunegate.store import open_store

    store = open_store(workspace)
    v = store.meta.resolve(ref)
    evaluation = store.meta.latest_evaluation(v.id)
    gate_record = store.meta.latest_gate(v.id)
    console.print_json(
        json.dumps(
            {
                "ref": v.ref,
                "stage": v.stage,
                "task": v.task,
                "artifact_sha256": v.artifact_sha256,
                "spec_sha256": v.spec_sha256,
                "data_fingerprint": v.data_fingerprint,
                "lineage": v.lineage,
                "evaluation": evaluation.results.get("summary") if evaluation else None,
                "gate": {"passed": gate_record.passed, "evidence_sha256": gate_record.evidence_sha256}
                if gate_record
                else None,
            },
            default=str,
        )
    )
