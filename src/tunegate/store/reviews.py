"""Review batches, reviewers' decisions and sign-offs: the one writer of the review tables.

Tables
    review_batches    one per review of one version's evidence: the policy in force, who ran the
                      training (for the no-self-approval rule), the evidence hash it reviews, its status
                      (open, signed_off, rejected, superseded)
    review_items      the evaluation outputs a person must look at, with why each was chosen
    review_decisions  every approve / reject with its comment; a reviewer's latest decision on an item
                      is the one that counts, earlier ones stay as history
    signoffs          a batch whose policy is satisfied, bound to the evidence hash it reviewed

A decision, the batch's resulting status, a sign-off and their log entries commit together. Whether a
batch is signed off is decided by the `judge` the caller passes (review.policy), a pure function run
inside the transaction on the decisions as they are now, so two reviewers deciding at once cannot both
miss (or both write) the sign-off.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from tunegate.errors import ReviewError
from tunegate.store.decision_log import append_in
from tunegate.store.metadata import MetadataStore, _Base


class _BatchRow(_Base):
    __tablename__ = "review_batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), index=True)
    version_ref: Mapped[str] = mapped_column(String(80))
    evaluation_id: Mapped[int] = mapped_column(ForeignKey("evaluations.id"))
    evidence_sha256: Mapped[str] = mapped_column(String(64))
    policy: Mapped[dict[str, Any]] = mapped_column(JSON)
    run_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    opened_by: Mapped[str] = mapped_column(String(64))
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class _ItemRow(_Base):
    __tablename__ = "review_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("review_batches.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    reasons: Mapped[list[str]] = mapped_column(JSON)
    text: Mapped[str] = mapped_column(Text)
    label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    predicted: Mapped[str] = mapped_column(String(200))
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)


class _DecisionRow(_Base):
    __tablename__ = "review_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("review_batches.id"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("review_items.id"), index=True)
    reviewer: Mapped[str] = mapped_column(String(64))
    approve: Mapped[bool] = mapped_column(Boolean)
    comment: Mapped[str] = mapped_column(Text)
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class _SignoffRow(_Base):
    __tablename__ = "signoffs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("review_batches.id"), unique=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), index=True)
    evidence_sha256: Mapped[str] = mapped_column(String(64))
    approvers: Mapped[list[str]] = mapped_column(JSON)
    verdict: Mapped[dict[str, Any]] = mapped_column(JSON)
    signed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class BatchRecord:
    id: int
    version_id: int
    version_ref: str
    evaluation_id: int
    evidence_sha256: str
    policy: dict[str, Any]
    run_by: str | None
    opened_by: str
    opened_at: datetime
    status: str
    closed_at: datetime | None


@dataclass(frozen=True)
class ItemRecord:
    id: int
    batch_id: int
    position: int
    reasons: list[str]
    text: str
    label: str | None
    predicted: str
    confidence: float | None


@dataclass(frozen=True)
class DecisionRecord:
    id: int
    batch_id: int
    item_id: int
    reviewer: str
    approve: bool
    comment: str
    decided_at: datetime


@dataclass(frozen=True)
class SignoffRecord:
    id: int
    batch_id: int
    version_id: int
    evidence_sha256: str
    approvers: list[str]
    verdict: dict[str, Any]
    signed_at: datetime


# judge(batch, items, decisions) -> (status, verdict as JSON): status is "pending", "signed_off" or "rejected".
Judge = Callable[[BatchRecord, list[ItemRecord], list[DecisionRecord]], tuple[str, dict[str, Any]]]


def _batch(r: _BatchRow) -> BatchRecord:
    return BatchRecord(
        r.id,
        r.version_id,
        r.version_ref,
        r.evaluation_id,
        r.evidence_sha256,
        dict(r.policy),
        r.run_by,
        r.opened_by,
        r.opened_at,
        r.status,
        r.closed_at,
    )


def _item(r: _ItemRow) -> ItemRecord:
    return ItemRecord(
        r.id, r.batch_id, r.position, list(r.reasons), r.text, r.label, r.predicted, r.confidence
    )


def _decision(r: _DecisionRow) -> DecisionRecord:
    return DecisionRecord(r.id, r.batch_id, r.item_id, r.reviewer, r.approve, r.comment, r.decided_at)


def _signoff(r: _SignoffRow) -> SignoffRecord:
    return SignoffRecord(
        r.id, r.batch_id, r.version_id, r.evidence_sha256, list(r.approvers), dict(r.verdict), r.signed_at
    )


def create_batch(
    meta: MetadataStore,
    *,
    version_id: int,
    version_ref: str,
    evaluation_id: int,
    evidence_sha256: str,
    policy: dict[str, Any],
    run_by: str | None,
    opened_by: str,
    items: list[dict[str, Any]],
) -> BatchRecord:
    """Open a batch (items: dicts with reasons, text, label, predicted, confidence); earlier open
    batches of the same version are superseded."""
    now = datetime.now(UTC)
    with meta.transaction() as session:
        for old in session.scalars(
            select(_BatchRow).where(_BatchRow.version_id == version_id, _BatchRow.status == "open")
        ):
            old.status, old.closed_at = "superseded", now
        row = _BatchRow(
            version_id=version_id,
            version_ref=version_ref,
            evaluation_id=evaluation_id,
            evidence_sha256=evidence_sha256,
            policy=policy,
            run_by=run_by,
            opened_by=opened_by,
            opened_at=now,
            status="open",
        )
        session.add(row)
        session.flush()
        for position, item in enumerate(items):
            session.add(_ItemRow(batch_id=row.id, position=position, **item))
        session.flush()
        append_in(
            session,
            actor=opened_by,
            action="review_open",
            subject=version_ref,
            evidence_sha256=evidence_sha256,
            payload={"batch_id": row.id, "items": len(items), "policy": policy, "run_by": run_by},
        )
        return _batch(row)


def record_decision(
    meta: MetadataStore,
    *,
    item_id: int,
    reviewer: str,
    approve: bool,
    comment: str,
    judge: Judge,
) -> tuple[DecisionRecord, BatchRecord, dict[str, Any], SignoffRecord | None]:
    """Store one decision and apply the judge's verdict; returns (decision, batch after, verdict, sign-off)."""
    now = datetime.now(UTC)
    with meta.transaction() as session:
        item = session.get(_ItemRow, item_id)
        if item is None:
            raise ReviewError(f"no review item {item_id} (see `tunegate review next`)")
        batch = session.scalars(
            select(_BatchRow).where(_BatchRow.id == item.batch_id).with_for_update()
        ).one()
        if batch.status != "open":
            raise ReviewError(
                f"review batch {batch.id} of {batch.version_ref} is {batch.status}; it takes no decisions"
            )
        row = _DecisionRow(
            batch_id=batch.id,
            item_id=item_id,
            reviewer=reviewer,
            approve=approve,
            comment=comment,
            decided_at=now,
        )
        session.add(row)
        session.flush()
        status, verdict = judge(_batch(batch), _items(session, batch.id), _decisions(session, batch.id))
        signoff = None
        if status in ("signed_off", "rejected"):
            batch.status, batch.closed_at = status, now
        if status == "signed_off":
            signoff_row = _SignoffRow(
                batch_id=batch.id,
                version_id=batch.version_id,
                evidence_sha256=batch.evidence_sha256,
                approvers=list(verdict.get("eligible_reviewers", [])),
                verdict=verdict,
                signed_at=now,
            )
            session.add(signoff_row)
            session.flush()
            signoff = _signoff(signoff_row)
        # The log entries come last: a transaction holding the log head lock must wait for nothing else.
        append_in(
            session,
            actor=reviewer,
            action="review_decision",
            subject=batch.version_ref,
            reason=comment,
            evidence_sha256=batch.evidence_sha256,
            payload={
                "batch_id": batch.id,
                "item_id": item_id,
                "decision": "approve" if approve else "reject",
            },
        )
        if status in ("signed_off", "rejected"):
            append_in(
                session,
                actor=reviewer,
                action="signoff" if status == "signed_off" else "review_rejected",
                subject=batch.version_ref,
                reason="the review policy is satisfied" if signoff else str(verdict.get("reason", "")),
                evidence_sha256=batch.evidence_sha256,
                payload={"batch_id": batch.id, "verdict": verdict},
            )
        session.flush()
        return _decision(row), _batch(batch), verdict, signoff


