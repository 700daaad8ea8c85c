"""Promotion and rollback: each refusal reason, overrides, one production per model, replay of the log."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy.exc

from governance_support import (
    BACKENDS,
    add_evaluation,
    fake_version,
    fresh_database_url,
    make_users,
    open_test_store,
    predictions,
)
from tunegate.errors import PromotionRefused, RegistryError
from tunegate.registry import promote, registry_stages, replay_differences, rollback
from tunegate.review import decide, next_item, open_review
from tunegate.store import Store, VersionRecord
from tunegate.store.decision_log import read_decisions
from tunegate.store.lifecycle import production_history


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with fresh_database_url(request.param, tmp_path) as url:
        opened = open_test_store(tmp_path / "ws", url)
        yield opened
        opened.meta.engine.dispose()


def _sign_off(store: Store, actor, version: VersionRecord) -> None:
    open_review(store, actor, version.ref)
    while (task := next_item(store, actor, version.ref)) is not None:
        decide(store, actor, task.item.id, approve=True)


def _snapshot(store: Store) -> tuple:
    return registry_stages(store), production_history(store.meta, "clf")


def _refused(store: Store, admin, ref: str, to: str, code: str, message: str) -> None:
    before = _snapshot(store)
    with pytest.raises(PromotionRefused, match=message) as info:
        promote(store, admin, ref, to)
    assert code in info.value.reasons
    assert _snapshot(store) == before  # the registry is unchanged
    last = read_decisions(store.meta)[-1]
    assert (last.action, last.subject, last.payload["reasons"]) == (
        "promote_refused",
        ref,
        info.value.reasons,
    )
    assert replay_differences(store) == []


def test_refused_without_a_passed_gate(store: Store) -> None:
    users = make_users(store)
    admin, rita = users["admin"][0], users["rita"][0]
    failed = fake_version(store, gate_passed=False)
    _sign_off(store, rita, failed)
    _refused(
        store,
        admin,
        failed.ref,
        "staging",
        "no_passed_gate",
        "no passed gate: the latest gate verdict is FAIL",
    )
    ungated = fake_version(store)
    store.meta.add_evaluation(
        ungated.id, {"predictions": predictions()}, store.artifacts.put_files({"e": b"new"})
    )
    _sign_off(store, rita, ungated)  # signed off on the newest evidence, which no gate has judged
    _refused(
        store, admin, ungated.ref, "staging", "no_passed_gate", "no passed gate for the current evidence"
    )


def test_refused_without_a_signoff(store: Store) -> None:
    users = make_users(store)
    version = fake_version(store)
    _refused(
        store,
        users["admin"][0],
        version.ref,
        "staging",
        "no_signoff",
        r"no sign-off \(run `tunegate review open`\)",
    )
    open_review(store, users["rita"][0], version.ref)
    _refused(
        store, users["admin"][0], version.ref, "staging", "no_signoff", "no sign-off .review: 8 of 8 items"
    )


def test_refused_with_self_approval_only(store: Store) -> None:
    users = make_users(store)
    version = fake_version(store, created_by="trainer")
    _sign_off(store, users["trainer"][0], version)
    _refused(
        store,
        users["admin"][0],
        version.ref,
        "staging",
        "self_approval_only",
        "only self-approval: the review's approvals are by trainer, who ran the training",
    )


def test_refused_after_evidence_changed_new_evaluation(store: Store) -> None:
    users = make_users(store)
    admin = users["admin"][0]
    version = fake_version(store)
    _sign_off(store, users["rita"][0], version)
    promote(store, admin, version.ref, "staging")
    add_evaluation(store, version, predictions(), gate_passed=True)  # new evidence, and a gate that passed it
    _refused(store, admin, version.ref, "production", "evidence_changed", "evidence changed since approval")


def test_refused_after_evidence_changed_bytes(store: Store) -> None:
    users = make_users(store)
    admin = users["admin"][0]
    version = fake_version(store)
    _sign_off(store, users["rita"][0], version)
    promote(store, admin, version.ref, "staging")
    weights = store.artifacts.path(version.artifact_sha256) / "model.safetensors"
    os.chmod(weights, 0o644)
    weights.write_bytes(b"one changed byte" + weights.read_bytes()[16:])
    _refused(store, admin, version.ref, "production", "evidence_changed", "model.safetensors")
    with pytest.raises(PromotionRefused, match="an override cannot promote bytes"):
        promote(store, admin, version.ref, "production", override=True, reason="ship it")
    assert store.meta.resolve(version.ref).stage == "staging"


def test_override_needs_admin_reason_and_is_logged(store: Store) -> None:
    users = make_users(store)
    admin = users["admin"][0]
    version = fake_version(store, gate_passed=False)
    with pytest.raises(RegistryError, match="needs a written reason"):
        promote(store, admin, version.ref, "staging", override=True, reason="  ")
    result = promote(
        store, admin, version.ref, "staging", override=True, reason="incident 7: known-good weights"
    )
    override, moved = result.entries
    assert (override.action, override.reason) == ("override", "incident 7: known-good weights")
    assert set(override.payload["overridden"]) == {"no_passed_gate", "no_signoff"}
    assert (moved.action, moved.payload["override"], moved.seq) == ("promote", True, override.seq + 1)
    assert store.meta.resolve(version.ref).stage == "staging"


def test_lifecycle_order_is_enforced(store: Store) -> None:
    users = make_users(store)
    admin = users["admin"][0]
    version = fake_version(store)
    _sign_off(store, users["rita"][0], version)
    with pytest.raises(RegistryError, match="promote it to staging first"):
        promote(store, admin, version.ref, "production")
    with pytest.raises(RegistryError, match="promote goes to staging or production"):
        promote(store, admin, version.ref, "archived")
    promote(store, admin, version.ref, "staging")
    with pytest.raises(RegistryError, match="already staging"):
        promote(store, admin, version.ref, "staging")


def test_promotions_and_rollbacks_keep_one_production(store: Store) -> None:
    users = make_users(store)
    admin = users["admin"][0]
    versions = [fake_version(store) for _ in range(3)]
    for v in versions:
        _sign_off(store, users["rita"][0], v)
        promote(store, admin, v.ref, "staging")
        promote(store, admin, v.ref, "production")
    assert registry_stages(store) == {"clf@1": "archived", "clf@2": "archived", "clf@3": "production"}
    assert production_history(store.meta, "clf") == [versions[0].id, versions[1].id]
    step = rollback(store, admin, "clf", reason="error rate 12%")
    assert [(c.ref, c.from_stage, c.to_stage) for c in step.changes] == [
        ("clf@3", "production", "archived"),
        ("clf@2", "archived", "production"),
    ]
    assert step.entries[0].payload["from"] == "clf@3" and step.entries[0].reason == "error rate 12%"
    rollback(store, admin, "clf@production")
    assert registry_stages(store) == {"clf@1": "production", "clf@2": "archived", "clf@3": "archived"}
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        rollback(store, admin, "clf")
    with pytest.raises(RegistryError, match="no version matches 'other@production'"):
        rollback(store, admin, "other")
    assert replay_differences(store) == []


def test_rollback_refuses_a_target_whose_bytes_changed(store: Store) -> None:
    users = make_users(store)
    admin = users["admin"][0]
    first, second = fake_version(store), fake_version(store)
    for v in (first, second):
        _sign_off(store, users["rita"][0], v)
        promote(store, admin, v.ref, "staging")
        promote(store, admin, v.ref, "production")
    weights = store.artifacts.path(first.artifact_sha256) / "model.safetensors"
    os.chmod(weights, 0o644)
    weights.write_bytes(b"tampered")
    with pytest.raises(RegistryError, match=f"cannot roll back to {first.ref}"):
        rollback(store, admin, "clf")
    assert store.meta.resolve("clf@production").id == second.id


def test_the_database_refuses_a_second_production_version(store: Store) -> None:
    """Even a writer that bypasses the registry cannot make two production versions (partial unique index)."""
    users = make_users(store)
    a, b = fake_version(store), fake_version(store)
    promote(store, users["admin"][0], a.ref, "staging", override=True, reason="test")
    promote(store, users["admin"][0], a.ref, "production", override=True, reason="test")
    with pytest.raises(sqlalchemy.exc.IntegrityError), store.meta.engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE model_versions SET stage = 'production' WHERE id = {b.id}")
    assert store.meta.resolve("clf@production").id == a.id


def test_set_stage_still_works_and_is_logged(store: Store) -> None:
    a, b = fake_version(store, created_by=None), fake_version(store, created_by=None)
    store.meta.set_stage(a.id, "production")
    store.meta.set_stage(b.id, "production")
    assert registry_stages(store) == {"clf@1": "archived", "clf@2": "production"}
    assert read_decisions(store.meta)[-1].action == "set_stage"
    assert replay_differences(store) == []


def test_direct_registration_is_logged_with_the_trainer_as_actor(store: Store) -> None:
    tree = store.workspace.root / "tree"
    tree.mkdir()
    (tree / "w.safetensors").write_bytes(b"w")
    version = store.meta.register_version(
        name="direct",
        task="classify",
        artifact_sha256=store.artifacts.put_tree(tree),
        spec_sha256="5" * 64,
        data_fingerprint="d" * 64,
        lineage={"created_by": "tom"},
    )
    entry = read_decisions(store.meta)[-1]
    assert (entry.action, entry.actor, entry.subject) == ("register", "tom", version.ref)
    assert entry.payload["changes"] == [
        {"ref": "direct@1", "version_id": version.id, "from": None, "to": "candidate"}
    ]
    assert replay_differences(store) == []
