"""`tunegate bench` against a real uvicorn server: closed and open loop, and every failure counted by kind."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from test_serve_support import classifier_folder, free_port, key_lookup, register, running_server
from tunegate.serve import ServeSettings, create_app
from tunegate.serve.bench import run_bench
from tunegate.store import open_store

TEXTS = ["my parcel is late", "refund please", "the app crashes when I log in", "change my address"]


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    store = open_store(root / "ws")
    register(store, classifier_folder(root), "tickets")
    with running_server(create_app(store, ServeSettings(authenticate=key_lookup))) as url:
        yield url


def test_closed_loop_counts_answers_and_latencies(server_url) -> None:
    result = asyncio.run(
        run_bench(server_url, TEXTS, api_key="sk-test-alice", concurrency=4, duration_s=1.5, warmup_s=0.3)
    )
    assert result.requests > 0 and result.ok == result.requests and result.errors == 0
    assert result.outcomes == {"200": result.requests}
    assert (
        0 < result.p50_latency_ms <= result.p95_latency_ms <= result.p99_latency_ms <= result.max_latency_ms
    )
    assert result.throughput_rps == pytest.approx(result.ok / result.duration_s, rel=1e-3)  # duration rounded


def test_open_loop_offers_the_rate_it_was_given(server_url) -> None:
    result = asyncio.run(
        run_bench(server_url, TEXTS, api_key="sk-test-alice", rate_rps=20, duration_s=2.0, warmup_s=0)
    )
    assert result.rate_rps == 20 and result.errors == 0
    assert 36 <= result.requests <= 41  # 20/s for 2 s, scheduled whatever the server does


def test_refusals_and_transport_errors_are_counted_by_kind(server_url) -> None:
    unauthorised = asyncio.run(run_bench(server_url, TEXTS, concurrency=2, duration_s=0.5, warmup_s=0))
    assert unauthorised.ok == 0 and set(unauthorised.outcomes) == {"401"}
    unknown = asyncio.run(
        run_bench(
            server_url,
            TEXTS,
            api_key="sk-test-alice",
            model="nope",
            concurrency=2,
            duration_s=0.5,
            warmup_s=0,
        )
    )
    assert set(unknown.outcomes) == {"404"}
    nobody = asyncio.run(
        run_bench(f"http://127.0.0.1:{free_port()}", TEXTS, concurrency=2, duration_s=0.3, warmup_s=0)
    )
    assert nobody.ok == 0 and nobody.errors == nobody.requests > 0
    assert set(nobody.outcomes) == {"ClientConnectorError"}


def test_cli_writes_the_report(server_url, tmp_path) -> None:
    data = tmp_path / "texts.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    out = tmp_path / "bench.json"
    command = [sys.executable, "-m", "tunegate", "bench", server_url, str(data), "-o", str(out)]
    command += ["--concurrency", "2", "--duration-s", "1", "--api-key", "sk-test-alice"]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    report = json.loads(out.read_text())
    assert report["runs"][0]["ok"] > 0 and report["runs"][0]["errors"] == 0
