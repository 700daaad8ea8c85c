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


@app.command()
def train(
    spec: SpecArg = Path("."),
    workspace: WorkspaceOpt = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the newest complete checkpoint (task sft).")
    ] = False,
) -> None:
    """Train the spec's model and register it as a candidate version."""
    from tunegate.pipeline import train_step
    from tunegate.spec import load_spec
    from tunegate.store import open_store

    loaded = load_spec(spec)
    if loaded.spec.task == "sft":
        from tunegate.pipeline_sft import train_sft_step

        version = train_sft_step(loaded, open_store(workspace), console, resume=resume)
    else:
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
def run(spec: SpecArg = Path("."), workspace: WorkspaceOpt = None) -> None:
    """data check -> train -> eval -> gate, stopping at the first blocker."""
    from tunegate.pipeline import run_all
    from tunegate.spec import load_spec
    from tunegate.store import open_store

    loaded = load_spec(spec)
    if loaded.spec.task == "sft":
        from tunegate.pipeline_sft import run_sft

        passed = run_sft(loaded, open_store(workspace), console)
    else:
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


@app.command()
def serve(
    spec: Annotated[
        Path | None, typer.Option(help="tunegate.yaml whose serve/monitor/rollback sections apply.")
    ] = None,
    workspace: WorkspaceOpt = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    model: Annotated[
        list[str] | None, typer.Option(help="Model name to serve (repeatable; default: all).")
    ] = None,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="Accept requests without API keys.")] = False,
    monitor: Annotated[
        bool, typer.Option(help="Run the monitor (needs --spec): drift, alerts, rollback.")
    ] = True,
    graceful_shutdown_s: Annotated[
        float, typer.Option(help="On SIGTERM, wait this long for requests.")
    ] = 30.0,
) -> None:
    """Serve production versions over HTTP: classify, OpenAI chat and embeddings, feedback, metrics."""
    from tunegate.serve.run import configure_threads, run_server, settings_for

    configure_threads()  # before anything imports torch
    from tunegate.serve import create_app
    from tunegate.spec import load_spec
    from tunegate.store import open_store

    store = open_store(workspace)
    loaded = load_spec(spec) if spec is not None else None
    settings = settings_for(store, loaded, models=model or (), require_api_key=False if no_auth else None)
    observers = []
    if loaded is not None and monitor:
        from tunegate.monitor import start_monitor

        observers.append(start_monitor(store, loaded, console=err_console).observe)
    from tunegate.ui import mount  # the dashboard at /ui; serve itself never imports ui

    run_server(
        mount(create_app(store, settings, observers), store),
        host=host,
        port=port,
        graceful_shutdown_s=graceful_shutdown_s,
    )


@app.command()
def ui(
    workspace: WorkspaceOpt = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8100,
) -> None:
    """The web dashboard alone (no models loaded) for a workspace: log in with an API key at /ui."""
    from tunegate.serve.run import run_server
    from tunegate.store import open_store
    from tunegate.ui import create_dashboard_app

    err_console.print(f"dashboard: http://{host}:{port}/ui")
    run_server(create_dashboard_app(open_store(workspace)), host=host, port=port, graceful_shutdown_s=5.0)


