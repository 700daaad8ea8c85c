"""Long steps report progress in logs too: rich draws nothing live when its console is not a terminal."""

from __future__ import annotations

import io

from rich.console import Console
from rich.progress import BarColumn, TextColumn

from tunegate.progress import StepProgress, line_for


def _run(console: Console, every_s: float) -> None:
    with StepProgress(TextColumn("{task.description}"), BarColumn(), console=console, every_s=every_s) as bar:
        task = bar.add_task("train demo", total=4, info="")
        for step in range(1, 5):
            bar.update(task, completed=step, info=f"loss {1 / step:.3f}")


def test_a_log_gets_plain_lines_and_the_finished_line_once() -> None:
    out = io.StringIO()
    _run(Console(file=out, force_terminal=False, width=120), every_s=0.0)
    lines = [ln for ln in out.getvalue().splitlines() if ln.startswith("train demo:")]
    assert [ln.split(" · ")[0] for ln in lines] == [
        "train demo: 1/4 (25%) loss 1.000",
        "train demo: 2/4 (50%) loss 0.500",
        "train demo: 3/4 (75%) loss 0.333",
        "train demo: 4/4 (100%) loss 0.250",
    ]


def test_lines_are_spaced_but_completion_is_always_printed() -> None:
    out = io.StringIO()
    _run(Console(file=out, force_terminal=False, width=120), every_s=3600.0)
    lines = [ln for ln in out.getvalue().splitlines() if ln.startswith("train demo:")]
    assert [ln.split(" · ")[0] for ln in lines] == ["train demo: 4/4 (100%) loss 0.250"]


def test_a_terminal_gets_the_bar_not_the_lines() -> None:
    out = io.StringIO()
    _run(Console(file=out, force_terminal=True, width=120), every_s=0.0)
    assert "train demo: 1/4" not in out.getvalue()


def test_line_without_total_and_with_hours() -> None:
    assert line_for("reading", 7, None, 3725.0, {}) == "reading: 7 · 1:02:05"
