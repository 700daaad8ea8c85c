"""The review checkpoint as library calls: open a batch, take the next item, decide, read the status.

These are what the CLI verbs (`tunegate review ...`) and the HTTP API call; each takes the acting
user (`access.Actor`) and checks the role first. A batch reviews one version's *current* evidence:
its artifact tree, the spec it was trained under and its latest evaluation, re-hashed from the bytes
when the batch opens and again when a decision would complete the sign-off. If the evidence has
changed in between, the decision is refused and a new batch must be opened.

The review policy comes from the spec the version was trained under (its lineage), so editing
tunegate.yaml after training cannot loosen the review of that version.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunegate.errors import IntegrityError, ReviewError
from tunegate.review.access import Actor, require
from tunegate.review.policy import BatchVerdict, ReviewPolicy, judge_batch
from tunegate.review.sampling import select_for_review
from tunegate.spec import LoadedSpec
from tunegate.spec.schema import ReviewSpec
from tunegate.store import EvaluationRecord, Store, VersionRecord, current_evidence
from tunegate.store.reviews import (
    BatchRecord,
    DecisionRecord,
    ItemRecord,
    SignoffRecord,
    batch_decisions,
    batch_items,
    batches_for_version,
    create_batch,
    get_batch,
    get_item,
    latest_signoff,
    open_batches,
    record_decision,
)


@dataclass(frozen=True)
class OpenedBatch:
    batch: BatchRecord
    items: list[ItemRecord]
    reused: bool  # an open or signed-off batch for the same evidence already existed


@dataclass(frozen=True)
class ReviewTask:
    batch: BatchRecord
    item: ItemRecord
    decided_by_you: int
    total: int


@dataclass(frozen=True)
class DecisionOutcome:
    decision: DecisionRecord
    batch: BatchRecord
    verdict: BatchVerdict
    signoff: SignoffRecord | None
    counts: bool  # False when the reviewer ran the training and self-approval is not allowed


@dataclass(frozen=True)
class ReviewStatus:
    version: VersionRecord
    batch: BatchRecord | None
    verdict: BatchVerdict | None
    signoff: SignoffRecord | None
    current_evidence_sha256: str | None
    evidence_current: bool | None  # does the latest batch review the evidence as it is now?
    integrity_problem: str | None = None  # a stored byte changed: the evidence cannot be computed


def evidence_now(store: Store, version: VersionRecord) -> tuple[EvaluationRecord | None, str | None]:
    """(latest evaluation, evidence hash re-computed from the bytes); (None, None) before any evaluation.

    Raises IntegrityError when a stored byte no longer matches its address."""
    evaluation = store.meta.latest_evaluation(version.id)
    if evaluation is None:
        return None, None
    evidence = current_evidence(
        store.artifacts, version.artifact_sha256, version.spec_sha256, evaluation.report_sha256
    )
    return evaluation, evidence


def policy_for(version: VersionRecord, spec: LoadedSpec | None = None) -> ReviewPolicy:
    """The review policy of the spec the version was trained under."""
    recorded = version.lineage.get("spec")
    if isinstance(recorded, dict):
        return ReviewPolicy.from_spec(ReviewSpec.model_validate(recorded.get("review") or {}))
    if spec is None:
        raise ReviewError(
            f"{version.ref} has no spec in its lineage: pass the spec it was trained under (--spec)"
        )
    if spec.sha256 != version.spec_sha256:
        raise ReviewError(
            f"{spec.path} is not the spec {version.ref} was trained under "
            f"(sha256 {spec.sha256[:12]} vs {version.spec_sha256[:12]})"
        )
    return ReviewPolicy.from_spec(spec.spec.review)


def _judge(batch: BatchRecord, items: list[ItemRecord], decisions: list[DecisionRecord]) -> BatchVerdict:
    return judge_batch(ReviewPolicy.from_dict(batch.policy), [i.id for i in items], decisions, batch.run_by)


def open_review(store: Store, actor: Actor, ref: str, spec: LoadedSpec | None = None) -> OpenedBatch:
    require(actor, "review")
    version = store.meta.resolve(ref)
    if version.stage == "archived":
        raise ReviewError(f"{version.ref} is archived; there is nothing to sign off")
    evaluation, evidence = evidence_now(store, version)
    if evaluation is None or evidence is None:
        raise ReviewError(
            f"{version.ref} has no evaluation yet: run `tunegate eval` (and `tunegate gate`) first"
        )
    for batch in batches_for_version(store.meta, version.id):
        if batch.evidence_sha256 == evidence and batch.status in ("open", "signed_off"):
            return OpenedBatch(batch, batch_items(store.meta, batch.id), reused=True)
    predictions = evaluation.results.get("predictions")
    if not isinstance(predictions, list) or not predictions:
        raise ReviewError(f"the evaluation of {version.ref} holds no predictions to review")
    policy = policy_for(version, spec)
    items = select_for_review(
        predictions,
        sample_size=policy.sample_size,
        low_confidence_below=policy.low_confidence_below,
        seed=int(evidence[:12], 16),
    )
    if not items:
        raise ReviewError(
            "nothing to review: review.sample_size is 0 and no output is low-confidence or wrong"
        )
    run_by = version.lineage.get("created_by")
    batch = create_batch(
        store.meta,
        version_id=version.id,
        version_ref=version.ref,
        evaluation_id=evaluation.id,
        evidence_sha256=evidence,
        policy=policy.to_dict(),
        run_by=str(run_by) if run_by else None,
        opened_by=actor.name,
        items=items,
    )
    return OpenedBatch(batch, batch_items(store.meta, batch.id), reused=False)


def next_item(store: Store, actor: Actor, ref: str | None = None) -> ReviewTask | None:
    """The first item of an open batch that this reviewer has not decided yet (None: nothing left)."""
    require(actor, "review")
    batches = open_batches(store.meta)
    if ref is not None:
        version = store.meta.resolve(ref)
        batches = [b for b in batches if b.version_id == version.id]
    for batch in batches:
        items = batch_items(store.meta, batch.id)
        mine = {d.item_id for d in batch_decisions(store.meta, batch.id) if d.reviewer == actor.name}
        for item in items:
            if item.id not in mine:
                return ReviewTask(batch, item, decided_by_you=len(mine), total=len(items))
    return None


def decide(store: Store, actor: Actor, item_id: int, approve: bool, comment: str = "") -> DecisionOutcome:
    require(actor, "review")
    item = get_item(store.meta, item_id)
    batch = get_batch(store.meta, item.batch_id)
    if batch.status != "open":
        raise ReviewError(
            f"review batch {batch.id} of {batch.version_ref} is {batch.status}; it takes no decisions"
        )
    # Would this decision complete the sign-off? Then re-hash the evidence first (outside the transaction:
    # hashing a model can take seconds) and refuse if it is no longer what the batch reviewed.
    items = batch_items(store.meta, batch.id)
    so_far = batch_decisions(store.meta, batch.id)
    pretend = DecisionRecord(0, batch.id, item_id, actor.name, approve, comment, batch.opened_at)
    if _judge(batch, items, [*so_far, pretend]).status == "signed_off":
        _, evidence = evidence_now(store, store.meta.get_version(batch.version_id))
        if evidence != batch.evidence_sha256:
            raise ReviewError(
                f"the evidence of {batch.version_ref} changed since batch {batch.id} opened "
                f"({batch.evidence_sha256[:12]} -> {(evidence or 'none')[:12]}): open a new review"
            )

    def judge(
        b: BatchRecord, its: list[ItemRecord], ds: list[DecisionRecord]
    ) -> tuple[str, dict[str, object]]:
        verdict = _judge(b, its, ds)
        return verdict.status, verdict.to_dict()

    decision, after, verdict_dict, signoff = record_decision(
        store.meta,
        item_id=item_id,
        reviewer=actor.name,
        approve=approve,
        comment=comment,
        judge=judge,
    )
    policy = ReviewPolicy.from_dict(batch.policy)
    verdict = BatchVerdict(**{k: v for k, v in verdict_dict.items() if k != "approval_rate"})
    counts = policy.allow_self_approval or batch.run_by is None or actor.name != batch.run_by
    return DecisionOutcome(decision, after, verdict, signoff, counts)


def review_status(store: Store, actor: Actor, ref: str) -> ReviewStatus:
    require(actor, "read")
    version = store.meta.resolve(ref)
    problem = None
    try:
        _, evidence = evidence_now(store, version)
    except IntegrityError as exc:
        evidence, problem = None, str(exc)
    batches = batches_for_version(store.meta, version.id)
    batch = batches[0] if batches else None
    verdict = None
    if batch is not None:
        verdict = _judge(batch, batch_items(store.meta, batch.id), batch_decisions(store.meta, batch.id))
    return ReviewStatus(
        version=version,
        batch=batch,
        verdict=verdict,
        signoff=latest_signoff(store.meta, version.id),
        current_evidence_sha256=evidence,
        evidence_current=None if batch is None else batch.evidence_sha256 == evidence,
        integrity_problem=problem,
    )
