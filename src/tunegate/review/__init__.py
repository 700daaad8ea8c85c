"""The review stage: people look at a candidate's outputs and sign off (or not) under the spec's policy.

access      roles, API keys, permission checks (`Actor`, `authenticate`, `require`)
sampling    which evaluation outputs are reviewed (pure)
policy      from decisions to pending / signed off / rejected (pure)
checkpoint  the library calls behind `tunegate review ...` and the HTTP API
"""

from tunegate.review.access import (
    ROLES,
    Actor,
    add_user,
    allowed,
    authenticate,
    require,
    revoke,
    system_actor,
)
from tunegate.review.checkpoint import (
    DecisionOutcome,
    OpenedBatch,
    ReviewStatus,
    ReviewTask,
    decide,
    evidence_now,
    next_item,
    open_review,
    policy_for,
    review_status,
)
from tunegate.review.policy import BatchVerdict, ReviewPolicy, judge_batch
from tunegate.review.sampling import select_for_review

__all__ = [
    "ROLES",
    "Actor",
    "BatchVerdict",
    "DecisionOutcome",
    "OpenedBatch",
    "ReviewPolicy",
    "ReviewStatus",
    "ReviewTask",
    "add_user",
    "allowed",
    "authenticate",
    "decide",
    "evidence_now",
    "judge_batch",
    "next_item",
    "open_review",
    "policy_for",
    "require",
    "review_status",
    "revoke",
    "select_for_review",
    "system_actor",
]