@app.command()
def bench(
    url: Annotated[str, typer.Argument(help="Base URL of a running server, e.g. http://127.0.0.1:8000.")],
    data: Annotated[
        Path, typer.Argument(help="Texts to replay: JSONL/CSV with a text field, or one per line.")
    ],
    endpoint: Annotated[str, typer.Option(help="classify | embeddings | chat.")] = "classify",
    model: Annotated[str | None, typer.Option(help="Model name (default: the server's only model).")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="TUNEGATE_API_KEY", help="API key.")] = None,
    concurrency: Annotated[
        int, typer.Option(help="Clients (closed loop) or most outstanding (with --rate).")
    ] = 32,
    rate: Annotated[float | None, typer.Option(help="Open loop: requests scheduled per second.")] = None,
    duration_s: Annotated[float, typer.Option(help="Measured seconds (after the warm-up).")] = 30.0,
    warmup_s: Annotated[float, typer.Option(help="Unmeasured seconds first.")] = 2.0,
    text_field: Annotated[str, typer.Option(help="Field or column holding the text.")] = "text",
    compare_sequential: Annotated[bool, typer.Option(help="First measure one request at a time.")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the results as JSON.")] = None,
) -> None:
    """Load-test a running server: throughput, p50/p95/p99 latency and errors."""
    import asyncio

    from tunegate.serve.bench import load_texts, run_bench

    texts = load_texts(data, text_field)
    runs = []
    plans = ([(1, None)] if compare_sequential else []) + [(concurrency, rate)]
    for clients, per_second in plans:
        result = asyncio.run(
            run_bench(
                url,
                texts,
                endpoint=endpoint,
                model=model,
                api_key=api_key,
                concurrency=clients,
                rate_rps=per_second,
                duration_s=duration_s,
                warmup_s=warmup_s,
            )
        )
        runs.append(result.to_dict())
    table = Table(
        "clients", "rate/s", "requests", "errors", "throughput/s", "p50 ms", "p95 ms", "p99 ms", "outcomes"
    )
    for r in runs:
        table.add_row(
            str(r["concurrency"]),
            "-" if r["rate_rps"] is None else f"{r['rate_rps']:g}",
            str(r["requests"]),
            str(r["errors"]),
            f"{r['throughput_rps']:.1f}",
            f"{r['p50_latency_ms']:.1f}",
            f"{r['p95_latency_ms']:.1f}",
            f"{r['p99_latency_ms']:.1f}",
            json.dumps(r["outcomes"]),
        )
    console.print(table)
    summary: dict[str, object] = {"runs": runs}
    if compare_sequential:
        summary["speedup_vs_sequential"] = runs[1]["throughput_rps"] / max(runs[0]["throughput_rps"], 1e-9)
        console.print(f"throughput vs one request at a time: {summary['speedup_vs_sequential']:.2f}x")
    if output is not None:
        output.write_text(json.dumps(summary, indent=2))
    if runs[-1]["errors"]:
        raise typer.Exit(1)


# -- governance: users, review, promote / rollback, decision log (docs/governance.md) -----------------

users_app = typer.Typer(
    no_args_is_help=True, help="People and their API keys (roles: viewer, reviewer, admin)."
)
review_app = typer.Typer(no_args_is_help=True, help="Human review of a candidate's outputs, and sign-off.")
log_app = typer.Typer(no_args_is_help=True, help="The append-only, hash-chained decision log.")
app.add_typer(users_app, name="users")
app.add_typer(review_app, name="review")
app.add_typer(log_app, name="log")

ApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--api-key", envvar="TUNEGATE_API_KEY", show_envvar=True, help="Your API key (acts as you)."
    ),
]


def _acting(workspace: Path | None, api_key: str | None):  # -> (Store, Actor)
    from tunegate.review import authenticate
    from tunegate.store import open_store

    store = open_store(workspace)
    return store, authenticate(store, api_key)


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="User name (letters, digits, . _ @ -).")],
    role: Annotated[str, typer.Option(help="viewer, reviewer or admin.")] = "viewer",
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Create a user and print their API key once (the first user of a workspace needs no key: an admin)."""
    from tunegate.review import add_user
    from tunegate.store import open_store

    record, key = add_user(open_store(workspace), api_key, name, role)
    err_console.print(
        f"created {record.name} ({record.role}); the API key below is shown once, store it now:"
    )
    print(key)  # alone on stdout, so `export TUNEGATE_API_KEY=$(tunegate users add ...)` works


@users_app.command("list")
def users_list(api_key: ApiKeyOpt = None, workspace: WorkspaceOpt = None) -> None:
    """Every user, their role, key prefix and whether the key is revoked (admins only)."""
    from tunegate.review import require
    from tunegate.store.users import list_users

    store, actor = _acting(workspace, api_key)
    require(actor, "manage_users")
    table = Table("name", "role", "key", "created", "by", "status")
    for u in list_users(store.meta):
        status = "active" if u.active else f"[red]revoked[/] {u.revoked_at:%Y-%m-%d} by {u.revoked_by}"
        table.add_row(
            u.name, u.role, u.key_prefix + "…", f"{u.created_at:%Y-%m-%d %H:%M}", u.created_by, status
        )
    console.print(table)


@users_app.command("revoke")
def users_revoke(
    name: Annotated[str, typer.Argument()],
    reason: Annotated[str, typer.Option(help="Why (goes into the decision log).")] = "",
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Revoke a user's API key: it can do nothing afterwards (admins only)."""
    from tunegate.review import revoke
    from tunegate.store import open_store

    record = revoke(open_store(workspace), api_key, name, reason)
    console.print(f"revoked the key of {record.name} ({record.key_prefix}…)")


