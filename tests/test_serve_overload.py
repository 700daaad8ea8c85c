"""Overload: beyond the concurrency limit the server answers 429 with Retry-After at once, and every
request it accepted still succeeds. Graceful shutdown finishes in-flight requests."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from test_serve_support import classifier_folder, key_lookup, register, running_server, serve_process
from tunegate.serve import ServeSettings, create_app
from tunegate.store import open_store

AUTH = {"Authorization": "Bearer sk-test-alice"}
LONG = "my parcel has not arrived and nobody answers my emails about it " * 6


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("overload")
    store = open_store(root / "ws")
    register(store, classifier_folder(root), "tickets")
    return store


def test_beyond_the_limit_429_and_no_accepted_request_fails(store) -> None:
    app = create_app(store, ServeSettings(authenticate=key_lookup, max_concurrency=4, batch_max_items=4))
    outcomes: list[tuple[int, str | None, float]] = []

    async def one(client: httpx.AsyncClient) -> None:
        started = time.perf_counter()
        r = await client.post("/v1/classify", json={"input": [LONG] * 4})
        outcomes.append((r.status_code, r.headers.get("retry-after"), time.perf_counter() - started))
        if r.status_code == 429:
            assert r.json()["error"]["type"] == "rate_limit_error"

    async def main(url: str) -> None:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=120, limits=limits) as client:
            await asyncio.gather(*(one(client) for _ in range(64)))

    with running_server(app) as url:
        asyncio.run(main(url))
    statuses = [s for s, _, _ in outcomes]
    assert statuses.count(429) > 0 and statuses.count(200) >= 4
    assert set(statuses) == {200, 429}  # nothing accepted failed, nothing timed out
    assert all(retry == "1" for s, retry, _ in outcomes if s == 429)
    slowest_refusal = max(t for s, _, t in outcomes if s == 429)
    slowest_answer = max(t for s, _, t in outcomes if s == 200)
    assert slowest_refusal < slowest_answer  # refused at once, not after queueing


def test_a_request_over_its_timeout_gets_504_not_a_hang(store) -> None:
    app = create_app(store, ServeSettings(authenticate=key_lookup, request_timeout_s=0.001))
    with running_server(app) as url:
        r = httpx.post(f"{url}/v1/classify", json={"input": [LONG] * 64}, headers=AUTH, timeout=60)
    assert r.status_code == 504 and r.json()["error"]["code"] == "timeout"


def test_serve_applies_the_serve_section_of_spec(store, tmp_path) -> None:
    spec = Path(__file__).parents[1] / "examples" / "support-intents" / "tunegate.yaml"
    text = spec.read_text().replace("name: support-intents", "name: tickets")
    (tmp_path / "tunegate.yaml").write_text(
        text + "\nserve:\n  max_input_tokens: 8\n  encoder_sub_batch: 4\n  inference_workers: 2\n"
        "  split_batches: true\n"
    )
    with serve_process(
        store.workspace.root, "--no-auth", "--spec", str(tmp_path / "tunegate.yaml"), "--no-monitor"
    ) as (
        _,
        url,
    ):
        short = httpx.post(f"{url}/v1/classify", json={"model": "tickets", "input": ["my parcel"] * 6})
        long = httpx.post(f"{url}/v1/classify", json={"model": "tickets", "input": [LONG]})
    assert short.status_code == 200 and len(short.json()["results"]) == 6
    assert len({r["label"] for r in short.json()["results"]}) == 1  # one text six times, split over 2 workers
    assert long.status_code == 400 and "8" in long.json()["error"]["message"]


def test_sigterm_lets_in_flight_requests_finish(store) -> None:
    with serve_process(store.workspace.root, "--no-auth") as (process, url):
        results: list[int] = []

        def send() -> None:
            results.append(
                httpx.post(f"{url}/v1/classify", json={"input": [LONG] * 16}, timeout=120).status_code
            )

        senders = [threading.Thread(target=send) for _ in range(6)]
        for t in senders:
            t.start()
        time.sleep(0.5)  # the requests are in flight
        process.send_signal(signal.SIGTERM)
        for t in senders:
            t.join(120)
        # uvicorn re-raises the signal once it has shut down cleanly, so the exit status is SIGTERM's.
        assert process.wait(60) in (0, -signal.SIGTERM)
    assert results == [200] * 6
