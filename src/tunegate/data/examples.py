"""The row types every stage shares: a usable example, and a row that could not be used."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Example:
    """One usable labelled row. `line` is 1-based in its file (the row number for CSV/Parquet)."""

    text: str
    label: str
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    line: int = 0


@dataclass(frozen=True)
class RowError:
    """A row that was not used, and why. Never dropped silently: every one is reported."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"