def _print_item(task) -> None:  # a review.ReviewTask
    item = task.item
    confidence = "-" if item.confidence is None else f"{item.confidence:.3f}"
    console.print(
        f"[bold]item {item.id}[/] of {task.batch.version_ref} (batch {task.batch.id}, "
        f"{task.decided_by_you}/{task.total} decided by you) — {', '.join(item.reasons)}"
    )
    console.print(f"  text:       {item.text}", highlight=False)
    console.print(f"  label:      {item.label if item.label is not None else '-'}", highlight=False)
    console.print(f"  predicted:  {item.predicted} (confidence {confidence})", highlight=False)
    console.print(
        f"  decide:     tunegate review approve {item.id}  |  tunegate review reject {item.id} --comment ..."
    )


@review_app.command("open")
def review_open(
    ref: Annotated[str, typer.Argument(help="Version: name, name@3 or name@candidate.")],
    spec: Annotated[
        Path | None, typer.Option(help="Spec, only for versions without one in their lineage.")
    ] = None,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Open a review batch: a stratified sample of the evaluation outputs plus every low-confidence and wrong one."""
    from collections import Counter

    from tunegate.review import open_review
    from tunegate.spec import load_spec

    store, actor = _acting(workspace, api_key)
    opened = open_review(store, actor, ref, load_spec(spec) if spec else None)
    reasons = Counter(r for item in opened.items for r in item.reasons)
    verb = (
        "already open"
        if opened.reused and opened.batch.status == "open"
        else (opened.batch.status if opened.reused else "opened")
    )
    console.print(
        f"review batch {opened.batch.id} of {opened.batch.version_ref} {verb}: {len(opened.items)} items ("
        + ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
        + f"); evidence {opened.batch.evidence_sha256[:16]}…"
    )
    console.print("next: tunegate review next")


@review_app.command("next")
def review_next(
    ref: Annotated[str | None, typer.Argument(help="Only this version's open batch.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object (for scripts); exit 1 when none is left.")
    ] = False,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Show the next item you have not decided yet."""
    from tunegate.review import next_item

    store, actor = _acting(workspace, api_key)
    task = next_item(store, actor, ref)
    if task is None:
        if as_json:
            raise typer.Exit(1)
        console.print("nothing left for you to review")
        return
    if as_json:
        item = task.item
        print(
            json.dumps(
                {
                    "id": item.id,
                    "version": task.batch.version_ref,
                    "text": item.text,
                    "label": item.label,
                    "predicted": item.predicted,
                    "confidence": item.confidence,
                    "reasons": list(item.reasons),
                }
            )
        )
        return
    _print_item(task)


def _decide(
    items: list[int], approve: bool, comment: str, api_key: str | None, workspace: Path | None
) -> None:
    from tunegate.review import decide

    store, actor = _acting(workspace, api_key)
    for item in items:  # one decision (and log entry) each; the first refusal stops the rest
        outcome = decide(store, actor, item, approve, comment)
        v = outcome.verdict
        console.print(
            f"item {item}: {'approved' if approve else 'rejected'}. batch {outcome.batch.id}: {v.status} — {v.reason}"
        )
    if not outcome.counts:
        err_console.print(
            f"[yellow]note:[/] you ran the training of {outcome.batch.version_ref}; your decisions are recorded "
            "but do not count toward the sign-off"
        )
    if outcome.signoff is not None:
        console.print(
            f"[green]signed off[/] {outcome.batch.version_ref}, evidence {outcome.signoff.evidence_sha256[:16]}…"
        )


CommentOpt = Annotated[str, typer.Option("--comment", "-m", help="Why (goes into the decision log).")]


@review_app.command("approve")
def review_approve(
    items: Annotated[list[int], typer.Argument(help="Item ids (from `tunegate review next`).")],
    comment: CommentOpt = "",
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Approve review items (one or more ids)."""
    _decide(items, True, comment, api_key, workspace)


@review_app.command("reject")
def review_reject(
    items: Annotated[list[int], typer.Argument(help="Item ids (from `tunegate review next`).")],
    comment: CommentOpt = "",
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Reject review items (one or more ids)."""
    _decide(items, False, comment, api_key, workspace)


@review_app.command("status")
def review_status_cmd(
    ref: Annotated[str, typer.Argument()], api_key: ApiKeyOpt = None, workspace: WorkspaceOpt = None
) -> None:
    """The latest review of a version: progress, verdict, sign-off, and whether the evidence is unchanged."""
    from tunegate.review import review_status

    store, actor = _acting(workspace, api_key)
    s = review_status(store, actor, ref)
    console.print(
        f"{s.version.ref} ({s.version.stage}); run by {s.version.lineage.get('created_by', 'unknown')}"
    )
    if s.integrity_problem:
        console.print(f"[red]evidence broken:[/] {s.integrity_problem}")
    if s.batch is None or s.verdict is None:
        console.print("no review yet: tunegate review open " + s.version.ref)
        return
    v = s.verdict
    console.print(
        f"batch {s.batch.id} ({s.batch.status}): {v.approved} approved, {v.rejected} rejected, {v.pending} pending "
        f"of {v.items}; reviewers: {', '.join(v.eligible_reviewers) or '-'}"
    )
    console.print(f"verdict: {v.status} — {v.reason}")
    if s.signoff is not None:
        still = (
            "[green]matches[/]"
            if s.signoff.evidence_sha256 == s.current_evidence_sha256
            else "[red]no longer matches[/]"
        )
        console.print(
            f"sign-off {s.signoff.signed_at:%Y-%m-%d %H:%M} by {', '.join(s.signoff.approvers)}: {still} the current evidence"
        )
    elif s.evidence_current is False:
        console.print("[yellow]the evidence changed since this batch opened: open a new review[/]")


@app.command()
def promote(
    ref: Annotated[str, typer.Argument(help="Version: name@3, name@candidate, name@staging.")],
    to: Annotated[str, typer.Option("--to", help="staging or production.")],
    override: Annotated[
        bool, typer.Option(help="Admin override of a refused promotion (needs --reason).")
    ] = False,
    reason: Annotated[
        str, typer.Option(help="Why (required with --override; goes into the decision log).")
    ] = "",
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Move a version to staging or production: needs a passed gate and a sign-off on its current evidence."""
    from tunegate.registry import promote as promote_version

    store, actor = _acting(workspace, api_key)
    result = promote_version(store, actor, ref, to, override=override, reason=reason)
    for change in result.changes:
        console.print(f"{change.ref}: {change.from_stage} -> {change.to_stage}")
    if override:
        console.print(f"[yellow]override logged[/] (entry {result.entries[0].seq}): {reason}")


@app.command()
def rollback(
    name: Annotated[str, typer.Argument(help="Model name.")],
    reason: Annotated[str, typer.Option(help="Why (goes into the decision log).")] = "",
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Return production to the previous production version, in one step."""
    from tunegate.registry import rollback as rollback_model

    store, actor = _acting(workspace, api_key)
    result = rollback_model(store, actor, name, reason)
    for change in result.changes:
        console.print(f"{change.ref}: {change.from_stage} -> {change.to_stage}")


@log_app.command("verify")
def log_verify(
    file: Annotated[
        Path | None, typer.Option("--file", help="Verify an exported JSONL copy instead.")
    ] = None,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Re-hash the chain; name the first edited, deleted or reordered entry (exit 1). Also replays the registry."""
    from tunegate.registry import replay_differences
    from tunegate.review import require
    from tunegate.store.decision_log import load_jsonl, read_decisions, read_head, verify_chain

    if file is not None:
        check = verify_chain(load_jsonl(file))
        console.print(f"{file}: {check.describe()}")
        if not check.ok:
            raise typer.Exit(1)
        return
    store, actor = _acting(workspace, api_key)
    require(actor, "read")
    check = verify_chain(read_decisions(store.meta), read_head(store.meta))
    console.print(("[green]" if check.ok else "[red]") + check.describe() + "[/]")
    differences = replay_differences(store) if check.ok else []
    for line in differences:
        console.print(f"[red]replay:[/] {line}")
    if check.ok and not differences:
        console.print("replaying the log reproduces every version's stage")
    if not check.ok or differences:
        raise typer.Exit(1)


@log_app.command("export")
def log_export(
    file: Annotated[Path, typer.Argument(help="JSONL file to write.")],
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Write every entry as JSON lines (verifiable without the database: `tunegate log verify --file`)."""
    from tunegate.review import require
    from tunegate.store.decision_log import export_jsonl, read_decisions, verify_chain

    store, actor = _acting(workspace, api_key)
    require(actor, "read")
    entries = read_decisions(store.meta)
    count = export_jsonl(entries, file)
    console.print(f"wrote {count} entries to {file}; head {verify_chain(entries).head_hash}")


@log_app.command("show")
def log_show(
    subject: Annotated[str | None, typer.Argument(help="Only entries about this (e.g. my-model@2).")] = None,
    last: Annotated[int, typer.Option(help="How many of the newest entries.")] = 20,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """The newest decisions: who, when, what, why."""
    from tunegate.review import require
    from tunegate.store.decision_log import read_decisions

    store, actor = _acting(workspace, api_key)
    require(actor, "read")
    table = Table("seq", "time (UTC)", "actor", "action", "subject", "reason")
    for e in read_decisions(store.meta, subject=subject)[-last:]:
        table.add_row(
            str(e.seq), e.recorded_at[:19].replace("T", " "), e.actor, e.action, e.subject, e.reason[:80]
        )
    console.print(table)


@app.command("monitor")
def monitor_show(
    workspace: WorkspaceOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole state as JSON.")] = False,
) -> None:
    """The monitor's current state: per version windows, drift, incidents and alerts."""
    import time

    from tunegate.monitor import read_state
    from tunegate.store import open_store

    state = read_state(open_store(workspace))
    if as_json:
        console.print_json(json.dumps(state))
        return
    age_s = time.time() - state["updated_at"]
    console.print(f"monitor state from {age_s:.0f} s ago; windows of {state['window_s']:g} s")
    table = Table(
        "version",
        "requests",
        "errors",
        "p50 ms",
        "p95 ms",
        "confidence",
        "escalated",
        "wrong fb",
        "drift",
        "drift score / threshold",
    )

    def fmt(value: object, pattern: str = "{:.1f}") -> str:
        return "-" if value is None else pattern.format(value)

    for ref, version in state["versions"].items():
        w = version["windows"][-1] if version["windows"] else {}
        drift = version["drift"]
        score = (
            f"{drift['scores'][-1]:.4f} / {drift['threshold']:.4f}"
            if drift["scores"] and "threshold" in drift
            else "-"
        )
        table.add_row(
            ref,
            fmt(w.get("requests"), "{}"),
            fmt(w.get("error_rate"), "{:.1%}"),
            fmt(w.get("p50_latency_ms")),
            fmt(w.get("p95_latency_ms")),
            fmt(w.get("mean_confidence"), "{:.2f}"),
            fmt(w.get("escalated"), "{}"),
            fmt(w.get("negative_feedback_rate"), "{:.0%}"),
            drift["status"],
            score,
        )
    console.print(table)
    for incident in state["incidents"]:
        console.print(
            f"[red]incident[/] {incident['version']}: {incident['reason']} -> {incident['outcome']}"
        )
    for alert in state["alerts"][-5:]:
        console.print(f"[yellow]alert[/] {alert['kind']} {alert['model']}: {alert['message']}")


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
