"""Label balance: rows per class in each split, the imbalance ratio, small classes, test-only labels.

The classes considered are the spec's `labels` when given, plus any label seen in train or test, so a
label the spec lists but no train row carries is a small class with 0 rows, and so is a label that
only the test file uses (the model could never predict it).

A pure function over lists of Example.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from tunegate.data.examples import Example


@dataclass(frozen=True)
class LabelBalance:
    """Per-class counts. `imbalance_ratio` is largest / smallest train class (inf when a class has 0 rows)."""

    classes: tuple[str, ...]
    train_counts: dict[str, int]
    test_counts: dict[str, int]
    imbalance_ratio: float
    min_examples_per_class: int
    small_classes: tuple[str, ...]  # fewer than min_examples_per_class train rows
    test_labels_missing_from_train: tuple[str, ...]


def label_balance(
    train: list[Example], test: list[Example], labels: list[str] | None, min_examples_per_class: int
) -> LabelBalance:
    train_counter = Counter(e.label for e in train)
    test_counter = Counter(e.label for e in test)
    # Spec order first (the user's order), then labels the spec did not list, sorted.
    listed = list(labels or [])
    unlisted = sorted((set(train_counter) | set(test_counter)) - set(listed))
    classes = tuple(listed + unlisted)
    train_counts = {c: train_counter.get(c, 0) for c in classes}
    test_counts = {c: test_counter.get(c, 0) for c in classes}
    counts = list(train_counts.values())
    if not counts:
        ratio = 0.0
    elif min(counts) == 0:
        ratio = float("inf")
    else:
        ratio = max(counts) / min(counts)
    return LabelBalance(
        classes=classes,
        train_counts=train_counts,
        test_counts=test_counts,
        imbalance_ratio=ratio,
        min_examples_per_class=min_examples_per_class,
        small_classes=tuple(c for c in classes if train_counts[c] < min_examples_per_class),
        test_labels_missing_from_train=tuple(c for c in classes if test_counts[c] and not train_counts[c]),
    )
