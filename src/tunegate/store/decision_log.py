"""The decision log: an append-only, hash-chained record of every decision. The one writer of its tables.

Each entry says who (actor), when (recorded_at, UTC ISO-8601), what (action, subject), why (reason),
on which evidence (evidence_sha256) and the details (payload, JSON). Entries are chained:

    entry_hash = sha256(canonical JSON of {v, recorded_at, actor, action, subject, reason,
                                           evidence_sha256, payload, prev_hash})

where canonical JSON is `json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)`
and prev_hash is the previous entry's entry_hash (64 zeros for the first). `seq` numbers entries from 1
and is not hashed: an entry's place is fixed by the chain. A one-row head table holds the last seq and
hash, so deleting entries from the end is caught too. Editing, deleting or reordering an entry breaks
the chain at that entry, which `verify_chain` names. Anyone can re-check an exported JSONL file with
the recipe above; publishing the head hash anchors it.

Appends are serialised by locking the head row (SELECT ... FOR UPDATE on PostgreSQL; SQLite's
BEGIN IMMEDIATE serialises all writers). `append_in` joins a caller's transaction, so a stage change
and its log entry commit together or not at all; callers take the head lock last (after any per-model
lock), which keeps lock order fixed and deadlocks impossible.

This module does not decide anything; it records. It does not prevent a database owner from
rewriting the whole chain consistently: that is what exporting and publishing the head hash is for.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Integer, String, Text, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from tunegate.errors import StoreError
from tunegate.store.metadata import MetadataStore, _Base

GENESIS_HASH = "0" * 64
FORMAT_VERSION = 1
# A closed vocabulary keeps the log queryable; add a name here when a new kind of decision appears.
ACTIONS = (
    "data_check",
    "train",
    "register",
    "eval",
    "gate",
    "review_open",
    "review_decision",
    "signoff",
    "review_rejected",
    "promote",
    "promote_refused",
    "rollback",
    "override",
    "set_stage",
    "incident",
    "user_add",
    "user_revoke",
)


class _LogRow(_Base):
    __tablename__ = "decision_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    recorded_at: Mapped[str] = mapped_column(String(40))  # the exact string that was hashed
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32), index=True)
    subject: Mapped[str] = mapped_column(String(160), index=True)
    reason: Mapped[str] = mapped_column(Text)
    evidence_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    payload: Mapped[str] = mapped_column(Text)  # canonical JSON text
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64), unique=True)


class _HeadRow(_Base):
    __tablename__ = "decision_log_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    entry_hash: Mapped[str] = mapped_column(String(64))


@dataclass(frozen=True)
class DecisionEntry:
    seq: int
    recorded_at: str
    actor: str
    action: str
    subject: str
    reason: str
    evidence_sha256: str | None
    payload: dict[str, Any]
    prev_hash: str
    entry_hash: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, ensure_ascii=True)


@dataclass(frozen=True)
class ChainCheck:
    """The verdict of `verify_chain`: ok, or the first bad entry and what is wrong with it."""

    ok: bool
    entries: int
    head_hash: str
    bad_seq: int | None = None
    problem: str | None = None

    def describe(self) -> str:
        if self.ok:
            return f"ok: {self.entries} entries, chain intact, head {self.head_hash}"
        return f"entry {self.bad_seq}: {self.problem}"


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def compute_entry_hash(
    *,
    recorded_at: str,
    actor: str,
    action: str,
    subject: str,
    reason: str,
    evidence_sha256: str | None,
    payload: dict[str, Any],
    prev_hash: str,
) -> str:
    body = {
        "v": FORMAT_VERSION,
        "recorded_at": recorded_at,
        "actor": actor,
        "action": action,
        "subject": subject,
        "reason": reason,
        "evidence_sha256": evidence_sha256,
        "payload": payload,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def _entry(row: _LogRow) -> DecisionEntry:
    return DecisionEntry(
        seq=row.seq,
        recorded_at=row.recorded_at,
        actor=row.actor,
        action=row.action,
        subject=row.subject,
        reason=row.reason,
        evidence_sha256=row.evidence_sha256,
        payload=json.loads(row.payload),
        prev_hash=row.prev_hash,
        entry_hash=row.entry_hash,
    )


def lock_chain_head(session: Session) -> _HeadRow:
    """Lock (creating if needed) the log head row; writers that must serialise with the log take it."""
    values = {"id": 1, "seq": 0, "entry_hash": GENESIS_HASH}
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(pg_insert(_HeadRow).values(values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        session.execute(sqlite_insert(_HeadRow).values(values).on_conflict_do_nothing())
    elif session.get(_HeadRow, 1) is None:
        session.execute(insert(_HeadRow).values(values))
    head = session.scalars(select(_HeadRow).where(_HeadRow.id == 1).with_for_update()).one()
    return head


def append_in(
    session: Session,
    *,
    actor: str,
    action: str,
    subject: str,
    reason: str = "",
    evidence_sha256: str | None = None,
    payload: dict[str, Any] | None = None,
) -> DecisionEntry:
    """Append one entry inside the caller's transaction (it commits or rolls back with the caller's change)."""
    if action not in ACTIONS:
        raise StoreError(f"unknown decision-log action {action!r}; known: {', '.join(ACTIONS)}")
    if not actor:
        raise StoreError("a decision-log entry needs an actor (who made the decision)")
    # Round-trip through JSON so the stored text, the hashed object and the returned payload agree.
    clean_payload = json.loads(json.dumps(payload or {}, sort_keys=True, default=str))
    head = lock_chain_head(session)
    recorded_at = datetime.now(UTC).isoformat(timespec="microseconds")
    digest = compute_entry_hash(
        recorded_at=recorded_at,
        actor=actor,
        action=action,
        subject=subject,
        reason=reason,
        evidence_sha256=evidence_sha256,
        payload=clean_payload,
        prev_hash=head.entry_hash,
    )
    row = _LogRow(
        seq=head.seq + 1,
        recorded_at=recorded_at,
        actor=actor,
        action=action,
        subject=subject,
        reason=reason,
        evidence_sha256=evidence_sha256,
        payload=canonical_json(clean_payload),
        prev_hash=head.entry_hash,
        entry_hash=digest,
    )
    session.add(row)
    head.seq, head.entry_hash = row.seq, digest
    session.flush()
    return _entry(row)


def append_decision(
    meta: MetadataStore,
    *,
    actor: str,
    action: str,
    subject: str,
    reason: str = "",
    evidence_sha256: str | None = None,
    payload: dict[str, Any] | None = None,
) -> DecisionEntry:
    """Append one entry in its own transaction: the call for the pipeline, serve and monitor."""
    with meta.transaction() as session:
        return append_in(
            session,
            actor=actor,
            action=action,
            subject=subject,
            reason=reason,
            evidence_sha256=evidence_sha256,
            payload=payload,
        )


def read_decisions(
    meta: MetadataStore,
    *,
    subject: str | None = None,
    action: str | None = None,
    since_seq: int = 0,
) -> list[DecisionEntry]:
    with meta.transaction() as session:
        query = select(_LogRow).where(_LogRow.seq > since_seq).order_by(_LogRow.seq)
        if subject is not None:
            query = query.where(_LogRow.subject == subject)
        if action is not None:
            query = query.where(_LogRow.action == action)
        return [_entry(r) for r in session.scalars(query)]


def read_head(meta: MetadataStore) -> tuple[int, str]:
    """(seq, entry_hash) of the last entry, as the head row records it; (0, GENESIS_HASH) when empty."""
    with meta.transaction() as session:
        head = session.get(_HeadRow, 1)
        return (head.seq, head.entry_hash) if head else (0, GENESIS_HASH)


def verify_chain(entries: list[DecisionEntry], head: tuple[int, str] | None = None) -> ChainCheck:
    """Re-hash every entry and follow the chain; name the first entry that was edited, deleted or moved."""
    ordered = sorted(entries, key=lambda e: e.seq)
    seq_of_hash = {e.entry_hash: e.seq for e in ordered}
    expected_prev, expected_seq = GENESIS_HASH, 1
    for e in ordered:
        recomputed = compute_entry_hash(
            recorded_at=e.recorded_at,
            actor=e.actor,
            action=e.action,
            subject=e.subject,
            reason=e.reason,
            evidence_sha256=e.evidence_sha256,
            payload=e.payload,
            prev_hash=e.prev_hash,
        )
        if recomputed != e.entry_hash:
            return _bad(ordered, e.seq, "edited: its contents no longer match its hash")
        if e.prev_hash != expected_prev:
            if e.prev_hash in seq_of_hash:
                return _bad(
                    ordered,
                    e.seq,
                    (
                        f"out of order: in the chain it follows entry {seq_of_hash[e.prev_hash]}, "
                        f"not entry {expected_seq - 1} (entries were swapped or reordered)"
                    ),
                )
            if e.seq > expected_seq:
                missing = (
                    f"entry {expected_seq}"
                    if e.seq == expected_seq + 1
                    else (f"entries {expected_seq}-{e.seq - 1}")
                )
                return _bad(ordered, expected_seq, f"deleted: {missing} missing before entry {e.seq}")
            return _bad(ordered, e.seq, "chain broken: the entry before it was deleted or replaced")
        if e.seq != expected_seq:
            return _bad(ordered, e.seq, f"renumbered: expected seq {expected_seq}")
        expected_prev, expected_seq = e.entry_hash, e.seq + 1
    last_seq = expected_seq - 1
    if head is not None and head != (last_seq, expected_prev):
        if head[0] > last_seq:
            return _bad(
                ordered, last_seq + 1, f"deleted: the log ends at entry {last_seq}, its head says {head[0]}"
            )
        return _bad(ordered, head[0], "the head record does not match the last entry (head or tail edited)")
    return ChainCheck(ok=True, entries=len(ordered), head_hash=expected_prev)


def _bad(ordered: list[DecisionEntry], seq: int, problem: str) -> ChainCheck:
    head_hash = ordered[-1].entry_hash if ordered else GENESIS_HASH
    return ChainCheck(ok=False, entries=len(ordered), head_hash=head_hash, bad_seq=seq, problem=problem)


def export_jsonl(entries: list[DecisionEntry], path: Path) -> int:
    """Write one JSON object per entry (the fields above), in seq order; returns the number written."""
    ordered = sorted(entries, key=lambda e: e.seq)
    path.write_text("".join(e.to_json() + "\n" for e in ordered), encoding="utf-8")
    return len(ordered)


def load_jsonl(path: Path) -> list[DecisionEntry]:
    """Read an exported log back (to verify a published copy without the database)."""
    entries = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            entries.append(DecisionEntry(**raw))
        except (json.JSONDecodeError, TypeError) as exc:
            raise StoreError(f"{path}:{line_no}: not a decision-log entry ({exc})") from exc
    return entries
