"""Replaying the decision log: the registry's stages must follow from the log alone.

Every stage change (register, promote, rollback, set_stage) is committed together with a log entry
whose payload lists the changes as {"ref", "from", "to"}. Applying those in seq order from an empty
registry must give exactly the stages the database holds; any difference means a change bypassed
the log or the log was tampered with. Pure, apart from `replay_differences` reading the store.
"""

from __future__ import annotations

from collections.abc import Iterable

from tunegate.store import Store
from tunegate.store.decision_log import DecisionEntry, read_decisions


def replay(entries: Iterable[DecisionEntry]) -> dict[str, str]:
    """{version ref: stage} after applying every logged change in order."""
    stages: dict[str, str] = {}
    for entry in sorted(entries, key=lambda e: e.seq):
        for change in entry.payload.get("changes", []):
            stages[change["ref"]] = change["to"]
    return stages


def registry_stages(store: Store) -> dict[str, str]:
    return {v.ref: v.stage for v in store.meta.list_versions()}


def replay_differences(store: Store) -> list[str]:
    """Human-readable differences between the replayed log and the registry (empty: they agree)."""
    replayed, actual = replay(read_decisions(store.meta)), registry_stages(store)
    problems = []
    for ref in sorted(replayed.keys() | actual.keys()):
        logged, stored = replayed.get(ref), actual.get(ref)
        if logged != stored:
            problems.append(
                f"{ref}: the registry says {stored or 'nothing (no such version)'}, "
                f"the log says {logged or 'nothing (never logged)'}"
            )
    return problems
