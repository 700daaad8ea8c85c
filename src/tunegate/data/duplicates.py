"""Exact duplicates within a split and exact train/test leakage, on normalised text.

Two texts are the same when they are equal after NFKC, casefolding and collapsing whitespace: what a
person would call "the same sentence", and what a tokenizer that lowercases mostly sees as the same
input. Near-duplicates (one word changed) are `near_duplicates`' job.

Pure functions over lists of Example; no I/O.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from dataclasses import dataclass

from tunegate.data.examples import Example


def normalize_text(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


@dataclass(frozen=True)
class RowRef:
    """Where a row lives: file, line and its label (enough to find and fix it)."""

    file: str
    line: int
    label: str

    @classmethod
    def of(cls, example: Example) -> RowRef:
        return cls(example.source, example.line, example.label)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class DuplicateGroup:
    """Rows of one split whose normalised texts are equal. `conflicting`: they disagree on the label."""

    split: str
    text: str
    rows: tuple[RowRef, ...]
    labels: tuple[str, ...]

    @property
    def conflicting(self) -> bool:
        return len(self.labels) > 1

    @property
    def extra_copies(self) -> int:
        return len(self.rows) - 1


@dataclass(frozen=True)
class Leak:
    """A test row that also appears in train, exactly or nearly (`similarity` is 1.0 for exact)."""

    test: RowRef
    train: RowRef
    similarity: float
    exact: bool
    text: str  # the test row's text, for the report


def exact_duplicates(examples: list[Example], split: str) -> list[DuplicateGroup]:
    """Groups of two or more rows with the same normalised text, in order of first appearance."""
    groups: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        groups[normalize_text(example.text)].append(example)
    return [
        DuplicateGroup(
            split=split,
            text=members[0].text,
            rows=tuple(RowRef.of(m) for m in members),
            labels=tuple(sorted({m.label for m in members})),
        )
        for members in groups.values()
        if len(members) > 1
    ]


def exact_leakage(train: list[Example], test: list[Example]) -> list[Leak]:
    """Each test row whose normalised text is also in train, paired with the first such train row."""
    first_in_train: dict[str, Example] = {}
    for example in train:
        first_in_train.setdefault(normalize_text(example.text), example)
    leaks = []
    for example in test:
        match = first_in_train.get(normalize_text(example.text))
        if match is not None:
            leaks.append(
                Leak(RowRef.of(example), RowRef.of(match), similarity=1.0, exact=True, text=example.text)
            )
    return leaks
