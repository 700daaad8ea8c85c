"""The review checkpoint: which outputs are reviewed, the sign-off policy, and batches in the store."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from governance_support import (
    BACKENDS,
    add_evaluation,
    fake_version,
    fresh_database_url,
    make_users,
    open_test_store,
    predictions,
)
from tunegate.errors import ReviewError
from tunegate.review import (
    ReviewPolicy,
    decide,
    judge_batch,
    next_item,
    open_review,
    review_status,
    select_for_review,
)
from tunegate.store import Store
from tunegate.store.decision_log import read_decisions
from tunegate.store.reviews import latest_signoff

# -- sampling (pure) ----------------------------------------------------------------------------------


def _rows(counts: dict[str, int]) -> list[dict]:
    return [
        {"text": f"{label} {i}", "label": label, "predicted": label, "confidence": 0.9}
        for label, n in counts.items()
        for i in range(n)
    ]


def test_every_wrong_and_low_confidence_output_is_reviewed_risky_first() -> None:
    rows = predictions(n_per_label=20)
    items = select_for_review(rows, sample_size=6, low_confidence_below=0.6, seed=1)
    assert items[0]["reasons"] == ["misclassified"] and items[0]["predicted"] == "billing"
    assert items[1]["reasons"] == ["low_confidence"] and items[1]["confidence"] == pytest.approx(0.41)
    assert [i["reasons"] for i in items[2:]] == [["sample"]] * 6
    both = [{"text": "x", "label": "a", "predicted": "b", "confidence": 0.3}]
    assert select_for_review(both, sample_size=0, low_confidence_below=0.5, seed=0)[0]["reasons"] == [
        "misclassified",
        "low_confidence",
    ]


def test_sample_is_stratified_by_predicted_label_and_keeps_rare_classes() -> None:
    rows = _rows({"common": 90, "medium": 30, "rare": 2})
    items = select_for_review(rows, sample_size=12, low_confidence_below=0.5, seed=3)
    by_label = Counter(i["predicted"] for i in items)
    assert sum(by_label.values()) == 12
    assert by_label["rare"] >= 1
    assert by_label["common"] > by_label["medium"] > 0
    assert by_label == {"common": 8, "medium": 3, "rare": 1}  # 1 each, then 9 split ~ 89:29:1


def test_sample_is_reproducible_and_seed_dependent() -> None:
    rows = _rows({"a": 50, "b": 50})
    first = select_for_review(rows, sample_size=10, low_confidence_below=0.5, seed=7)
    assert first == select_for_review(rows, sample_size=10, low_confidence_below=0.5, seed=7)
    assert first != select_for_review(rows, sample_size=10, low_confidence_below=0.5, seed=8)
    assert len(select_for_review(rows, sample_size=500, low_confidence_below=0.5, seed=7)) == 100
    assert len({i["text"] for i in first}) == 10


# -- the sign-off policy (pure) -----------------------------------------------------------------------


@dataclass
class D:
    item_id: int
    reviewer: str
    approve: bool


def test_policy_signs_off_when_every_item_is_decided_and_the_rate_is_met() -> None:
    policy = ReviewPolicy(min_approval_rate=0.75)
    decisions = [D(1, "rita", True), D(2, "rita", True), D(3, "rita", True), D(4, "rita", False)]
    assert judge_batch(policy, [1, 2, 3, 4], decisions[:3], "tom").status == "pending"
    verdict = judge_batch(policy, [1, 2, 3, 4], decisions, "tom")
    assert (verdict.status, verdict.approved, verdict.rejected, verdict.approval_rate) == (
        "signed_off",
        3,
        1,
        0.75,
    )
    assert verdict.eligible_reviewers == ["rita"]


def test_policy_rejects_as_soon_as_the_rate_is_out_of_reach() -> None:
    policy = ReviewPolicy(min_approval_rate=0.75)
    verdict = judge_batch(policy, [1, 2, 3, 4], [D(1, "rita", False), D(2, "rita", False)], "tom")
    assert verdict.status == "rejected" and verdict.pending == 2 and "at most 50%" in verdict.reason


def test_policy_needs_required_approvals_and_distinct_reviewers() -> None:
    policy = ReviewPolicy(required_approvals=2, distinct_reviewers=2, min_approval_rate=1.0)
    one = [D(1, "rita", True), D(2, "rita", True)]
    assert judge_batch(policy, [1, 2], one, None).blocked_by == "items_pending"
    two = [*one, D(1, "ravi", True), D(2, "ravi", True)]
    assert judge_batch(policy, [1, 2], two, None).status == "signed_off"
    loose = ReviewPolicy(required_approvals=1, distinct_reviewers=2, min_approval_rate=1.0)
    assert judge_batch(loose, [1, 2], one, None).blocked_by == "too_few_reviewers"


def test_self_approval_is_recorded_but_does_not_count() -> None:
    policy = ReviewPolicy(min_approval_rate=1.0)
    mine = [D(1, "tom", True), D(2, "tom", True)]
    verdict = judge_batch(policy, [1, 2], mine, run_by="tom")
    assert (verdict.status, verdict.blocked_by, verdict.ignored_self_decisions) == (
        "pending",
        "self_approval_only",
        2,
    )
    assert "only self-approval" in verdict.reason and "tom" in verdict.reason
    assert judge_batch(
        ReviewPolicy(min_approval_rate=1.0, allow_self_approval=True), [1, 2], mine, "tom"
    ).status == ("signed_off")
    assert judge_batch(policy, [1, 2], mine, run_by=None).status == "signed_off"  # unknown runner: all count


def test_a_reviewers_latest_decision_counts() -> None:
    policy = ReviewPolicy(min_approval_rate=1.0)
    changed_mind = [D(1, "rita", False), D(1, "rita", True)]
    assert judge_batch(policy, [1], changed_mind, None).status == "signed_off"
    any_rejection = [D(1, "rita", True), D(1, "ravi", False)]
    assert judge_batch(ReviewPolicy(min_approval_rate=0.5), [1], any_rejection, None).status == "rejected"


# -- batches in the store -----------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with fresh_database_url(request.param, tmp_path) as url:
        opened = open_test_store(tmp_path / "ws", url)
        yield opened
        opened.meta.engine.dispose()


def _review_all(store: Store, actor, ref: str, approve: bool = True):  # -> last DecisionOutcome
    open_review(store, actor, ref)  # or the batch already open for this evidence
    outcome = None
    while (task := next_item(store, actor, ref)) is not None:
        outcome = decide(store, actor, task.item.id, approve=approve, comment="checked")
    return outcome


def test_batch_follows_the_spec_and_signs_off_bound_to_the_evidence(store: Store) -> None:
    users = make_users(store)
    version = fake_version(
        store, review={"sample_size": 3, "low_confidence_below": 0.5, "min_approval_rate": 0.75}
    )
    rita = users["rita"][0]
    opened = open_review(store, rita, version.ref)
    assert not opened.reused and opened.batch.run_by == "trainer"
    assert opened.batch.policy["sample_size"] == 3
    assert [i.reasons for i in opened.items] == [["misclassified"], ["low_confidence"]] + [["sample"]] * 3
    assert open_review(store, users["ravi"][0], version.ref).reused  # same evidence: the same batch
    outcome = _review_all(store, rita, version.ref)
    assert outcome is not None and outcome.verdict.status == "signed_off" and outcome.signoff is not None
    signoff = latest_signoff(store.meta, version.id)
    assert signoff is not None and signoff.evidence_sha256 == opened.batch.evidence_sha256
    assert signoff.approvers == ["rita"]
    actions = [e.action for e in read_decisions(store.meta) if e.subject == version.ref]
    assert actions == ["register", "review_open"] + ["review_decision"] * 5 + ["signoff"]
    with pytest.raises(ReviewError, match="is signed_off; it takes no decisions"):
        decide(store, users["ravi"][0], opened.items[0].id, approve=False)


def test_rejections_close_the_batch(store: Store) -> None:
    users = make_users(store)
    version = fake_version(store, review={"sample_size": 2, "min_approval_rate": 0.9})
    outcome = _review_all(store, users["rita"][0], version.ref, approve=False)
    assert outcome is not None and outcome.batch.status == "rejected" and outcome.signoff is None
    assert read_decisions(store.meta)[-1].action == "review_rejected"
    assert next_item(store, users["rita"][0], version.ref) is None


def test_self_decisions_do_not_sign_off(store: Store) -> None:
    users = make_users(store)
    version = fake_version(store, created_by="trainer")
    outcome = _review_all(store, users["trainer"][0], version.ref)
    assert outcome is not None and not outcome.counts
    assert outcome.verdict.blocked_by == "self_approval_only" and outcome.signoff is None
    other = _review_all(store, users["ravi"][0], version.ref)
    assert other is not None and other.counts and other.signoff is not None


def test_changed_evidence_refuses_the_completing_decision(store: Store) -> None:
    users = make_users(store)
    version = fake_version(store, review={"sample_size": 2, "min_approval_rate": 1.0})
    rita = users["rita"][0]
    opened = open_review(store, rita, version.ref)
    for item in opened.items[:-1]:
        decide(store, rita, item.id, approve=True)
    add_evaluation(store, version, predictions())  # a new evaluation: new evidence
    with pytest.raises(ReviewError, match=r"changed since batch \d+ opened"):
        decide(store, rita, opened.items[-1].id, approve=True)
    status = review_status(store, rita, version.ref)
    assert status.evidence_current is False and status.signoff is None
    reopened = open_review(store, rita, version.ref)
    assert not reopened.reused and reopened.batch.evidence_sha256 == status.current_evidence_sha256


def test_open_needs_predictions_and_refuses_archived(store: Store) -> None:
    users = make_users(store)
    empty = fake_version(store, rows=[])
    with pytest.raises(ReviewError, match="holds no predictions"):
        open_review(store, users["rita"][0], empty.ref)
    store.meta.set_stage(empty.id, "archived")
    with pytest.raises(ReviewError, match="archived"):
        open_review(store, users["rita"][0], empty.ref)


def test_cli_flow_review_promote_rollback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands a new user types, on two fake versions: review, sign-off, promote, roll back."""
    from typer.testing import CliRunner

    from tunegate.cli import app
    from tunegate.review import Actor
    from tunegate.store import open_store

    monkeypatch.setenv("TUNEGATE_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("COLUMNS", "200")  # no wrapped lines
    monkeypatch.delenv("TUNEGATE_DATABASE_URL", raising=False)
    monkeypatch.delenv("TUNEGATE_API_KEY", raising=False)
    runner = CliRunner()

    def ok(*args: str, key: str | None = None) -> str:
        result = runner.invoke(app, [*args, *(["--api-key", key] if key else [])])
        assert result.exit_code == 0, (args, result.output, result.exception)
        return result.stdout

    admin = ok("users", "add", "alice", "--role", "admin").strip().splitlines()[-1]
    rita = ok("users", "add", "rita", "--role", "reviewer", key=admin).strip().splitlines()[-1]
    store = open_store(tmp_path / "ws")
    refs = [fake_version(store, "intents").ref for _ in range(2)]
    for ref in refs:
        assert "opened: 8 items" in ok("review", "open", ref, key=rita)
        assert f"of {ref} (batch" in ok("review", "next", ref, key=rita)
        ids = [str(i.id) for i in open_review(store, Actor("rita", "reviewer"), ref).items]
        approved = ok("review", "approve", *ids, "-m", "fine", key=rita)
        assert approved.count(": approved.") == 8 and f"signed off {ref}" in approved
        assert "matches the current evidence" in ok("review", "status", ref, key=rita)
        ok("promote", ref, "--to", "staging", key=admin)
        assert f"{ref}: staging -> production" in ok("promote", ref, "--to", "production", key=admin)
    assert "intents@2: production -> archived" in ok("rollback", "intents", "--reason", "errors", key=admin)
    assert "replaying the log reproduces" in ok("log", "verify", key=rita)
