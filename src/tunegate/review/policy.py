"""The sign-off policy: from reviewers' decisions to pending / signed off / rejected. Pure functions.

Rules (the spec's `review:` section):
- each reviewer's latest decision on an item counts; decisions by the user who ran the training are
  recorded but do not count unless `allow_self_approval` (when that user is unknown, all count);
- an item is rejected by any counted rejection, approved by `required_approvals` counted approvals
  from distinct reviewers, and pending otherwise;
- the batch is rejected as soon as approved + pending items can no longer reach `min_approval_rate`
  of all items; it is signed off when no item is pending, the approval rate is met, and at least
  `distinct_reviewers` counted reviewers took part.

A verdict says what blocks a sign-off (`blocked_by`): items_pending, too_few_reviewers, or
self_approval_only (every pending item is approved, but only by the person who ran the training).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from tunegate.spec.schema import ReviewSpec


@dataclass(frozen=True)
class ReviewPolicy:
    sample_size: int = 20
    low_confidence_below: float = 0.6
    required_approvals: int = 1
    min_approval_rate: float = 0.9
    distinct_reviewers: int = 1
    allow_self_approval: bool = False

    @classmethod
    def from_spec(cls, review: ReviewSpec) -> ReviewPolicy:
        return cls(**review.model_dump())

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ReviewPolicy:
        return cls.from_spec(ReviewSpec.model_validate(raw))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class DecisionLike(Protocol):
    @property
    def item_id(self) -> int: ...
    @property
    def reviewer(self) -> str: ...
    @property
    def approve(self) -> bool: ...


@dataclass(frozen=True)
class BatchVerdict:
    status: str  # pending | signed_off | rejected
    reason: str
    items: int
    approved: int
    rejected: int
    pending: int
    blocked_by: str | None = None
    eligible_reviewers: list[str] = field(default_factory=list)
    ignored_self_decisions: int = 0

    @property
    def approval_rate(self) -> float:
        return self.approved / self.items if self.items else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "approval_rate": round(self.approval_rate, 6)}


def judge_batch(
    policy: ReviewPolicy, item_ids: Iterable[int], decisions: Iterable[DecisionLike], run_by: str | None
) -> BatchVerdict:
    """`decisions` in the order they were made (later ones replace a reviewer's earlier ones)."""
    ids = list(item_ids)
    latest: dict[tuple[int, str], bool] = {}
    for d in decisions:
        latest[(d.item_id, d.reviewer)] = d.approve

    def counts(reviewer: str) -> bool:
        return policy.allow_self_approval or run_by is None or reviewer != run_by

    approved = rejected = pending = self_only = ignored = 0
    eligible: set[str] = set()
    for item_id in ids:
        votes = [(reviewer, ok) for (iid, reviewer), ok in latest.items() if iid == item_id]
        counted = [ok for reviewer, ok in votes if counts(reviewer)]
        eligible.update(reviewer for reviewer, _ in votes if counts(reviewer))
        self_votes = [ok for reviewer, ok in votes if not counts(reviewer)]
        ignored += len(self_votes)
        if not all(counted):
            rejected += 1
        elif len(counted) >= policy.required_approvals:
            approved += 1
        else:
            pending += 1
            if any(self_votes) and len(counted) + sum(self_votes) >= policy.required_approvals:
                self_only += 1
    n = len(ids)

    def verdict(status: str, reason: str, blocked_by: str | None = None) -> BatchVerdict:
        return BatchVerdict(
            status,
            reason,
            items=n,
            approved=approved,
            rejected=rejected,
            pending=pending,
            blocked_by=blocked_by,
            eligible_reviewers=sorted(eligible),
            ignored_self_decisions=ignored,
        )

    best_rate = (approved + pending) / n if n else 0.0
    if best_rate < policy.min_approval_rate:
        return verdict(
            "rejected",
            (
                f"{rejected} of {n} items rejected: the approval rate can reach at most {best_rate:.0%}, "
                f"below the required {policy.min_approval_rate:.0%}"
            ),
        )
    if pending and self_only == pending:
        return verdict(
            "pending",
            (
                f"only self-approval: the remaining {pending} items are approved only by {run_by}, who ran the "
                "training (allow_self_approval is false)"
            ),
            "self_approval_only",
        )
    if pending:
        return verdict("pending", f"{pending} of {n} items still need a decision", "items_pending")
    if len(eligible) < policy.distinct_reviewers:
        return verdict(
            "pending",
            (f"{len(eligible)} eligible reviewer(s) took part; the policy needs {policy.distinct_reviewers}"),
            "too_few_reviewers",
        )
    return verdict(
        "signed_off",
        (
            f"{approved} of {n} items approved ({approved / n:.0%} >= {policy.min_approval_rate:.0%}) by "
            f"{', '.join(sorted(eligible))}"
        ),
    )
