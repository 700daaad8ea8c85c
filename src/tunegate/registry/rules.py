"""The lifecycle rules as pure functions: which moves exist, and why a promotion is refused.

    candidate --promote--> staging --promote--> production --(next promotion / rollback)--> archived

A promotion needs, bound to the version's *current* evidence hash (re-computed from the bytes):
a passed gate, and a sign-off. Refusal reasons, each with its code:

    no_passed_gate       no evaluation, no gate, a FAILED gate, or a gate that judged older evidence
    no_signoff           no review signed off
    self_approval_only   the review's approvals are all by the person who ran the training
    evidence_changed     a stored byte changed, or the sign-off was given for different evidence

An admin can override the first three kinds (and a sign-off given for different evidence) with a
written reason; stored bytes that no longer match their address can never be promoted.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunegate.errors import RegistryError

# Where a promotion to each stage may start from.
PROMOTE_FROM = {"staging": ("candidate",), "production": ("staging",)}

NO_PASSED_GATE = "no_passed_gate"
NO_SIGNOFF = "no_signoff"
SELF_APPROVAL_ONLY = "self_approval_only"
EVIDENCE_CHANGED = "evidence_changed"


def check_move(ref: str, stage: str, to_stage: str) -> None:
    if to_stage not in PROMOTE_FROM:
        raise RegistryError(f"cannot promote to {to_stage!r}: promote goes to staging or production")
    if stage not in PROMOTE_FROM[to_stage]:
        if stage == to_stage:
            raise RegistryError(f"{ref} is already {stage}")
        raise RegistryError(
            f"{ref} is {stage}; only a {' or '.join(PROMOTE_FROM[to_stage])} version can go to {to_stage}"
            + (" (promote it to staging first)" if to_stage == "production" and stage == "candidate" else "")
        )


@dataclass(frozen=True)
class EvidenceFacts:
    """What is known about a version's evidence right now (gathered by `registry.promotion`)."""

    current_evidence: str | None  # None: no evaluation yet, or the bytes could not be verified
    integrity_problem: str | None = None
    gate_passed: bool | None = None  # None: no gate verdict
    gate_evidence: str | None = None
    signoff_evidence: str | None = None  # the latest sign-off's evidence hash
    review_blocked_by: str | None = None  # the latest batch for the current evidence: why not signed off
    review_reason: str | None = None
    run_by: str | None = None


@dataclass(frozen=True)
class Refusal:
    code: str
    message: str


def promotion_refusals(facts: EvidenceFacts) -> list[Refusal]:
    if facts.integrity_problem:
        return [
            Refusal(EVIDENCE_CHANGED, f"evidence changed since it was recorded: {facts.integrity_problem}")
        ]
    current = facts.current_evidence
    refusals = []
    if current is None:
        refusals.append(
            Refusal(NO_PASSED_GATE, "no passed gate: there is no evaluation yet (run `tunegate eval`)")
        )
    elif facts.gate_passed is None:
        refusals.append(Refusal(NO_PASSED_GATE, "no passed gate: no gate verdict yet (run `tunegate gate`)"))
    elif not facts.gate_passed:
        refusals.append(Refusal(NO_PASSED_GATE, "no passed gate: the latest gate verdict is FAIL"))
    elif facts.gate_evidence != current:
        refusals.append(
            Refusal(
                NO_PASSED_GATE,
                (
                    f"no passed gate for the current evidence: the gate judged {str(facts.gate_evidence)[:12]}, "
                    f"the evidence is now {current[:12]} (re-run `tunegate gate`)"
                ),
            )
        )
    if current is not None and facts.signoff_evidence == current:
        return refusals
    if facts.review_blocked_by == SELF_APPROVAL_ONLY:
        refusals.append(
            Refusal(
                SELF_APPROVAL_ONLY,
                (
                    f"only self-approval: the review's approvals are by {facts.run_by}, who ran the training; "
                    "another reviewer must approve"
                ),
            )
        )
    elif facts.signoff_evidence is not None:
        refusals.append(
            Refusal(
                EVIDENCE_CHANGED,
                (
                    f"evidence changed since approval: the sign-off was for {facts.signoff_evidence[:12]}, "
                    f"the evidence is now {(current or 'unknown')[:12]}; the approval no longer counts "
                    "(open a new review with `tunegate review open`)"
                ),
            )
        )
    else:
        hint = f" (review: {facts.review_reason})" if facts.review_reason else " (run `tunegate review open`)"
        refusals.append(Refusal(NO_SIGNOFF, f"no sign-off{hint}"))
    return refusals
