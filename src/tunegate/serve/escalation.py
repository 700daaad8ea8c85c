"""The human-signal tables the server writes: escalated outputs awaiting review, and user feedback.

    serve_escalations   an output under the spec's confidence threshold: request id, model version,
                        the input with personal data masked, the output, the signal and its value
    serve_feedback      what a user said about a response: request id, correct or not, a label, a comment

This module is the one writer of both tables (in the workspace database, beside the registry, so the
review queue and the dashboard can read them). Writes happen on one background thread, in small
transactions, so a burst of low-confidence answers never stalls the event loop or a request.
Deciding *whether* to escalate is `needs_review` (a pure function); reviewing is review/'s job.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, String, Text, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from tunegate.data.pii import redact

log = logging.getLogger("tunegate.serve")


class _Base(DeclarativeBase):
    pass


class _EscalationRow(_Base):
    __tablename__ = "serve_escalations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    model_ref: Mapped[str] = mapped_column(String(80), index=True)
    endpoint: Mapped[str] = mapped_column(String(32))
    input_redacted: Mapped[str] = mapped_column(Text)
    output: Mapped[dict[str, Any]] = mapped_column(JSON)
    signal: Mapped[str] = mapped_column(String(32))  # "confidence" | "mean_logprob"
    value: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class _FeedbackRow(_Base):
    __tablename__ = "serve_feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    model_ref: Mapped[str | None] = mapped_column(String(80), nullable=True)
    correct: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    comment_redacted: Mapped[str | None] = mapped_column(Text, nullable=True)
    user: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class Escalation:
    id: int
    request_id: str
    model_ref: str
    endpoint: str
    input_redacted: str
    output: dict[str, Any]
    signal: str
    value: float
    threshold: float
    status: str
    created_at: datetime


def needs_review(value: float, threshold: float) -> bool:
    """An output is escalated when its signal is strictly below the spec's threshold."""
    return value < threshold


class HumanSignals:
    """Queue escalations and feedback; `flush()` waits until everything handed over is written."""

    def __init__(self, engine: Engine) -> None:
        _Base.metadata.create_all(engine)
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._pending: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._write_loop, name="human-signals-writer", daemon=True)
        self._thread.start()

    def escalate(
        self,
        *,
        request_id: str,
        model_ref: str,
        endpoint: str,
        text: str,
        output: dict[str, Any],
        signal: str,
        value: float,
        threshold: float,
    ) -> None:
        self._pending.put(
            _EscalationRow(
                request_id=request_id,
                model_ref=model_ref,
                endpoint=endpoint,
                input_redacted=redact(text),
                output=output,
                signal=signal,
                value=float(value),
                threshold=float(threshold),
                status="open",
                created_at=datetime.now(UTC),
            )
        )

    def feedback(
        self,
        *,
        request_id: str,
        model_ref: str | None,
        correct: bool | None,
        label: str | None,
        comment: str | None,
        user: str | None,
    ) -> None:
        self._pending.put(
            _FeedbackRow(
                request_id=request_id,
                model_ref=model_ref,
                correct=correct,
                label=label,
                comment_redacted=redact(comment) if comment else None,
                user=user,
                created_at=datetime.now(UTC),
            )
        )

    def flush(self) -> None:
        done = threading.Event()
        self._pending.put(done)
        done.wait()

    def close(self) -> None:
        self.flush()
        self._pending.put(None)
        self._thread.join()

    def open_escalations(self, limit: int = 1000) -> list[Escalation]:
        with self._sessions() as s:
            rows = s.scalars(
                select(_EscalationRow)
                .where(_EscalationRow.status == "open")
                .order_by(_EscalationRow.id)
                .limit(limit)
            ).all()
            return [
                Escalation(
                    r.id,
                    r.request_id,
                    r.model_ref,
                    r.endpoint,
                    r.input_redacted,
                    dict(r.output),
                    r.signal,
                    r.value,
                    r.threshold,
                    r.status,
                    r.created_at,
                )
                for r in rows
            ]

    def feedback_count(self) -> int:
        with self._sessions() as s:
            return len(s.scalars(select(_FeedbackRow.id)).all())

    def _write_loop(self) -> None:
        while True:
            item = self._pending.get()
            if item is None:
                return
            batch = [item]
            while not self._pending.empty() and len(batch) < 500:
                batch.append(self._pending.get_nowait())
            rows = [x for x in batch if isinstance(x, _Base)]
            if rows:
                try:
                    with self._sessions.begin() as s:
                        s.add_all(rows)
                except Exception:  # a database hiccup loses these rows, never the writer (flush must return)
                    log.exception("could not write %d escalation/feedback rows", len(rows))
            for x in batch:
                if isinstance(x, threading.Event):
                    x.set()
            if None in batch:
                return
