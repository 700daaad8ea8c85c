"""Verbs of the production half: serve (with the dashboard), ui, bench, monitor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tunegate.cli._common import WorkspaceOpt, app, console, err_console


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
    from tunegate.serve.run import configure_threads, run_server, settings_for, split_cores

    configure_threads()  # before anything imports torch
    from tunegate.serve import create_app
    from tunegate.spec import load_spec
    from tunegate.store import open_store

    store = open_store(workspace)
    loaded = load_spec(spec) if spec is not None else None
    settings = settings_for(
        store, loaded.spec if loaded else None, models=model or (), require_api_key=False if no_auth else None
    )
    split_cores(settings.inference_workers)
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
