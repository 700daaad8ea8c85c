"""Which findings stop the run (blockers) and which are only reported (warnings): one pure function.

The spec decides through `data.blockers` (the finding kinds that block) and
`data.max_row_error_fraction`. Some things block whatever the spec says, because nothing after the
check could run on them: a split with no usable rows, a training set with fewer than two classes,
and a file with more malformed rows than the allowed fraction.

Every sentence names the split, the count and the spec key that made it a blocker, so a person knows
what to fix or which setting to change.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from tunegate.spec.schema import DataSpec

if TYPE_CHECKING:
    from tunegate.data.report import DataReport


def decide(report: DataReport, data: DataSpec) -> tuple[list[str], list[str]]:
    """(blockers, warnings) for a report whose findings are filled in."""
    blockers: list[str] = []
    warnings: list[str] = []

    def finding(kind: str, sentence: str) -> None:
        if kind in data.blockers:
            blockers.append(f"{sentence} [data.blockers: {kind}]")
        else:
            warnings.append(sentence)

    for split in ("train", "test"):
        total, errors = report.total_rows[split], len(report.row_errors[split])
        usable = total - errors
        if usable == 0:
            blockers.append(
                f"{split}: {report.files[split]} has no usable rows ({total} rows, {errors} malformed)"
            )
            continue
        if not errors:
            continue
        fraction = errors / total
        sentence = f"{split}: {errors:,} of {total:,} rows ({fraction:.1%}) are malformed and not used"
        if fraction > data.max_row_error_fraction:
            blockers.append(
                f"{sentence}, more than data.max_row_error_fraction ({data.max_row_error_fraction:.1%})"
            )
        else:
            finding("row_errors", sentence)

    trained_classes = [c for c, n in report.balance.train_counts.items() if n > 0]
    if report.train and len(trained_classes) < 2:
        blockers.append(f"train: a classifier needs at least 2 classes; the rows have {len(trained_classes)}")

    if report.leakage:
        exact = sum(leak.exact for leak in report.leakage)
        near = len(report.leakage) - exact
        finding(
            "leakage",
            f"train/test leakage: {len(report.leakage):,} test rows also appear in train ({exact:,} exact, {near:,} near "
            f"at similarity >= {data.near_duplicate_threshold}); their scores would be inflated",
        )

    for split in ("train", "test"):
        groups = [g for g in report.duplicates if g.split == split]
        if groups:
            copies = sum(g.extra_copies for g in groups)
            conflicting = sum(g.conflicting for g in groups)
            sentence = f"{split}: {len(groups):,} texts appear more than once ({copies:,} extra copies)"
            if conflicting:
                sentence += f"; {conflicting:,} of them with conflicting labels"
            finding("duplicates", sentence)

    if report.near_duplicates:
        finding(
            "near_duplicates",
            f"train: {len(report.near_duplicates):,} near-duplicate pairs "
            f"(similarity >= {data.near_duplicate_threshold})",
        )

    balance = report.balance
    if balance.small_classes:
        listed = ", ".join(f"{c} ({balance.train_counts[c]})" for c in balance.small_classes)
        finding(
            "small_classes",
            f"train: classes with fewer than {balance.min_examples_per_class} rows "
            f"(data.min_examples_per_class): {listed}",
        )
    if balance.test_labels_missing_from_train:
        warnings.append(
            "test: labels with no training rows, which the model can never predict: "
            + ", ".join(balance.test_labels_missing_from_train)
        )

    if report.pii:
        kinds = Counter(f.kind for f in report.pii)
        rows = len({(f.split, f.line) for f in report.pii})
        detail = ", ".join(f"{n:,} {kind}" for kind, n in kinds.most_common())
        finding("pii", f"personal data in {rows:,} rows: {detail}")

    too_long = {split: lengths.truncated for split, lengths in report.lengths.items() if lengths.truncated}
    if too_long:
        max_length = next(iter(report.lengths.values())).max_length
        detail = ", ".join(f"{n:,} {split}" for split, n in too_long.items())
        finding("too_long", f"rows over train.max_length ({max_length} tokens) would be truncated: {detail}")

    return blockers, warnings
