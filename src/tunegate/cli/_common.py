"""What every verb module shares: the app, the consoles, the common options, the acting user."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Fine-tuning with evidence gates.")
console = Console()
err_console = Console(stderr=True)

SpecArg = Annotated[Path, typer.Argument(help="tunegate.yaml, or a folder holding one.")]
GpusOpt = Annotated[
    int | None,
    typer.Option(
        "--gpus",
        help="Task sft: train on N GPUs of this machine, one process each, started by accelerate "
        "(tunegate's engine, FSDP2).",
    ),
]
WorkspaceOpt = Annotated[
    Path | None,
    typer.Option("--workspace", "-w", help="Workspace folder (default: $TUNEGATE_WORKSPACE or ./.tunegate)."),
]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--api-key", envvar="TUNEGATE_API_KEY", show_envvar=True, help="Your API key (acts as you)."
    ),
]


def acting(workspace: Path | None, api_key: str | None):  # -> (Store, Actor)
    """Open the workspace and authenticate the caller's key (AccessDenied names what is wrong)."""
    from tunegate.review import authenticate
    from tunegate.store import open_store

    store = open_store(workspace)
    return store, authenticate(store, api_key)
