"""The `tunegate` command: one verb per stage, each a thin shell over the library call of that stage.

Verbs parse arguments, open the workspace, call the stage, print, and choose the exit code:
0 done / PASS, 1 a gate FAIL or data blockers, 2 a TunegateError (bad input, refused action).
The verbs live in three modules by the half of the chain they serve; importing them registers them.
"""

from __future__ import annotations

import sys

from tunegate.cli import chain, governance, serving  # noqa: F401  (registers the verbs)
from tunegate.cli._common import app, err_console
from tunegate.errors import TunegateError

__all__ = ["app", "main"]


def main() -> None:
    import os

    import click

    # OpenMP threads that spin while waiting cost whole cores when the machine is shared (a CI runner,
    # a server beside a training job): measured here, a 720-example training took 713 s beside another
    # job with spinning threads and 109 s with one passive thread. Set before torch loads; an explicit
    # setting in the environment wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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
