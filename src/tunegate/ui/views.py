"""What each dashboard page shows, read from the store: plain dicts for the templates.

Every function here only reads (the registry, the decision log, evaluations, gates, review batches,
the monitor's state file); actions go through `tunegate.review` and `tunegate.registry` in routes.py.
Deliberately not here: HTML (templates/), charts (charts.py), permission checks (routes.py).
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from tunegate.errors import MonitorError, StoreError
from tunegate.monitor import read_state
from tunegate.review import Actor, allowed, review_status
from tunegate.store import Store, VersionRecord
from tunegate.store.decision_log import DecisionEntry, read_decisions
from tunegate.store.reviews import batch_decisions, batch_items, open_batches

# Lineage keys shown on their own line of the version page; the rest go in the lineage table.
_HEADLINE_KEYS = ("spec", "created_by")


def models_overview(store: Store) -> list[dict[str, Any]]:
    """One row per model name: how many versions, and which version holds each live stage."""
    by_name: dict[str, list[VersionRecord]] = defaultdict(list)
    for version in store.meta.list_versions():
        by_name[version.name].append(version)
    rows = []
    for name, versions in sorted(by_name.items()):
        stage_of = {v.stage: v for v in versions}
        rows.append(
            {
                "name": name,
                "task": versions[-1].task,
                "versions": len(versions),
                "latest": versions[-1],
                "production": stage_of.get("production"),
                "staging": stage_of.get("staging"),
            }
        )
    return rows


def _concerns(entry: DecisionEntry, name: str) -> bool:
    refs = [c.get("ref", "") for c in entry.payload.get("changes") or []]
    subjects = [entry.subject, *refs]
    return any(s == name or s.startswith(f"{name}@") for s in subjects)


def timeline(store: Store, name: str) -> list[dict[str, Any]]:
    """The model's decision-log entries (register, gate, sign-off, promote, rollback ...), newest first."""
    events = []
    for entry in read_decisions(store.meta):
        if not _concerns(entry, name):
            continue
        changes = [
            f"{c['ref']}: {c.get('from') or 'new'} → {c['to']}" for c in entry.payload.get("changes") or []
        ]
        events.append(
            {
                "seq": entry.seq,
                "when": entry.recorded_at[:19].replace("T", " "),
                "actor": entry.actor,
                "action": entry.action,
                "subject": entry.subject,
                "reason": entry.reason,
                "changes": changes,
                "stage_change": bool(changes),
            }
        )
    return events[::-1]


def version_rows(store: Store, name: str) -> list[dict[str, Any]]:
    rows = []
    for version in store.meta.list_versions(name)[::-1]:
        gate = store.meta.latest_gate(version.id)
        rows.append({"version": version, "gate": None if gate is None else gate.passed})
    return rows


def training_log(store: Store, version: VersionRecord) -> list[float]:
    """Loss per logged step from the artifact's training-log.json; [] when it has none.

    Two shapes exist: the classifier trainer writes {"loss": [...]}, the SFT trainer writes the
    Hugging Face log history (a list of dicts, some with "loss").
    """
    try:
        path = store.artifacts.get_tree(version.artifact_sha256, verify=False) / "training-log.json"
    except StoreError:
        return []
    if not path.is_file():
        return []
    raw = json.loads(path.read_text())
    if isinstance(raw, dict):
        values = raw.get("loss") or []
    else:
        values = [row["loss"] for row in raw if isinstance(row, dict) and "loss" in row]
    return [float(v) for v in values if isinstance(v, int | float)]


def data_report(store: Store, version: VersionRecord) -> dict[str, Any] | None:
    """The data-check report stored with the version's artifact (data-report.json), or None."""
    try:
        path = store.artifacts.get_tree(version.artifact_sha256, verify=False) / "data-report.json"
    except StoreError:
        return None
    return json.loads(path.read_text()) if path.is_file() else None


