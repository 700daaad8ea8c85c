"""A rollback rule that fires during load: production goes back to the previous version, no request
fails, and the decision log holds the incident and the rollback (real server, real registry, real log)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import httpx

from test_serve_support import classifier_folder, key_lookup, register, running_server
from tunegate.monitor import Monitor
from tunegate.serve import ServeSettings, create_app
from tunegate.spec.schema import MonitorSpec, RollbackSpec
from tunegate.store import open_store
from tunegate.store.decision_log import read_decisions, verify_chain

AUTH = {"Authorization": "Bearer sk-test-alice"}
TEXTS = ["my card was charged twice", "where is my parcel", "call me at +44 20 7946 0958", "the app crashes"]


def test_negative_feedback_rule_rolls_back_under_load_without_failed_requests(tmp_path) -> None:
    store = open_store(tmp_path / "ws")
    v1 = register(store, classifier_folder(tmp_path, seed=0), "tickets")
    v2 = register(store, classifier_folder(tmp_path, seed=1), "tickets")  # promoted over v1
    assert store.meta.resolve("tickets@production").id == v2.id
    rules = RollbackSpec(
        error_rate_max=0.05,
        negative_feedback_rate_max=0.5,
        drift=False,
        consecutive_windows=2,
        min_requests=10,
    )
    monitor = Monitor(store, rules=rules, settings=MonitorSpec(window_s=1.5), tick_s=0.1).start()
    app = create_app(
        store, ServeSettings(authenticate=key_lookup, reload_interval_s=0.2), observers=[monitor.observe]
    )
    statuses: list[int] = []
    answered_by: list[str] = []

    async def user(url: str, stop: asyncio.Event, n: int) -> None:
        async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=60) as client:
            i = n
            while not stop.is_set():
                r = await client.post("/v1/classify", json={"input": TEXTS[i % len(TEXTS)]})
                statuses.append(r.status_code)
                body = r.json()
                answered_by.append(body.get("model", "?"))
                # Users are unhappy with v2's answers and say so; v1's they accept.
                verdict = body.get("model") != "tickets@2"
                f = await client.post(
                    "/v1/feedback", json={"request_id": body.get("id", "?"), "correct": verdict}
                )
                statuses.append(f.status_code)
                i += 1

    async def main(url: str) -> None:
        stop = asyncio.Event()
        users = [asyncio.create_task(user(url, stop, n)) for n in range(12)]
        for _ in range(600):
            await asyncio.sleep(0.1)
            if answered_by[-20:].count("tickets@1") == 20:
                break
        await asyncio.sleep(1.0)  # load goes on after the swap
        stop.set()
        await asyncio.gather(*users)

    with running_server(app) as url:
        asyncio.run(main(url))
    monitor.stop()

    assert statuses and set(statuses) == {200}, f"failed requests: {[s for s in statuses if s != 200][:5]}"
    assert "tickets@2" in answered_by and answered_by[-1] == "tickets@1", answered_by[-30:]
    assert store.meta.resolve("tickets@production").id == v1.id
    entries = read_decisions(store.meta)
    incident = next(e for e in entries if e.action == "incident")
    rollback = next(e for e in entries if e.action == "rollback")
    assert incident.actor == "system:monitor" and incident.subject == "tickets@2"
    assert "negative_feedback_rate" in incident.reason
    assert incident.seq < rollback.seq and rollback.actor == "system:monitor"
    assert rollback.payload["from"] == "tickets@2" and rollback.payload["to"] == "tickets@1"
    assert verify_chain(entries).ok
    assert monitor.incidents and monitor.incidents[0]["outcome"] == "rolled back to tickets@1", (
        monitor.incidents
    )

    state = json.loads((store.workspace.root / "monitor" / "state.json").read_text())
    assert state["incidents"][0]["version"] == "tickets@2"
    logged = [
        json.loads(line)
        for f in (store.workspace.root / "monitor").glob("requests-*.jsonl")
        for line in f.read_text().splitlines()
    ]
    texts = [t for line in logged if line["type"] == "request" for t in line["texts"]]
    assert texts and not any("7946 0958" in t for t in texts)  # the phone number is masked in the log
    assert any("[phone:" in t for t in texts)

    shown = subprocess.run(
        [sys.executable, "-m", "tunegate", "monitor", "--workspace", str(tmp_path / "ws")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert shown.returncode == 0, shown.stderr
    assert (
        "tickets@2" in shown.stdout
        and "incident" in shown.stdout
        and "rolled back to tickets@1" in shown.stdout
    )
