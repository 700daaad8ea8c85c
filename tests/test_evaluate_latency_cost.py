"""Latency measurement on a model of known speed, and the cost arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from tunegate.errors import EvalError
from tunegate.evaluate.cost import cost_summary, training_cost_usd, usd_per_1k_requests
from tunegate.evaluate.latency import measure_latency


class SleepyModel:
    """Takes `delay_s` per call; records each call's batch."""

    labels = ("x", "y")

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.calls: list[tuple[int, int]] = []  # (texts, batch_size)

    def predict_proba(self, texts, batch_size=32):
        import time

        self.calls.append((len(texts), batch_size))
        time.sleep(self.delay_s)
        return np.full((len(texts), 2), 0.5)


def test_latency_percentiles_reflect_the_model_and_warmup_is_untimed():
    model = SleepyModel(0.002)
    texts = [f"text {i}" for i in range(7)]
    out = measure_latency(
        model, texts, requests=20, throughput_batch_size=4, batch_sizes=(3,), target_hardware="laptop"
    )

    assert set(out["by_batch_size"]) == {"1", "3"}
    single = out["by_batch_size"]["1"]
    assert len(single["samples_ms"]) == 20 == single["requests"]
    assert 2.0 <= single["p50_ms"] <= single["p95_ms"] <= single["p99_ms"]
    assert out["warmup_requests"] == 5
    # per batch size: 5 warm-up + 20 timed requests of that many texts
    assert model.calls.count((1, 1)) == 25 and model.calls.count((3, 3)) == 25
    throughput = out["throughput"]
    assert throughput["batch_size"] == 4 and throughput["texts"] == 16  # 7 texts cycled to 4 batches
    assert 0 < throughput["texts_per_s"] < 16 / 0.002
    assert out["hardware"]["target_hardware"] == "laptop"
    assert out["hardware"]["torch_num_threads"] >= 1 and out["hardware"]["cpu_model"]
    assert out["versions"]["numpy"] == np.__version__


def test_latency_without_texts_is_an_eval_error():
    with pytest.raises(EvalError, match="no texts"):
        measure_latency(SleepyModel(0), [], requests=10, throughput_batch_size=2)


def test_cost_arithmetic():
    assert training_cost_usd(3600, 2.0) == pytest.approx(2.0)
    assert training_cost_usd(90, 0.4) == pytest.approx(0.01)
    # 100 texts/s at $3.60/h: 10 s per 1k requests = $0.01
    assert usd_per_1k_requests(100, 3.6) == pytest.approx(0.01)


def test_cost_summary_states_the_assumption_and_leaves_unmeasured_costs_empty():
    full = cost_summary(training_wall_s=1800, throughput_per_s=500, hourly_price_usd=1.0)
    assert full["training_usd"] == pytest.approx(0.5)
    assert full["usd_per_1k_requests"] == pytest.approx(1000 / 500 / 3600)
    assert "measured throughput" in full["assumption"]
    empty = cost_summary(training_wall_s=None, throughput_per_s=0.0, hourly_price_usd=1.0)
    assert empty["training_usd"] is None and empty["usd_per_1k_requests"] is None
