"""The decision log: hash chain, tamper detection (edit, delete, swap, truncate), export, CLI verify."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from governance_support import BACKENDS, fresh_database_url, open_test_store
from tunegate.errors import StoreError
from tunegate.store import Store
from tunegate.store.decision_log import (
    GENESIS_HASH,
    append_decision,
    compute_entry_hash,
    export_jsonl,
    load_jsonl,
    read_decisions,
    read_head,
    verify_chain,
)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with fresh_database_url(request.param, tmp_path) as url:
        opened = open_test_store(tmp_path / "ws", url)
        yield opened
        opened.meta.engine.dispose()


def _fill(store: Store, n: int = 8) -> None:
    for i in range(n):
        append_decision(
            store.meta,
            actor=f"user{i % 3}",
            action="gate",
            subject=f"m@{i}",
            reason=f"reason {i}",
            evidence_sha256=f"{i:064x}",
            payload={"passed": i % 2 == 0, "score": i / 7, "note": "ünïcode"},
        )


def _check(store: Store):  # -> ChainCheck
    return verify_chain(read_decisions(store.meta), read_head(store.meta))


def _sql(store: Store, *statements: str) -> None:
    with store.meta.engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


def test_entries_chain_and_verify(store: Store) -> None:
    _fill(store)
    entries = read_decisions(store.meta)
    assert [e.seq for e in entries] == list(range(1, 9))
    assert entries[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.entry_hash for a, b in itertools.pairwise(entries))
    assert entries[3].payload == {"passed": False, "score": 3 / 7, "note": "ünïcode"}
    check = _check(store)
    assert check.ok and check.entries == 8 and check.head_hash == entries[-1].entry_hash
    assert read_head(store.meta) == (8, entries[-1].entry_hash)


def test_verify_names_an_edited_entry(store: Store) -> None:
    _fill(store)
    _sql(store, "UPDATE decision_log SET reason = 'nothing to see' WHERE seq = 5")
    check = _check(store)
    assert not check.ok and check.bad_seq == 5 and "edited" in str(check.problem)


def test_verify_names_an_edited_payload(store: Store) -> None:
    _fill(store)
    _sql(store, """UPDATE decision_log SET payload = '{"passed":true}' WHERE seq = 4""")
    check = _check(store)
    assert (check.ok, check.bad_seq) == (False, 4)


def test_verify_names_a_deleted_entry(store: Store) -> None:
    _fill(store)
    _sql(store, "DELETE FROM decision_log WHERE seq = 3")
    check = _check(store)
    assert not check.ok and check.bad_seq == 3 and "deleted" in str(check.problem)


def test_verify_names_swapped_entries(store: Store) -> None:
    _fill(store)
    _sql(
        store,
        "UPDATE decision_log SET seq = -1 WHERE seq = 6",
        "UPDATE decision_log SET seq = 6 WHERE seq = 7",
        "UPDATE decision_log SET seq = 7 WHERE seq = -1",
    )
    check = _check(store)
    assert not check.ok and check.bad_seq == 6 and "out of order" in str(check.problem)


def test_verify_catches_a_deleted_tail(store: Store) -> None:
    _fill(store)
    _sql(store, "DELETE FROM decision_log WHERE seq >= 7")
    check = _check(store)
    assert not check.ok and check.bad_seq == 7 and "deleted" in str(check.problem)


def test_a_consistently_rewritten_entry_changes_the_head(store: Store) -> None:
    """Re-hashing one edited entry still breaks the chain at the next one."""
    _fill(store)
    e = read_decisions(store.meta)[2]
    forged = compute_entry_hash(
        recorded_at=e.recorded_at,
        actor="mallory",
        action=e.action,
        subject=e.subject,
        reason=e.reason,
        evidence_sha256=e.evidence_sha256,
        payload=e.payload,
        prev_hash=e.prev_hash,
    )
    _sql(store, f"UPDATE decision_log SET actor = 'mallory', entry_hash = '{forged}' WHERE seq = 3")
    check = _check(store)
    assert not check.ok and check.bad_seq == 4


def test_export_roundtrip_and_tampered_file(store: Store, tmp_path: Path) -> None:
    _fill(store)
    path = tmp_path / "log.jsonl"
    assert export_jsonl(read_decisions(store.meta), path) == 8
    assert verify_chain(load_jsonl(path)).ok
    lines = path.read_text().splitlines()
    assert len(lines) == 8
    row = json.loads(lines[1])
    row["reason"] = "changed"
    lines[1] = json.dumps(row)
    path.write_text("\n".join(lines) + "\n")
    check = verify_chain(load_jsonl(path))
    assert (check.ok, check.bad_seq) == (False, 2)


def test_unknown_action_and_missing_actor_are_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="unknown decision-log action 'promotd'"):
        append_decision(store.meta, actor="a", action="promotd", subject="m@1")
    with pytest.raises(StoreError, match="needs an actor"):
        append_decision(store.meta, actor="", action="gate", subject="m@1")
    assert read_decisions(store.meta) == []


def test_cli_log_verify_names_the_bad_entry(tmp_path: Path) -> None:
    """As a user sees it: exit 0 on an intact log, exit 1 naming the entry after tampering."""
    from tunegate.store import open_store

    ws = tmp_path / "ws"
    env = {**os.environ, "TUNEGATE_WORKSPACE": str(ws)}
    env.pop("TUNEGATE_DATABASE_URL", None)
    env.pop("TUNEGATE_API_KEY", None)
    cli = [str(Path(sys.executable).parent / "tunegate")]
    key = subprocess.run(
        [*cli, "users", "add", "root", "--role", "admin"], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    env["TUNEGATE_API_KEY"] = key
    store = open_store(ws)
    _fill(store, 5)
    ok = subprocess.run([*cli, "log", "verify"], env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "chain intact" in ok.stdout
    _sql(store, "UPDATE decision_log SET subject = 'm@99' WHERE seq = 4")
    bad = subprocess.run([*cli, "log", "verify"], env=env, capture_output=True, text=True)
    assert bad.returncode == 1
    assert "entry 4: edited" in bad.stdout
