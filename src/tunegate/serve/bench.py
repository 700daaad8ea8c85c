"""`tunegate bench`: replay a dataset against a running server and measure what its users would see.

Two ways to load it:
  concurrency N (closed loop)   N clients, each sends its next request when the last one is answered:
                                the server's capacity at that concurrency.
  rate R (open loop)            requests are *scheduled* R per second whatever the server does, with at
                                most N outstanding; latency counts from the scheduled time, so a server
                                that falls behind is charged for the wait (no coordinated omission).

Reports throughput (answered requests per second), latency percentiles over successful requests, and
every non-2xx status or transport error by kind. The client shares the machine with the server when
both run locally: its CPU time is part of what is measured, and the report says so. That is why the
client is aiohttp, not httpx: on this project's 2-core machine httpx's AsyncClient spent 2.9 CPU-ms
per request, a sixth of the whole server's cost, which a load generator should not take from the
server it measures.
"""

from __future__ import annotations

import asyncio
import csv
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from tunegate.errors import ServeError


@dataclass(frozen=True)
class BenchResult:
    endpoint: str
    concurrency: int
    rate_rps: float | None
    duration_s: float
    requests: int
    ok: int
    errors: int
    outcomes: dict[str, int]  # "200", "429", "ReadTimeout", ...
    throughput_rps: float
    p50_latency_ms: float
    p95_latency_ms: float
    p99_latency_ms: float
    mean_latency_ms: float
    max_latency_ms: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_texts(path: Path, text_field: str = "text") -> list[str]:
    """Texts from JSONL (a field), CSV/TSV (a column) or plain text (one per line)."""
    suffix = path.suffix.lower()
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ServeError(f"{path}: cannot read the dataset to replay ({exc})") from exc
    if suffix in (".jsonl", ".json"):
        texts = []
        for line_number, line in enumerate(raw.splitlines(), 1):
            if line.strip():
                try:
                    texts.append(str(json.loads(line)[text_field]))
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    raise ServeError(f"{path}:{line_number}: no {text_field!r} field ({exc})") from exc
    elif suffix in (".csv", ".tsv"):
        reader = csv.DictReader(raw.splitlines(), delimiter="\t" if suffix == ".tsv" else ",")
        if text_field not in (reader.fieldnames or []):
            raise ServeError(f"{path}: no column {text_field!r} (columns: {reader.fieldnames})")
        texts = [row[text_field] for row in reader]
    else:
        texts = [line for line in raw.splitlines() if line.strip()]
    if not texts:
        raise ServeError(f"{path}: no texts to replay")
    return texts


def request_body(endpoint: str, text: str, model: str | None) -> dict[str, Any]:
    if endpoint == "chat":
        return {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 16}
    return {"model": model, "input": text}


async def run_bench(
    url: str,
    texts: list[str],
    *,
    endpoint: str = "classify",
    model: str | None = None,
    api_key: str | None = None,
    concurrency: int = 32,
    rate_rps: float | None = None,
    duration_s: float = 30.0,
    warmup_s: float = 2.0,
    timeout_s: float = 30.0,
) -> BenchResult:
    path = {"classify": "/v1/classify", "embeddings": "/v1/embeddings", "chat": "/v1/chat/completions"}[
        endpoint
    ]
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    target = url.rstrip("/") + path
    latencies_ms: list[float] = []
    outcomes: Counter[str] = Counter()
    counter = iter(range(1 << 62))
    measuring = False

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector, headers=headers, timeout=timeout) as client:

        async def one(scheduled: float) -> None:
            body = request_body(endpoint, texts[next(counter) % len(texts)], model)
            try:
                async with client.post(target, json=body) as response:
                    await response.read()
                    outcome = str(response.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                outcome = type(exc).__name__
            if measuring:
                outcomes[outcome] += 1
                if outcome.startswith("2"):
                    latencies_ms.append((time.perf_counter() - scheduled) * 1000)

        async def closed_loop(until: float) -> None:
            while time.perf_counter() < until:
                await one(time.perf_counter())

        async def open_loop(until: float) -> None:
            assert rate_rps is not None
            slots = asyncio.Semaphore(concurrency)
            pending: set[asyncio.Task[None]] = set()
            start, n = time.perf_counter(), 0
            while True:
                scheduled = start + n / rate_rps
                if scheduled >= until:
                    break
                await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
                await slots.acquire()

                async def run(at: float = scheduled) -> None:
                    try:
                        await one(at)
                    finally:
                        slots.release()

                task = asyncio.create_task(run())
                pending.add(task)
                task.add_done_callback(pending.discard)
                n += 1
            await asyncio.gather(*pending)

        async def phase(seconds: float) -> float:
            began = time.perf_counter()
            until = began + seconds
            if rate_rps is None:
                await asyncio.gather(*(closed_loop(until) for _ in range(concurrency)))
            else:
                await open_loop(until)
            return time.perf_counter() - began

        if warmup_s > 0:
            await phase(warmup_s)
        measuring = True
        elapsed = await phase(duration_s)

    lat = np.array(latencies_ms) if latencies_ms else np.array([np.nan])
    ok = sum(v for k, v in outcomes.items() if k.startswith("2"))
    total = sum(outcomes.values())
    return BenchResult(
        endpoint=endpoint,
        concurrency=concurrency,
        rate_rps=rate_rps,
        duration_s=round(elapsed, 3),
        requests=total,
        ok=ok,
        errors=total - ok,
        outcomes=dict(sorted(outcomes.items())),
        throughput_rps=ok / elapsed,
        p50_latency_ms=float(np.percentile(lat, 50)),
        p95_latency_ms=float(np.percentile(lat, 95)),
        p99_latency_ms=float(np.percentile(lat, 99)),
        mean_latency_ms=float(lat.mean()),
        max_latency_ms=float(lat.max()),
    )
