"""The metadata database (SQLite by default, PostgreSQL for teams): the one module that writes it.

Tables
    model_versions   one row per registered version: lineage, artifact address, lifecycle stage
    evaluations      evaluation results of a version (the JSON twin lives in the artifact store)
    gates            gate verdicts, bound to the evidence hash they judged

Readers get frozen dataclasses, never live ORM objects, so nothing outside this module can write
through a session by accident. Lifecycle rules (who may promote what) live in `registry/`; stage
changes are written by `store.lifecycle` (with their decision-log entry, in one transaction), and
`set_stage` here forwards to it. The schema is created and migrated by `store.migrate` (Alembic).

On SQLite every transaction begins IMMEDIATE: it takes the database's single write lock up front, so
a read-then-write (the next version number, the current production version) cannot interleave with
another process's write; busy_timeout makes the other process wait instead of failing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from tunegate.errors import RegistryError
from tunegate.store.migrate import ensure_schema

STAGES = ("candidate", "staging", "production", "archived")


class _Base(DeclarativeBase):
    pass


class _VersionRow(_Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("name", "version"),
        # The database itself refuses a second production version of a model (see docs/governance.md).
        Index(
            "uq_model_versions_one_production",
            "name",
            unique=True,
            sqlite_where=text("stage = 'production'"),
            postgresql_where=text("stage = 'production'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer)
    task: Mapped[str] = mapped_column(String(32))
    stage: Mapped[str] = mapped_column(String(16), default="candidate")
    artifact_sha256: Mapped[str] = mapped_column(String(64))
    spec_sha256: Mapped[str] = mapped_column(String(64))
    data_fingerprint: Mapped[str] = mapped_column(String(64))
    lineage: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class _EvaluationRow(_Base):
    __tablename__ = "evaluations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), index=True)
    results: Mapped[dict[str, Any]] = mapped_column(JSON)
    report_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class _GateRow(_Base):
    __tablename__ = "gates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), index=True)
    evaluation_id: Mapped[int] = mapped_column(ForeignKey("evaluations.id"))
    passed: Mapped[bool] = mapped_column(Boolean)
    verdict: Mapped[dict[str, Any]] = mapped_column(JSON)
    evidence_sha256: Mapped[str] = mapped_column(String(64))
    report_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class VersionRecord:
    id: int
    name: str
    version: int
    task: str
    stage: str
    artifact_sha256: str
    spec_sha256: str
    data_fingerprint: str
    lineage: dict[str, Any]
    created_at: datetime

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class EvaluationRecord:
    id: int
    version_id: int
    results: dict[str, Any]
    report_sha256: str
    created_at: datetime


@dataclass(frozen=True)
class GateRecord:
    id: int
    version_id: int
    evaluation_id: int
    passed: bool
    verdict: dict[str, Any]
    evidence_sha256: str
    report_sha256: str
    created_at: datetime


def _now() -> datetime:
    return datetime.now(UTC)


def _version(row: _VersionRow) -> VersionRecord:
    return VersionRecord(
        id=row.id,
        name=row.name,
        version=row.version,
        task=row.task,
        stage=row.stage,
        artifact_sha256=row.artifact_sha256,
        spec_sha256=row.spec_sha256,
        data_fingerprint=row.data_fingerprint,
        lineage=dict(row.lineage),
        created_at=row.created_at,
    )


def _evaluation(row: _EvaluationRow) -> EvaluationRecord:
    return EvaluationRecord(row.id, row.version_id, dict(row.results), row.report_sha256, row.created_at)


def _gate(row: _GateRow) -> GateRecord:
    return GateRecord(
        row.id,
        row.version_id,
        row.evaluation_id,
        row.passed,
        dict(row.verdict),
        row.evidence_sha256,
        row.report_sha256,
        row.created_at,
    )


_REF = re.compile(r"^(?P<name>[a-z0-9][a-z0-9._-]*)(?:@(?P<tag>\d+|candidate|staging|production|latest))?$")


class MetadataStore:
    def __init__(self, database_url: str) -> None:
        self.engine = create_engine(database_url, json_serializer=lambda v: json.dumps(v, sort_keys=True))
        if database_url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin_immediate)
        ensure_schema(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    @contextmanager
    def transaction(self, session: Session | None = None) -> Iterator[Session]:
        """For the store's writer modules only: one transaction spanning their tables, or join `session`."""
        if session is not None:
            yield session
            return
        with self._tx() as s:
            yield s

    # -- versions ---------------------------------------------------------------------------------

    def register_version(
        self,
        *,
        name: str,
        task: str,
        artifact_sha256: str,
        spec_sha256: str,
        data_fingerprint: str,
        lineage: dict[str, Any],
        session: Session | None = None,
        actor: str | None = None,
    ) -> VersionRecord:
        """Add a candidate version, with its `register` decision-log entry in the same transaction.

        Without `session` this goes through `store.lifecycle.register_logged` (model lock + log entry;
        the actor defaults to lineage["created_by"]), which calls back here with its `session`.
        """
        if session is None:
            # Imported late: lifecycle imports this module.
            from tunegate.store.lifecycle import register_logged

            return register_logged(
                self,
                name=name,
                task=task,
                artifact_sha256=artifact_sha256,
                spec_sha256=spec_sha256,
                data_fingerprint=data_fingerprint,
                lineage=lineage,
                actor=actor or str(lineage.get("created_by") or "unknown"),
            ).version
        with self.transaction(session) as s:
            latest = s.scalar(select(func.max(_VersionRow.version)).where(_VersionRow.name == name)) or 0
            row = _VersionRow(
                name=name,
                version=latest + 1,
                task=task,
                stage="candidate",
                artifact_sha256=artifact_sha256,
                spec_sha256=spec_sha256,
                data_fingerprint=data_fingerprint,
                lineage=lineage,
                created_at=_now(),
            )
            s.add(row)
            s.flush()
            return _version(row)

    def resolve(self, ref: str) -> VersionRecord:
        """`name` (latest), `name@3`, `name@production`, `name@staging`, `name@candidate` (newest)."""
        match = _REF.match(ref.strip())
        if not match:
            raise RegistryError(
                f"{ref!r} is not a version reference (expected name, name@3 or name@production)"
            )
        name, tag = match["name"], match["tag"] or "latest"
        with self._tx() as s:
            query = select(_VersionRow).where(_VersionRow.name == name)
            if tag.isdigit():
                query = query.where(_VersionRow.version == int(tag))
            elif tag != "latest":
                query = query.where(_VersionRow.stage == tag)
            row = s.scalars(query.order_by(_VersionRow.version.desc()).limit(1)).first()
            if row is None:
                known = s.scalars(select(_VersionRow.name).distinct()).all()
                hint = f"; known models: {', '.join(sorted(known))}" if known else "; the registry is empty"
                raise RegistryError(f"no version matches {ref!r}{hint}")
            return _version(row)

    def get_version(self, version_id: int) -> VersionRecord:
        with self._tx() as s:
            row = s.get(_VersionRow, version_id)
            if row is None:
                raise RegistryError(f"no version with id {version_id}")
            return _version(row)

    def list_versions(self, name: str | None = None) -> list[VersionRecord]:
        with self._tx() as s:
            query = select(_VersionRow).order_by(_VersionRow.name, _VersionRow.version)
            if name:
                query = query.where(_VersionRow.name == name)
            return [_version(r) for r in s.scalars(query)]

    def set_stage(self, version_id: int, stage: str) -> VersionRecord:
        """Unchecked stage change (tests, repair), logged; promotion and rollback use `tunegate.registry`."""
        from tunegate.store.lifecycle import force_stage  # the one writer of stages; imported late (cycle)

        return force_stage(self, version_id, stage, actor="system", reason="MetadataStore.set_stage")

    # -- evaluations and gates --------------------------------------------------------------------

    def add_evaluation(
        self, version_id: int, results: dict[str, Any], report_sha256: str
    ) -> EvaluationRecord:
        with self._tx() as s:
            row = _EvaluationRow(
                version_id=version_id, results=results, report_sha256=report_sha256, created_at=_now()
            )
            s.add(row)
            s.flush()
            return _evaluation(row)

    def latest_evaluation(self, version_id: int) -> EvaluationRecord | None:
        with self._tx() as s:
            row = s.scalars(
                select(_EvaluationRow)
                .where(_EvaluationRow.version_id == version_id)
                .order_by(_EvaluationRow.id.desc())
                .limit(1)
            ).first()
            return _evaluation(row) if row else None

    def add_gate(
        self,
        *,
        version_id: int,
        evaluation_id: int,
        passed: bool,
        verdict: dict[str, Any],
        evidence_sha256: str,
        report_sha256: str,
    ) -> GateRecord:
        with self._tx() as s:
            row = _GateRow(
                version_id=version_id,
                evaluation_id=evaluation_id,
                passed=passed,
                verdict=verdict,
                evidence_sha256=evidence_sha256,
                report_sha256=report_sha256,
                created_at=_now(),
            )
            s.add(row)
            s.flush()
            return _gate(row)

    def latest_gate(self, version_id: int) -> GateRecord | None:
        with self._tx() as s:
            row = s.scalars(
                select(_GateRow)
                .where(_GateRow.version_id == version_id)
                .order_by(_GateRow.id.desc())
                .limit(1)
            ).first()
            return _gate(row) if row else None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside one writer; busy_timeout makes concurrent CLI commands wait, not fail.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    # Hand transaction control to SQLAlchemy (the "begin" listener below); the sqlite3 module's own
    # implicit BEGIN is deferred and skips SELECTs, which breaks read-then-write atomicity.
    dbapi_connection.isolation_level = None


def _sqlite_begin_immediate(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")
