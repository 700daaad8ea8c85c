"""Registry stage changes, each atomic with its decision-log entry: the one writer of `model_versions.stage`.

Tables
    registry_heads   one row per model name: the lock every stage change of that model takes, and
                     the production history (version ids that were production before the current one,
                     oldest first) that `rollback` pops

Every function here runs one transaction that (1) locks the model's head row (SELECT ... FOR UPDATE on
PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers), (2) checks the state the caller
decided on is still the state now (compare-and-set: a concurrent command makes this one fail rather
than act on stale facts), (3) changes stages, demoting the old production version before the new one
arrives, and (4) appends the decision-log entry whose payload lists the changes. A killed process
leaves either all of it or none of it, so replaying the log always reproduces the stages.

A partial unique index on model_versions (name WHERE stage = 'production') makes a second production
version impossible even for a writer that bypasses this module.

Who may do what, and whether the evidence allows it, is decided in `tunegate.registry`, not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, String, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from tunegate.errors import RegistryError
from tunegate.store.decision_log import DecisionEntry, append_in
from tunegate.store.metadata import STAGES, MetadataStore, VersionRecord, _Base, _version, _VersionRow


class _RegistryHeadRow(_Base):
    __tablename__ = "registry_heads"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    production_history: Mapped[list[int]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class StageChange:
    ref: str
    version_id: int
    from_stage: str | None
    to_stage: str

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "version_id": self.version_id, "from": self.from_stage, "to": self.to_stage}


@dataclass(frozen=True)
class Transition:
    """What one lifecycle command changed, and the log entries that record it (last one carries `changes`)."""

    version: VersionRecord
    changes: list[StageChange]
    entries: list[DecisionEntry]


def _locked_head(session: Session, name: str) -> _RegistryHeadRow:
    values = {"name": name, "production_history": [], "updated_at": datetime.now(UTC)}
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(pg_insert(_RegistryHeadRow).values(values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        session.execute(sqlite_insert(_RegistryHeadRow).values(values).on_conflict_do_nothing())
    elif session.get(_RegistryHeadRow, name) is None:
        session.execute(insert(_RegistryHeadRow).values(values))
    return session.scalars(
        select(_RegistryHeadRow).where(_RegistryHeadRow.name == name).with_for_update()
    ).one()


def _ref(row: _VersionRow) -> str:
    return f"{row.name}@{row.version}"


def _set(session: Session, row: _VersionRow, stage: str, changes: list[StageChange]) -> None:
    changes.append(StageChange(_ref(row), row.id, row.stage, stage))
    row.stage = stage
    session.flush()  # one statement per change, in order: the old production leaves before the new arrives


def _move(session: Session, head: _RegistryHeadRow, row: _VersionRow, stage: str) -> list[StageChange]:
    changes: list[StageChange] = []
    history = [vid for vid in head.production_history if vid != row.id]
    if stage == "production":
        current = session.scalars(
            select(_VersionRow)
            .where(_VersionRow.name == row.name, _VersionRow.stage == "production")
            .with_for_update(key_share=True)
        ).first()
        if current is not None and current.id != row.id:
            _set(session, current, "archived", changes)
            history.append(current.id)
    _set(session, row, stage, changes)
    head.production_history = history  # a new list, so the JSON column is seen as changed
    head.updated_at = datetime.now(UTC)
    return changes


def _locked_version(session: Session, version_id: int) -> _VersionRow:
    # FOR NO KEY UPDATE on PostgreSQL: unlike FOR UPDATE it does not block the FOR KEY SHARE lock that
    # inserting a row referencing this version takes (an evaluation, a gate, a sign-off).
    row = session.scalars(
        select(_VersionRow).where(_VersionRow.id == version_id).with_for_update(key_share=True)
    ).first()
    if row is None:
        raise RegistryError(f"no version with id {version_id}")
    return row


def register_logged(
    meta: MetadataStore,
    *,
    name: str,
    task: str,
    artifact_sha256: str,
    spec_sha256: str,
    data_fingerprint: str,
    lineage: dict[str, Any],
    actor: str,
    reason: str = "",
    payload: dict[str, Any] | None = None,
) -> Transition:
    """A new candidate version and its `register` log entry, in one transaction."""
    with meta.transaction() as session:
        _locked_head(session, name)  # serialises version numbering per model on PostgreSQL too
        version = meta.register_version(
            name=name,
            task=task,
            artifact_sha256=artifact_sha256,
            spec_sha256=spec_sha256,
            data_fingerprint=data_fingerprint,
            lineage=lineage,
            session=session,
        )
        change = StageChange(version.ref, version.id, None, "candidate")
        entry = append_in(
            session,
            actor=actor,
            action="register",
            subject=version.ref,
            reason=reason,
            payload={
                **(payload or {}),
                "artifact_sha256": artifact_sha256,
                "spec_sha256": spec_sha256,
                "data_fingerprint": data_fingerprint,
                "changes": [change.to_dict()],
            },
        )
        return Transition(version, [change], [entry])


def move_stage(
    meta: MetadataStore,
    *,
    version_id: int,
    expected_stage: str | None,
    to_stage: str,
    actor: str,
    action: str,
    reason: str,
    evidence_sha256: str | None = None,
    payload: dict[str, Any] | None = None,
    preceding: list[dict[str, Any]] | None = None,
) -> Transition:
    """Move a version to `to_stage` if it is still at `expected_stage` (None: whatever it is now).

    `preceding` are extra log entries (keyword arguments of `append_in`) written first in the same
    transaction: an override entry before the promotion it allowed.
    """
    if to_stage not in STAGES:
        raise RegistryError(f"unknown stage {to_stage!r}; stages are {', '.join(STAGES)}")
    with meta.transaction() as session:
        name = session.scalar(select(_VersionRow.name).where(_VersionRow.id == version_id))
        if name is None:
            raise RegistryError(f"no version with id {version_id}")
        head = _locked_head(session, name)
        row = _locked_version(session, version_id)
        if expected_stage is not None and row.stage != expected_stage:
            raise RegistryError(
                f"{_ref(row)} is {row.stage} now, not {expected_stage}: another command changed it; "
                "check `tunegate models list` and try again"
            )
        changes = _move(session, head, row, to_stage)
        entries = [append_in(session, **extra) for extra in preceding or []]
        entries.append(
            append_in(
                session,
                actor=actor,
                action=action,
                subject=_ref(row),
                reason=reason,
                evidence_sha256=evidence_sha256,
                payload={**(payload or {}), "changes": [c.to_dict() for c in changes]},
            )
        )
        return Transition(_version(row), changes, entries)


def rollback_production(
    meta: MetadataStore,
    *,
    name: str,
    expected_production_id: int,
    expected_target_id: int,
    actor: str,
    reason: str,
    payload: dict[str, Any] | None = None,
) -> Transition:
    """Production goes back to the version that was production before it, in one step."""
    with meta.transaction() as session:
        head = _locked_head(session, name)
        current = session.scalars(
            select(_VersionRow)
            .where(_VersionRow.name == name, _VersionRow.stage == "production")
            .with_for_update(key_share=True)
        ).first()
        history = list(head.production_history)
        if (
            current is None
            or current.id != expected_production_id
            or not history
            or history[-1] != expected_target_id
        ):
            raise RegistryError(f"the production version of {name} changed while rolling back; try again")
        target = _locked_version(session, expected_target_id)
        changes: list[StageChange] = []
        _set(session, current, "archived", changes)
        _set(session, target, "production", changes)
        head.production_history = history[:-1]
        head.updated_at = datetime.now(UTC)
        entry = append_in(
            session,
            actor=actor,
            action="rollback",
            subject=name,
            reason=reason,
            payload={
                **(payload or {}),
                "from": _ref(current),
                "to": _ref(target),
                "changes": [c.to_dict() for c in changes],
            },
        )
        return Transition(_version(target), changes, [entry])


def force_stage(
    meta: MetadataStore, version_id: int, stage: str, *, actor: str, reason: str
) -> VersionRecord:
    """Set a stage with no policy check (tests, repair); still one production per model, still logged."""
    return move_stage(
        meta,
        version_id=version_id,
        expected_stage=None,
        to_stage=stage,
        actor=actor,
        action="set_stage",
        reason=reason,
    ).version


def production_history(meta: MetadataStore, name: str) -> list[int]:
    """Version ids that were production before the current one, oldest first (rollback pops the last)."""
    with meta.transaction() as session:
        head = session.get(_RegistryHeadRow, name)
        return list(head.production_history) if head else []
