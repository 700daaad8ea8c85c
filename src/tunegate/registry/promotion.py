"""Register, promote and roll back: the library calls behind `tunegate promote` and `tunegate rollback`.

Each call checks the actor's role, gathers the facts (re-hashing the evidence from the bytes, which
is slow, so it happens before any lock is taken), decides with the pure rules in `registry.rules`,
and hands the change to `store.lifecycle`, which re-checks the version's stage under the model's
lock and commits the stage change and its decision-log entry together.

A refused promotion changes nothing in the registry; it is logged (promote_refused) so the record
shows who tried. An override is logged as its own `override` entry, with the reason and the refusals
it overrode, immediately before the `promote` entry, in the same transaction.
"""

from __future__ import annotations

from typing import Any

from tunegate.errors import IntegrityError, PromotionRefused, RegistryError
from tunegate.registry.rules import EvidenceFacts, check_move, promotion_refusals
from tunegate.review.access import Actor, require
from tunegate.review.checkpoint import evidence_now
from tunegate.review.policy import ReviewPolicy, judge_batch
from tunegate.store import Store, VersionRecord
from tunegate.store.decision_log import append_decision
from tunegate.store.lifecycle import (
    Transition,
    move_stage,
    production_history,
    register_logged,
    rollback_production,
)
from tunegate.store.reviews import batch_decisions, batch_items, batches_for_version, latest_signoff


def register_candidate(
    store: Store,
    *,
    actor: str,
    name: str,
    task: str,
    artifact_sha256: str,
    spec_sha256: str,
    data_fingerprint: str,
    lineage: dict[str, Any],
    reason: str = "",
    payload: dict[str, Any] | None = None,
) -> VersionRecord:
    """A new candidate version and its `register` log entry, atomically (what the train step calls)."""
    if not store.artifacts.exists(artifact_sha256):
        raise RegistryError(
            f"artifact {artifact_sha256[:12]} is not in the store: store it before registering"
        )
    return register_logged(
        store.meta,
        name=name,
        task=task,
        artifact_sha256=artifact_sha256,
        spec_sha256=spec_sha256,
        data_fingerprint=data_fingerprint,
        lineage=lineage,
        actor=actor,
        reason=reason,
        payload=payload,
    ).version


def evidence_facts(store: Store, version: VersionRecord) -> EvidenceFacts:
    try:
        _, evidence = evidence_now(store, version)
    except IntegrityError as exc:
        return EvidenceFacts(current_evidence=None, integrity_problem=str(exc))
    gate = store.meta.latest_gate(version.id)
    signoff = latest_signoff(store.meta, version.id)
    blocked_by = reason = run_by = None
    for batch in batches_for_version(store.meta, version.id):
        if batch.evidence_sha256 == evidence:
            verdict = judge_batch(
                ReviewPolicy.from_dict(batch.policy),
                [i.id for i in batch_items(store.meta, batch.id)],
                batch_decisions(store.meta, batch.id),
                batch.run_by,
            )
            blocked_by, reason, run_by = verdict.blocked_by, verdict.reason, batch.run_by
            break
    return EvidenceFacts(
        current_evidence=evidence,
        gate_passed=None if gate is None else gate.passed,
        gate_evidence=None if gate is None else gate.evidence_sha256,
        signoff_evidence=None if signoff is None else signoff.evidence_sha256,
        review_blocked_by=blocked_by,
        review_reason=reason,
        run_by=run_by,
    )


def promote(
    store: Store, actor: Actor, ref: str, to_stage: str, *, override: bool = False, reason: str = ""
) -> Transition:
    require(actor, "promote")
    if override:
        require(actor, "override")
        if not reason.strip():
            raise RegistryError('an override needs a written reason (--reason "...")')
    version = store.meta.resolve(ref)
    check_move(version.ref, version.stage, to_stage)
    facts = evidence_facts(store, version)
    refusals = promotion_refusals(facts)
    preceding = []
    if refusals:
        message = f"promotion of {version.ref} to {to_stage} refused: " + "; ".join(
            r.message for r in refusals
        )
        codes = [r.code for r in refusals]
        if not override or facts.integrity_problem:
            if override:
                message += " (an override cannot promote bytes that no longer match what was evaluated)"
            append_decision(
                store.meta,
                actor=actor.name,
                action="promote_refused",
                subject=version.ref,
                reason=message,
                evidence_sha256=facts.current_evidence,
                payload={"to": to_stage, "reasons": codes},
            )
            raise PromotionRefused(message, codes)
        preceding.append(
            {
                "actor": actor.name,
                "action": "override",
                "subject": version.ref,
                "reason": reason,
                "evidence_sha256": facts.current_evidence,
                "payload": {"to": to_stage, "overridden": codes, "refusals": [r.message for r in refusals]},
            }
        )
    return move_stage(
        store.meta,
        version_id=version.id,
        expected_stage=version.stage,
        to_stage=to_stage,
        actor=actor.name,
        action="promote",
        reason=reason or "passed gate and sign-off on the current evidence",
        evidence_sha256=facts.current_evidence,
        payload={"to": to_stage, "override": bool(refusals)},
        preceding=preceding,
    )


def rollback(store: Store, actor: Actor, name: str, reason: str = "") -> Transition:
    """Production goes back to the previous production version, in one step (its bytes re-verified first)."""
    require(actor, "rollback")
    name = name.split("@", 1)[0]
    current = store.meta.resolve(f"{name}@production")  # RegistryError names the known models
    history = production_history(store.meta, name)
    if not history:
        raise RegistryError(
            f"{current.ref} is the first production version of {name}: nothing to roll back to"
        )
    target = store.meta.get_version(history[-1])
    try:
        store.artifacts.verify_tree(target.artifact_sha256)
    except IntegrityError as exc:
        raise RegistryError(f"cannot roll back to {target.ref}: {exc}") from exc
    return rollback_production(
        store.meta,
        name=name,
        expected_production_id=current.id,
        expected_target_id=target.id,
        actor=actor.name,
        reason=reason or "rollback",
    )
