"""How fast the classifier answers on this machine, and on what this machine is.

Latency is timed per request with `time.perf_counter` around `predict_proba`, after warm-up requests
(first calls pay for lazy initialisation and cold caches, which a serving process pays once). Request
texts are drawn from the test set in a seeded order, so text length matches what the model will see.
Throughput is texts per second when the whole text list is sent in batches of the throughput batch
size — the number serving cost is based on.

Timings are only comparable on the same hardware, so the hardware (platform, CPU model, torch threads,
GPU if any) and library versions are recorded next to them.

Deliberately not here: timing over HTTP (serve/ measures that), judging against targets (gate/).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from tunegate.errors import EvalError

VERSIONED_LIBRARIES = (
    "tunegate",
    "torch",
    "onnxruntime",  # runs the encoder of classifiers with inference_runtime: onnxruntime
    "transformers",
    "sentence-transformers",
    "scikit-learn",
    "numpy",
)
# Throughput is measured on at least this many texts (cycling the test set when it is smaller),
# and at most MAX_THROUGHPUT_TEXTS, so a big test set does not turn a measurement into a long job.
MIN_THROUGHPUT_BATCHES = 4
MAX_THROUGHPUT_TEXTS = 1024


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what `platform` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def hardware_info() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_num_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def library_versions(names: Iterable[str] = VERSIONED_LIBRARIES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _percentiles_ms(samples_ms: list[float]) -> dict[str, float]:
    p50, p95, p99 = np.percentile(samples_ms, [50, 95, 99])
    return {
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "mean_ms": float(np.mean(samples_ms)),
    }


def time_requests(
    model: Any, texts: list[str], *, batch_size: int, requests: int, warmup: int, seed: int
) -> dict[str, Any]:
    """Time `requests` calls of `batch_size` texts each (after `warmup` untimed calls)."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(texts), size=(warmup + requests, batch_size))
    for row in picks[:warmup]:
        model.predict_proba([texts[i] for i in row], batch_size=batch_size)
    samples_ms = []
    for row in picks[warmup:]:
        batch = [texts[i] for i in row]
        start = time.perf_counter()
        model.predict_proba(batch, batch_size=batch_size)
        samples_ms.append((time.perf_counter() - start) * 1000.0)
    return {
        "batch_size": batch_size,
        "requests": requests,
        **_percentiles_ms(samples_ms),
        "samples_ms": samples_ms,
    }


def measure_throughput(model: Any, texts: list[str], *, batch_size: int) -> dict[str, Any]:
    """Texts per second when `texts` (cycled/trimmed to a measured amount) go in batches of batch_size."""
    n_texts = min(max(len(texts), MIN_THROUGHPUT_BATCHES * batch_size), MAX_THROUGHPUT_TEXTS)
    n_texts = max(n_texts, batch_size)
    workload = [texts[i % len(texts)] for i in range(n_texts)]
    model.predict_proba(workload[:batch_size], batch_size=batch_size)  # warm-up at this batch shape
    start = time.perf_counter()
    model.predict_proba(workload, batch_size=batch_size)
    wall_s = time.perf_counter() - start
    return {
        "batch_size": batch_size,
        "texts": n_texts,
        "wall_s": wall_s,
        "texts_per_s": n_texts / wall_s if wall_s > 0 else None,
    }


def measure_latency(
    model: Any,
    texts: list[str],
    *,
    requests: int,
    throughput_batch_size: int,
    batch_sizes: Iterable[int] = (1,),
    target_hardware: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Latency percentiles per batch size (always including 1), throughput, hardware and versions.

    Shape: {"requests", "warmup_requests", "by_batch_size": {"1": {batch_size, requests, p50_ms, p95_ms,
    p99_ms, mean_ms, samples_ms}, ...}, "throughput": {batch_size, texts, wall_s, texts_per_s},
    "hardware": {..., "target_hardware"}, "versions": {...}}.
    """
    if not texts:
        raise EvalError("latency: no texts to time (the test set is empty)")
    warmup = max(5, requests // 10)
    by_batch_size = {
        str(size): time_requests(model, texts, batch_size=size, requests=requests, warmup=warmup, seed=seed)
        for size in sorted({1, *batch_sizes})
    }
    return {
        "requests": requests,
        "warmup_requests": warmup,
        "by_batch_size": by_batch_size,
        "throughput": measure_throughput(model, texts, batch_size=throughput_batch_size),
        "hardware": {**hardware_info(), "target_hardware": target_hardware},
        "versions": library_versions(),
    }
