"""Users, roles and API keys: bootstrap, permissions, and what reviewer / viewer / revoked keys cannot do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from governance_support import BACKENDS, fake_version, fresh_database_url, make_users, open_test_store
from tunegate.errors import AccessDenied
from tunegate.registry import promote, rollback
from tunegate.review import (
    ROLES,
    add_user,
    allowed,
    authenticate,
    decide,
    next_item,
    open_review,
    review_status,
    revoke,
)
from tunegate.review.access import PERMISSIONS, hash_key
from tunegate.store import Store
from tunegate.store.decision_log import read_decisions
from tunegate.store.users import list_users


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with fresh_database_url(request.param, tmp_path) as url:
        opened = open_test_store(tmp_path / "ws", url)
        yield opened
        opened.meta.engine.dispose()


def test_roles_are_ordered_and_every_action_has_a_least_role() -> None:
    expected = {
        "viewer": {"read"},
        "reviewer": {"read", "review"},
        "admin": set(PERMISSIONS),
    }
    for role in ROLES:
        assert {action for action in PERMISSIONS if allowed(role, action)} == expected[role]
    assert not allowed("superuser", "read")
    with pytest.raises(ValueError, match="unknown action"):
        allowed("admin", "fly")


def test_bootstrap_needs_an_admin_and_happens_once(store: Store) -> None:
    with pytest.raises(AccessDenied, match="no users yet"):
        authenticate(store, None)
    with pytest.raises(AccessDenied, match="first user of a workspace must be an admin"):
        add_user(store, None, "eve", "reviewer")
    admin, key = add_user(store, None, "root", "admin")
    assert admin.role == "admin" and key.startswith("tg_")
    with pytest.raises(AccessDenied, match="no API key"):
        add_user(store, None, "eve", "admin")
    assert authenticate(store, key).name == "root"
    assert [u.name for u in list_users(store.meta)] == ["root"]
    assert [(e.action, e.actor, e.subject) for e in read_decisions(store.meta)] == [
        ("user_add", "root", "user:root")
    ]


def test_keys_are_stored_only_as_hashes(store: Store) -> None:
    _, key = add_user(store, None, "root", "admin")
    with store.meta.engine.connect() as conn:
        row = conn.exec_driver_sql("SELECT key_sha256, key_prefix FROM users").one()
    assert row[0] == hash_key(key) and key not in row
    if store.meta.engine.dialect.name == "sqlite":
        database = Path(str(store.meta.engine.url.database))
        for path in (database, database.with_name(database.name + "-wal")):
            assert not path.exists() or key.encode() not in path.read_bytes()
    with pytest.raises(AccessDenied, match="unknown API key"):
        authenticate(store, key + "x")


def test_only_admins_manage_users_and_names_are_checked(store: Store) -> None:
    users = make_users(store)
    with pytest.raises(AccessDenied, match="'manage_users' needs the admin role"):
        add_user(store, users["rita"][1], "x", "viewer")
    with pytest.raises(AccessDenied, match="not a user name"):
        add_user(store, users["admin"][1], "system:monitor", "admin")
    with pytest.raises(AccessDenied, match="unknown role"):
        add_user(store, users["admin"][1], "x", "owner")
    with pytest.raises(AccessDenied, match="last active admin"):
        revoke(store, users["admin"][1], "admin")


def _signed_off_version(store: Store, users: dict) -> str:
    version = fake_version(store)
    rita = users["rita"][0]
    open_review(store, rita, version.ref)
    while (task := next_item(store, rita, version.ref)) is not None:
        decide(store, rita, task.item.id, approve=True)
    return version.ref


def test_reviewer_key_cannot_promote_or_roll_back(store: Store) -> None:
    users = make_users(store)
    ref = _signed_off_version(store, users)
    reviewer = authenticate(store, users["rita"][1])
    with pytest.raises(AccessDenied, match="rita is a reviewer; 'promote' needs the admin role"):
        promote(store, reviewer, ref, "staging")
    with pytest.raises(AccessDenied, match="'rollback' needs the admin role"):
        rollback(store, reviewer, "clf")
    assert store.meta.resolve(ref).stage == "candidate"
    promote(store, authenticate(store, users["admin"][1]), ref, "staging")  # the same version, by an admin
    assert store.meta.resolve(ref).stage == "staging"


def test_viewer_key_cannot_review(store: Store) -> None:
    users = make_users(store)
    version = fake_version(store)
    viewer = authenticate(store, users["vera"][1])
    with pytest.raises(AccessDenied, match="vera is a viewer; 'review' needs the reviewer role"):
        open_review(store, viewer, version.ref)
    opened = open_review(store, users["rita"][0], version.ref)
    with pytest.raises(AccessDenied, match="'review' needs the reviewer role"):
        decide(store, viewer, opened.items[0].id, approve=True)
    with pytest.raises(AccessDenied):
        next_item(store, viewer)
    status = review_status(store, viewer, version.ref)  # reading is allowed
    assert status.verdict is not None and status.verdict.approved == 0


def test_revoked_key_can_do_nothing(store: Store) -> None:
    users = make_users(store)
    ref = _signed_off_version(store, users)
    admin_key = users["admin"][1]
    _, second_admin_key = add_user(store, admin_key, "ada", "admin")
    revoke(store, admin_key, "ada", reason="left the team")
    revoke(store, admin_key, "rita", reason="left the team")
    for key in (second_admin_key, users["rita"][1]):
        with pytest.raises(AccessDenied, match="was revoked by admin"):
            authenticate(store, key)
        with pytest.raises(AccessDenied, match="was revoked"):
            add_user(store, key, "mallory", "admin")
        with pytest.raises(AccessDenied, match="was revoked"):
            revoke(store, key, "admin")
    assert store.meta.resolve(ref).stage == "candidate"
    assert [u.name for u in list_users(store.meta) if u.active] == ["admin", "ravi", "vera", "trainer"]
    revokes = [e for e in read_decisions(store.meta) if e.action == "user_revoke"]
    assert [(e.subject, e.reason) for e in revokes] == [
        ("user:ada", "left the team"),
        ("user:rita", "left the team"),
    ]


def test_cli_revoked_key_is_refused_everywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from tunegate.cli import app

    monkeypatch.setenv("TUNEGATE_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.delenv("TUNEGATE_DATABASE_URL", raising=False)
    monkeypatch.delenv("TUNEGATE_API_KEY", raising=False)
    runner = CliRunner()
    admin_key = (
        runner.invoke(app, ["users", "add", "root", "--role", "admin"]).stdout.strip().splitlines()[-1]
    )
    viewer_key = (
        runner.invoke(app, ["users", "add", "val", "--role", "viewer", "--api-key", admin_key])
        .stdout.strip()
        .splitlines()[-1]
    )
    assert runner.invoke(app, ["log", "show", "--api-key", viewer_key]).exit_code == 0
    assert runner.invoke(app, ["users", "revoke", "val", "--api-key", admin_key]).exit_code == 0
    for args in (
        ["log", "show"],
        ["log", "verify"],
        ["review", "next"],
        ["promote", "clf@1", "--to", "staging"],
        ["rollback", "clf"],
        ["users", "list"],
    ):
        result = runner.invoke(app, [*args, "--api-key", viewer_key])
        assert isinstance(result.exception, AccessDenied), args
        assert "revoked" in str(result.exception)
