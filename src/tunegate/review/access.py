"""Who may do what: roles, API keys, and the permission check every governed action makes.

Roles are ordered, each including the ones before it:

    viewer     read: review status, the registry, the decision log (verify, export)
    reviewer   + open review batches, approve and reject review items
    admin      + promote, roll back, override a refused promotion, add and revoke users, log incidents

`allowed` and `require` are pure: they look only at the role. `authenticate` turns an API key into
the acting user (or refuses: unknown key, revoked key, no key while users exist). An empty workspace
has no users; its first `users add` needs no key and must create an admin (the bootstrap).

This lives in `review` because review is the first stage where a person acts; registry, serve and
monitor import it from here. Storage is `store.users`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from tunegate.errors import AccessDenied
from tunegate.store import Store
from tunegate.store.users import (
    UserRecord,
    count_users,
    create_user,
    list_users,
    revoke_user,
    user_by_key_hash,
)

ROLES = ("viewer", "reviewer", "admin")
# The least role each action needs.
PERMISSIONS = {
    "read": "viewer",
    "review": "reviewer",
    "promote": "admin",
    "rollback": "admin",
    "override": "admin",
    "manage_users": "admin",
    "incident": "admin",
}
KEY_PREFIX = "tg_"
# No colon: "system:..." names are reserved for automatic actors, so no person can pose as one.
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


@dataclass(frozen=True)
class Actor:
    """The person (or system component) an action is attributed to."""

    name: str
    role: str


def system_actor(name: str) -> Actor:
    """For automatic actions (the monitor's rollback): attributed to the component, with admin rights."""
    return Actor(name=f"system:{name}", role="admin")


def allowed(role: str, action: str) -> bool:
    if action not in PERMISSIONS:
        raise ValueError(f"unknown action {action!r}; known: {', '.join(PERMISSIONS)}")
    return role in ROLES and ROLES.index(role) >= ROLES.index(PERMISSIONS[action])


def require(actor: Actor, action: str) -> None:
    if not allowed(actor.role, action):
        raise AccessDenied(f"{actor.name} is a {actor.role}; {action!r} needs the {PERMISSIONS[action]} role")


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.strip().encode()).hexdigest()


def authenticate(store: Store, api_key: str | None) -> Actor:
    if not api_key:
        if count_users(store.meta) == 0:
            raise AccessDenied(
                "this workspace has no users yet: create the first admin with "
                "`tunegate users add NAME --role admin` (it prints the admin's API key)"
            )
        raise AccessDenied("no API key: pass --api-key or set $TUNEGATE_API_KEY")
    user = user_by_key_hash(store.meta, hash_key(api_key))
    if user is None:
        raise AccessDenied("unknown API key")
    if not user.active:
        raise AccessDenied(
            f"the API key of {user.name} was revoked by {user.revoked_by} on {user.revoked_at:%Y-%m-%d}"
        )
    return Actor(name=user.name, role=user.role)


def add_user(store: Store, api_key: str | None, name: str, role: str) -> tuple[UserRecord, str]:
    """Create a user; returns the record and its API key (shown once, never stored).

    With no users yet and no key, this is the bootstrap and the role must be admin.
    """
    if role not in ROLES:
        raise AccessDenied(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    if not USER_NAME.match(name):
        raise AccessDenied(f"{name!r} is not a user name (letters, digits, . _ @ -; at most 64)")
    key = new_api_key()
    if not api_key and count_users(store.meta) == 0:
        if role != "admin":
            raise AccessDenied("the first user of a workspace must be an admin (--role admin)")
        record = create_user(
            store.meta,
            name=name,
            role=role,
            key_sha256=hash_key(key),
            key_prefix=key[:10],
            created_by=name,
            first_user=True,
        )
        return record, key
    actor = authenticate(store, api_key)
    require(actor, "manage_users")
    record = create_user(
        store.meta, name=name, role=role, key_sha256=hash_key(key), key_prefix=key[:10], created_by=actor.name
    )
    return record, key


def revoke(store: Store, api_key: str | None, name: str, reason: str = "") -> UserRecord:
    """Revoke a user's key (admin only). The last active admin cannot be revoked: nobody could manage users."""
    actor = authenticate(store, api_key)
    require(actor, "manage_users")
    active_admins = [u.name for u in list_users(store.meta) if u.active and u.role == "admin"]
    if active_admins == [name]:
        raise AccessDenied(f"{name} is the last active admin; add another admin before revoking this one")
    return revoke_user(store.meta, name, revoked_by=actor.name, reason=reason)