def version_detail(store: Store, actor: Actor, version: VersionRecord) -> dict[str, Any]:
    evaluation = store.meta.latest_evaluation(version.id)
    gate = store.meta.latest_gate(version.id)
    status = review_status(store, actor, version.ref)
    lineage = {k: v for k, v in version.lineage.items() if k not in _HEADLINE_KEYS}
    can_promote = allowed(actor.role, "promote")
    return {
        "version": version,
        "spec_json": json.dumps(version.lineage.get("spec"), indent=2, sort_keys=True, default=str),
        "created_by": version.lineage.get("created_by", "—"),
        "lineage": sorted(
            (k, json.dumps(v, default=str) if isinstance(v, dict | list) else v) for k, v in lineage.items()
        ),
        "summary": (evaluation.results.get("summary") or {}) if evaluation else {},
        "data_report": data_report(store, version),
        "evaluation": evaluation,
        "gate": gate,
        "review": status,
        "promote_to": (
            {"candidate": "staging", "staging": "production"}.get(version.stage) if can_promote else None
        ),
    }


def gate_targets(verdict: dict[str, Any]) -> list[dict[str, Any]]:
    """The gate verdict's targets as table rows (the stored verdict dict, not a re-decision)."""
    relation = {"min": "≥", "above": ">", "max": "≤"}

    def num(x: Any) -> str:
        return "—" if not isinstance(x, int | float) or isinstance(x, bool) else f"{x:.4g}"

    return [
        {
            "name": t.get("name", "?"),
            "threshold": f"{relation.get(t.get('bound', ''), t.get('bound', ''))} {num(t.get('threshold'))}",
            "measured": num(t.get("measured")),
            "interval": "—" if t.get("low") is None else f"{num(t.get('low'))} – {num(t.get('high'))}",
            "passed": bool(t.get("passed")),
            "sentence": t.get("sentence", ""),
        }
        for t in verdict.get("targets") or []
    ]


def review_queue(store: Store, actor: Actor) -> list[dict[str, Any]]:
    """Every open batch with its items and this reviewer's latest decision on each."""
    queue = []
    for batch in open_batches(store.meta):
        mine: dict[int, dict[str, Any]] = {}
        for d in batch_decisions(store.meta, batch.id):  # in order: later ones replace earlier ones
            if d.reviewer == actor.name:
                mine[d.item_id] = {"approve": d.approve, "comment": d.comment}
        items = [
            {
                "id": i.id,
                "position": i.position,
                "text": i.text,
                "label": i.label,
                "predicted": i.predicted,
                "confidence": i.confidence,
                "reasons": i.reasons,
                "mine": mine.get(i.id),
            }
            for i in batch_items(store.meta, batch.id)
        ]
        status = review_status(store, actor, batch.version_ref)
        queue.append({"batch": batch, "items": items, "verdict": status.verdict, "run_by": batch.run_by})
    return queue


def reviewable_versions(store: Store) -> list[VersionRecord]:
    """Candidates and staging versions with an evaluation and no open batch: a review can be opened."""
    open_ids = {b.version_id for b in open_batches(store.meta)}
    return [
        v
        for v in store.meta.list_versions()
        if v.stage in ("candidate", "staging")
        and v.id not in open_ids
        and store.meta.latest_evaluation(v.id) is not None
    ]


def monitoring(store: Store) -> dict[str, Any]:
    """The monitor's state file, each version labelled with its registry stage (production / canary)."""
    try:
        state = read_state(store)
    except MonitorError as exc:
        return {"error": str(exc), "versions": []}
    versions = []
    for ref, entry in state.get("versions", {}).items():
        try:
            stage = store.meta.resolve(ref).stage
        except Exception:  # a ref from another workspace's state file: show it, unlabelled
            stage = "unknown"
        role = {"production": "production", "staging": "canary"}.get(stage, stage)
        latest = entry["windows"][-1] if entry.get("windows") else {}
        versions.append({"ref": ref, "role": role, "latest": latest, **entry})
    order = {"production": 0, "canary": 1}
    versions.sort(key=lambda v: (order.get(v["role"], 2), v["ref"]))
    return {
        "error": None,
        "versions": versions,
        "window_s": state.get("window_s"),
        "updated_at": state.get("updated_at"),
        "incidents": state.get("incidents", [])[-10:],
        "alerts": state.get("alerts", [])[-10:],
    }