def _items(session: Session, batch_id: int) -> list[ItemRecord]:
    return [
        _item(r)
        for r in session.scalars(
            select(_ItemRow).where(_ItemRow.batch_id == batch_id).order_by(_ItemRow.position)
        )
    ]


def _decisions(session: Session, batch_id: int) -> list[DecisionRecord]:
    return [
        _decision(r)
        for r in session.scalars(
            select(_DecisionRow).where(_DecisionRow.batch_id == batch_id).order_by(_DecisionRow.id)
        )
    ]


def get_batch(meta: MetadataStore, batch_id: int) -> BatchRecord:
    with meta.transaction() as session:
        row = session.get(_BatchRow, batch_id)
        if row is None:
            raise ReviewError(f"no review batch {batch_id}")
        return _batch(row)


def batches_for_version(meta: MetadataStore, version_id: int) -> list[BatchRecord]:
    """Newest first."""
    with meta.transaction() as session:
        return [
            _batch(r)
            for r in session.scalars(
                select(_BatchRow).where(_BatchRow.version_id == version_id).order_by(_BatchRow.id.desc())
            )
        ]


def open_batches(meta: MetadataStore) -> list[BatchRecord]:
    with meta.transaction() as session:
        return [
            _batch(r)
            for r in session.scalars(
                select(_BatchRow).where(_BatchRow.status == "open").order_by(_BatchRow.id)
            )
        ]


def batch_items(meta: MetadataStore, batch_id: int) -> list[ItemRecord]:
    with meta.transaction() as session:
        return _items(session, batch_id)


def batch_decisions(meta: MetadataStore, batch_id: int) -> list[DecisionRecord]:
    with meta.transaction() as session:
        return _decisions(session, batch_id)


def get_item(meta: MetadataStore, item_id: int) -> ItemRecord:
    with meta.transaction() as session:
        row = session.get(_ItemRow, item_id)
        if row is None:
            raise ReviewError(f"no review item {item_id} (see `tunegate review next`)")
        return _item(row)


def latest_signoff(meta: MetadataStore, version_id: int) -> SignoffRecord | None:
    with meta.transaction() as session:
        row = session.scalars(
            select(_SignoffRow)
            .where(_SignoffRow.version_id == version_id)
            .order_by(_SignoffRow.id.desc())
            .limit(1)
        ).first()
        return _signoff(row) if row else None
