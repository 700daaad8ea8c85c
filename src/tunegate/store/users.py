"""Users and their API keys: the one writer of the `users` table.

A key is stored only as its sha256 (the key itself is shown once, when the user is made); a short
prefix is kept so a person can tell their keys apart in `tunegate users list`. Revoking keeps the row
(the decision log names users) and stamps revoked_at; a revoked key authenticates nobody.

Each change is logged (user_add, user_revoke) in the same transaction. What a role may do, and how keys
are made and checked, is `tunegate.review.access`; this module only stores.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import DateTime, Integer, String, func, select
from sqlalchemy.orm import Mapped, mapped_column

from tunegate.errors import AccessDenied, StoreError
from tunegate.store.decision_log import append_in, lock_chain_head
from tunegate.store.metadata import MetadataStore, _Base


class _UserRow(_Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    key_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


@dataclass(frozen=True)
class UserRecord:
    id: int
    name: str
    role: str
    key_prefix: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    revoked_by: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _user(row: _UserRow) -> UserRecord:
    return UserRecord(
        row.id,
        row.name,
        row.role,
        row.key_prefix,
        row.created_at,
        row.created_by,
        row.revoked_at,
        row.revoked_by,
    )


def create_user(
    meta: MetadataStore,
    *,
    name: str,
    role: str,
    key_sha256: str,
    key_prefix: str,
    created_by: str,
    first_user: bool = False,
) -> UserRecord:
    """Add a user. `first_user=True` (the bootstrap) succeeds only while the table is still empty."""
    with meta.transaction() as session:
        # The log head lock serialises user creation too, so two bootstraps cannot both see "no users".
        lock_chain_head(session)
        if first_user and session.scalar(select(func.count()).select_from(_UserRow)):
            raise AccessDenied(
                "users already exist: pass an admin's API key (--api-key or $TUNEGATE_API_KEY)"
            )
        if session.scalar(select(_UserRow.id).where(_UserRow.name == name)) is not None:
            raise StoreError(f"a user named {name!r} already exists (names are never reused; pick another)")
        row = _UserRow(
            name=name,
            role=role,
            key_sha256=key_sha256,
            key_prefix=key_prefix,
            created_at=datetime.now(UTC),
            created_by=created_by,
        )
        session.add(row)
        session.flush()
        append_in(
            session,
            actor=created_by,
            action="user_add",
            subject=f"user:{name}",
            reason="first user (bootstrap)" if first_user else "",
            payload={"role": role, "key_prefix": key_prefix},
        )
        return _user(row)


def revoke_user(meta: MetadataStore, name: str, *, revoked_by: str, reason: str = "") -> UserRecord:
    with meta.transaction() as session:
        row = session.scalars(select(_UserRow).where(_UserRow.name == name)).first()
        if row is None:
            raise StoreError(f"no user named {name!r}")
        if row.revoked_at is not None:
            return _user(row)
        row.revoked_at, row.revoked_by = datetime.now(UTC), revoked_by
        session.flush()
        append_in(session, actor=revoked_by, action="user_revoke", subject=f"user:{name}", reason=reason)
        return _user(row)


def user_by_key_hash(meta: MetadataStore, key_sha256: str) -> UserRecord | None:
    with meta.transaction() as session:
        row = session.scalars(select(_UserRow).where(_UserRow.key_sha256 == key_sha256)).first()
        return _user(row) if row else None


def list_users(meta: MetadataStore) -> list[UserRecord]:
    with meta.transaction() as session:
        return [_user(r) for r in session.scalars(select(_UserRow).order_by(_UserRow.id))]


def count_users(meta: MetadataStore) -> int:
    with meta.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(_UserRow)) or 0)
