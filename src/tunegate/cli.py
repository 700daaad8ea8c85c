"""The `tunegate` command: one verb per stage, each a thin shell over the library call of that stage.

Verbs parse arguments, open the workspace, call the stage, print, and choose the exit code:
0 done / PASS, 1 a gate FAIL or data blockers, 2 a TunegateError (bad input, refused action).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tunegate.errors import TunegateError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Fine-tuning with evidence gates.")
data_app = typer.Typer(no_args_is_help=True, help="Check training and test data before spending compute.")
models_app = typer.Typer(no_args_is_help=True, help="Registered model versions.")
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")

console = Console()
err_console = Console(stderr=True)

SpecArg = Annotated[Path, typer.Argument(help="tunegate.yaml, or a folder holding one.")]
WorkspaceOpt = Annotated[
    Path | None,
    typer.Option("--workspace", "-w", help="Workspace folder (default: $TUNEGATE_WORKSPACE or ./.tunegate)."),
]


@app.command()
def init(
    folder: Annotated[Path, typer.Argument(help="Where to write tunegate.yaml.")] = Path("."),
    name: Annotated[str, typer.Option(help="Model name.")] = "my-classifier",
    force: Annotated[bool, typer.Option(help="Overwrite an existing spec.")] = False,
) -> None:
    """Write a commented starter tunegate.yaml: targets first, then data and training."""
    from tunegate.spec.starter import write_starter

    path = write_starter(folder, name=name, force=force)
    console.print(f"wrote {path}: set the targets before you train")


@data_app.command("check")
def data_check(
    spec: SpecArg = Path("."),
    report: Annotated[Path | None, typer.Option(help="Folder for data-report.json and .html.")] = None,
    no_fail: Annotated[bool, typer.Option("--no-fail", help="Exit 0 even when blockers are found.")] = False,
) -> None:
    """Schema, per-row errors, duplicates, leakage, balance, lengths, PII; exit 1 on blockers."""
    from tunegate.data import check_data
    from tunegate.spec import load_spec

    loaded = load_spec(spec)
    result = check_data(loaded)
    result.print(console)
    out = report or loaded.root / "reports"
    paths = result.write(out)
    console.print(f"report: {', '.join(str(p) for p in paths)}")
    if result.blockers and not no_fail:
        raise typer.Exit(1)


@app.command()
def train(spec: SpecArg = Path("."), workspace: WorkspaceOpt = None) -> None:
    """Train the spec's model and register it as a candidate version."""
    from tunegate.pipeline import train_step
    from tunegate.spec import load_spec
    from tunegate.store import open_store

    version = train_step(load_spec(spec), open_store(workspace), console)
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

    eval_step(load_spec(spec), open_store(workspace), version, console)


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

    record = gate_step(load_spec(spec), open_store(workspace), version, console)
    if not record.passed:
        raise typer.Exit(1)


@app.command()
def run(spec: SpecArg = Path("."), workspace: WorkspaceOpt = None) -> None:
    """data check -> train -> eval -> gate, stopping at the first blocker."""
    from tunegate.pipeline import run_all
    from tunegate.spec import load_spec
    from tunegate.store import open_store

    passed = run_all(load_spec(spec), open_store(workspace), console)
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
) -> None:
    """Labels and class probabilities for every row of a file."""
    from tunegate.pipeline import predict_file
    from tunegate.store import open_store

    predict_file(open_store(workspace), ref, input_file, output, text_field, console)


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


@app.command()
def serve(
    spec: Annotated[Path | None, typer.Option(help="tunegate.yaml whose serve/monitor/rollback sections apply.")] = None,
    workspace: WorkspaceOpt = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    model: Annotated[list[str] | None, typer.Option(help="Model name to serve (repeatable; default: all).")] = None,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="Accept requests without API keys.")] = False,
    monitor: Annotated[bool, typer.Option(help="Run the monitor (needs --spec): drift, alerts, rollback.")] = True,
    graceful_shutdown_s: Annotated[float, typer.Option(help="On SIGTERM, wait this long for requests.")] = 30.0,
) -> None:
    """Serve production versions over HTTP: classify, OpenAI chat and embeddings, feedback, metrics."""
    from tunegate.serve import create_app
    from tunegate.serve.run import run_server, settings_for
    from tunegate.spec import load_spec
    from tunegate.store import open_store

    store = open_store(workspace)
    loaded = load_spec(spec) if spec is not None else None
    settings = settings_for(store, loaded, models=model or (), require_api_key=False if no_auth else None)
    observers = []
    if loaded is not None and monitor:
        from tunegate.monitor import start_monitor

        observers.append(start_monitor(store, loaded, console=err_console).observe)
    run_server(create_app(store, settings, observers), host=host, port=port, graceful_shutdown_s=graceful_shutdown_s)


def main() -> None:
    import click

    try:
        # Not standalone: click hands back Exit codes and usage errors instead of calling sys.exit,
        # so TunegateError can be turned into one clean line here.
        code = app(standalone_mode=False)
    except TunegateError as exc:
        err_console.print(f"[red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
