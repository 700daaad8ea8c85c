"""Progress for long steps, in a terminal and in logs.

rich draws a live bar only on a terminal; written to a file or a CI log it stays silent until the step
ends, so a ten-minute training looks hung. `StepProgress` is rich's `Progress` that, when its console
is not a terminal, also prints a plain line per task every `every_s` seconds and once when the task
completes:

    train support-intents: 120/450 (27%) loss 0.412 · 0:01:02
"""

from __future__ import annotations

import time
from typing import Any

from rich.progress import Progress, TaskID


class StepProgress(Progress):
    def __init__(self, *columns: Any, every_s: float = 10.0, **kwargs: Any) -> None:
        super().__init__(*columns, **kwargs)
        self.every_s = every_s
        self._logged_at: dict[TaskID, float] = {}
        self._finished: set[TaskID] = set()

    def update(self, task_id: TaskID, **kwargs: Any) -> None:  # type: ignore[override]
        super().update(task_id, **kwargs)
        self._log(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._log(task_id)

    def _log(self, task_id: TaskID) -> None:
        if self.disable or self.console.is_terminal:
            return
        with self._lock:
            task = self._tasks[task_id]
            finished = task.total is not None and task.completed >= task.total
            now = time.monotonic()
            if task_id in self._finished or (
                not finished and now - self._logged_at.get(task_id, task.start_time or now) < self.every_s
            ):
                return
            self._logged_at[task_id] = now
            if finished:
                self._finished.add(task_id)
            line = line_for(task.description, task.completed, task.total, task.elapsed, task.fields)
        self.console.print(line, highlight=False, markup=False, soft_wrap=True)


def line_for(
    description: str, completed: float, total: float | None, elapsed: float | None, fields: dict[str, Any]
) -> str:
    done = f"{completed:g}" if total is None else f"{completed:g}/{total:g} ({completed / max(total, 1):.0%})"
    info = str(fields.get("info", "")).strip()
    seconds = int(elapsed or 0)
    clock = f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return " ".join(part for part in (f"{description}: {done}", info, f"· {clock}") if part)
