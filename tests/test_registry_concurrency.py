"""Concurrent registry commands, with processes killed mid-operation (SIGKILL).

Four worker processes run random register / promote / rollback operations on two models against one
workspace; the parent kills workers while they are inside an operation and starts a replacement that
carries on with the slot's remaining operations. Afterwards: at most one production version per model
(exactly one once any was promoted), every version's artifacts verify, the log's chain is intact, and
replaying the log reproduces every version's stage. The default run does 4 x 60 operations; the slow
run does the full 4 x 250.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
import traceback
from pathlib import Path

import pytest

from governance_support import BACKENDS, add_evaluation, fresh_database_url, make_users, open_test_store
from tunegate.errors import RegistryError, ReviewError
from tunegate.registry import promote, register_candidate, replay_differences, rollback
from tunegate.review import Actor, decide, next_item, open_review
from tunegate.store import Store
from tunegate.store.decision_log import read_decisions, read_head, verify_chain
from tunegate.store.lifecycle import production_history

MODELS = ("alpha", "beta")
ADMIN, REVIEWER = Actor("admin", "admin"), Actor("rita", "reviewer")
ROWS = [
    {"text": f"{label} {i}", "label": label, "predicted": label, "confidence": 0.97}
    for label in ("yes", "no")
    for i in range(3)
]
EXPECTED = (RegistryError, ReviewError)  # refusals and lost races are answers, not failures


def _register(store: Store, name: str, rng: random.Random) -> None:
    folder = store.workspace.root / f"src-{os.getpid()}-{rng.getrandbits(48):x}"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(rng.randbytes(256))
    artifact = store.artifacts.put_tree(folder)
    version = register_candidate(
        store,
        actor="trainer",
        name=name,
        task="classify",
        artifact_sha256=artifact,
        spec_sha256="5" * 64,
        data_fingerprint="d" * 64,
        lineage={"created_by": "trainer", "spec": {"review": {"sample_size": 2, "min_approval_rate": 0.5}}},
    )
    add_evaluation(store, version, ROWS, gate_passed=rng.random() < 0.9)
    if rng.random() < 0.8:  # most versions are reviewed and signed off; the rest are refused at promotion
        open_review(store, REVIEWER, version.ref)
        while (task := next_item(store, REVIEWER, version.ref)) is not None:
            decide(store, REVIEWER, task.item.id, approve=True)


def _promote(store: Store, name: str, rng: random.Random) -> None:
    versions = store.meta.list_versions(name)
    if not versions:
        return
    version = rng.choice(versions)
    to = {"candidate": "staging", "staging": "production"}.get(
        version.stage, rng.choice(["staging", "production"])
    )
    override = rng.random() < 0.15
    promote(store, ADMIN, version.ref, to, override=override, reason="stress test" if override else "")


def _worker(url: str, root: Path, slot: int, seed: int, n_ops: int, done, in_op, errors: Path) -> None:
    store = open_test_store(root, url)
    rng = random.Random(seed)
    while done[slot] < n_ops:
        op, name = rng.choice(("register", "promote", "promote", "rollback")), rng.choice(MODELS)
        in_op[slot] = 1
        try:
            if op == "register":
                _register(store, name, rng)
            elif op == "promote":
                _promote(store, name, rng)
            else:
                rollback(store, ADMIN, name, reason="stress test")
        except EXPECTED:
            pass
        except BaseException:
            errors.joinpath(f"{slot}-{os.getpid()}.txt").write_text(traceback.format_exc())
            os._exit(3)
        in_op[slot] = 0
        done[slot] += 1
    store.meta.engine.dispose()


def _run(store: Store, url: str, n_ops: int, max_kills: int, seed: int) -> int:
    """Run the workers; return how many were killed mid-operation."""
    ctx = multiprocessing.get_context("fork")
    # No locks: a killed process must not be able to die holding one; each slot has one writer at a time.
    done, in_op = ctx.Array("i", 4, lock=False), ctx.Array("i", 4, lock=False)
    errors = store.workspace.root / "worker-errors"
    errors.mkdir()
    rng = random.Random(seed)

    def start(slot: int):  # -> Process
        process = ctx.Process(
            target=_worker,
            args=(url, store.workspace.root, slot, rng.getrandbits(32), n_ops, done, in_op, errors),
        )
        process.start()
        return process

    store.meta.engine.dispose()  # no pooled connection may be shared with the forked workers
    procs = {slot: start(slot) for slot in range(4)}
    # Kills are spread by progress, not by the clock: a fast machine finishes 4 x 60 operations in about
    # a second, so a timer would fire once. Kill k is due once k/(max_kills+1) of all operations are done,
    # then lands a few random milliseconds later on a worker that is inside an operation.
    total = 4 * n_ops
    milestones = [total * (k + 1) // (max_kills + 1) for k in range(max_kills)]
    kills, due_at = 0, None
    deadline = time.monotonic() + 600
    while any(p.is_alive() for p in procs.values()):
        assert time.monotonic() < deadline, "workers did not finish in 10 minutes (deadlock?)"
        if kills < max_kills and due_at is None and sum(done) >= milestones[kills]:
            due_at = time.monotonic() + rng.uniform(0.0, 0.02)
        if due_at is not None and time.monotonic() >= due_at:
            busy = [s for s, p in procs.items() if p.is_alive() and in_op[s] and done[s] < n_ops - 1]
            if busy:
                slot = rng.choice(busy)
                os.kill(procs[slot].pid, signal.SIGKILL)
                procs[slot].join()
                kills += 1
                in_op[slot] = 0
                procs[slot] = start(slot)
                due_at = None
        time.sleep(0.001)
    failures = {f.name: f.read_text() for f in errors.iterdir()}
    assert not failures, "\n".join(failures.values())
    assert all(p.exitcode == 0 for p in procs.values()), [p.exitcode for p in procs.values()]
    assert list(done) == [n_ops] * 4
    return kills


def _check_invariants(store: Store) -> None:
    versions = store.meta.list_versions()
    entries = read_decisions(store.meta)
    ever_promoted = {
        c["ref"].split("@")[0]
        for e in entries
        for c in e.payload.get("changes", [])
        if c["to"] == "production"
    }
    for name in MODELS:
        production = [v for v in versions if v.name == name and v.stage == "production"]
        assert len(production) == (1 if name in ever_promoted else 0), (name, production)
        if production:
            assert production[0].id not in production_history(store.meta, name)
    for v in versions:
        store.artifacts.verify_tree(v.artifact_sha256)  # raises IntegrityError on any changed byte
    check = verify_chain(entries, read_head(store.meta))
    assert check.ok, check.describe()
    assert replay_differences(store) == []
    assert {e.action for e in entries} >= {"register", "promote", "signoff"}


def _stress(tmp_path: Path, backend: str, n_ops: int, max_kills: int) -> None:
    with fresh_database_url(backend, tmp_path) as url:
        store = open_test_store(tmp_path / "ws", url)
        make_users(store)
        kills = _run(store, url, n_ops=n_ops, max_kills=max_kills, seed=20240611)
        assert kills == max_kills, f"only {kills} of {max_kills} planned kills landed mid-operation"
        store = open_test_store(tmp_path / "ws", url)
        _check_invariants(store)
        store.meta.engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_commands_with_kills_small(tmp_path: Path, backend: str) -> None:
    _stress(tmp_path, backend, n_ops=60, max_kills=4)


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_commands_with_kills_4x250(tmp_path: Path, backend: str) -> None:
    _stress(tmp_path, backend, n_ops=250, max_kills=12)
