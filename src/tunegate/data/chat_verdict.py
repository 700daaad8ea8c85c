"""Which chat-data findings stop the run (blockers) and which are only reported: one pure function.

The spec decides through `data.blockers` and `data.max_row_error_fraction`, as for classifier data.
Two findings block whatever the spec says, because training could not run on them: a split with no
usable conversation, and a chat template that leaves an assistant turn's end-of-turn token out of
the trained tokens (training refuses it too; the check says so before compute is spent).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from tunegate.models.chat_template import ChatTemplate
from tunegate.spec.schema import DataSpec

if TYPE_CHECKING:
    from tunegate.data.chat_check import ChatDataReport


def decide_chat(
    report: ChatDataReport, data: DataSpec, template: ChatTemplate
) -> tuple[list[str], list[str]]:
    blockers: list[str] = []
    warnings: list[str] = []

    def finding(kind: str, sentence: str) -> None:
        if kind in data.blockers:
            blockers.append(f"{sentence} [data.blockers: {kind}]")
        else:
            warnings.append(sentence)

    for split in ("train", "test"):
        total, errors = report.total_rows[split], len(report.row_errors[split])
        if total - errors == 0:
            blockers.append(
                f"{split}: {report.files[split]} has no usable conversations ({total} rows, {errors} malformed)"
            )
            continue
        if errors:
            sentence = (
                f"{split}: {errors:,} of {total:,} rows ({errors / total:.1%}) are malformed and not used"
            )
            if errors / total > data.max_row_error_fraction:
                blockers.append(
                    f"{sentence}, more than data.max_row_error_fraction ({data.max_row_error_fraction:.1%})"
                )
            else:
                finding("row_errors", sentence)

    if report.template_problems:
        blockers.append(
            f"{template.name} does not end assistant turns with the end-of-turn token {template.end_of_turn!r} "
            f"in {len(report.template_problems)} conversations (first: {report.template_problems[0]}); a model "
            "trained on them never learns to stop (set sft.end_of_turn_token or use another template)"
        )

    if report.leakage:
        exact = sum(leak.exact for leak in report.leakage)
        finding(
            "leakage",
            f"train/test leakage: {len(report.leakage):,} test conversations also appear in train ({exact:,} exact, "
            f"{len(report.leakage) - exact:,} near at similarity >= {data.near_duplicate_threshold})",
        )
    for split in ("train", "test"):
        groups = [g for g in report.duplicates if g.split == split]
        if groups:
            copies = sum(g.extra_copies for g in groups)
            finding(
                "duplicates",
                f"{split}: {len(groups):,} conversations appear more than once ({copies:,} extra copies)",
            )
    if report.near_duplicates:
        finding(
            "near_duplicates",
            f"train: {len(report.near_duplicates):,} near-duplicate conversation pairs "
            f"(similarity >= {data.near_duplicate_threshold})",
        )
    if report.pii:
        kinds = Counter(f.kind for f in report.pii)
        rows = len({(f.split, f.line) for f in report.pii})
        finding(
            "pii",
            f"personal data in {rows:,} conversations: "
            + ", ".join(f"{n:,} {k}" for k, n in kinds.most_common()),
        )
    too_long = {split: len(stats.over_max) for split, stats in report.tokens.items() if stats.over_max}
    if too_long:
        max_length = report.tokens["train"].max_length
        detail = ", ".join(f"{n:,} {split}" for split, n in too_long.items())
        finding(
            "too_long",
            f"conversations over sft.max_length ({max_length} tokens) would be truncated: {detail}",
        )
    return blockers, warnings
