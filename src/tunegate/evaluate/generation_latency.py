"""How fast a chat model answers: time to first token, generation speed and per-request latency.

Each request is one greedy generation at batch 1 (what an interactive user waits for), timed with
`ChatModel.generate_timed`, after one warm-up request. Prompts cycle through the test prompts in
order, so prompt lengths match the real ones. Reported per model:
- ttft_ms: prompt in, first new token out (p50, p95): the prefill;
- latency_ms: the whole answer (p50, p95, p99, mean);
- tokens_per_s: new tokens after the first / time after the first (p50): the decode speed.
Cost per request is derived in `generation.py` from batched throughput (cost.py's convention).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tunegate.evaluate.latency import hardware_info
from tunegate.models.causal_lm import ChatModel


def _pcts(values: Sequence[float], which: Sequence[int]) -> dict[str, float]:
    points = np.percentile(np.asarray(values, dtype=float), list(which))
    return {f"p{w}": float(v) for w, v in zip(which, points, strict=True)}


def measure_chat_latency(
    model: ChatModel, prompts: Sequence[list[dict[str, str]]], requests: int, max_new_tokens: int
) -> dict[str, Any]:
    if not prompts:
        return {"requests": 0}
    model.generate_timed(prompts[0], max_new_tokens=max_new_tokens)  # warm-up, not counted
    ttft_ms, total_ms, speed, new_tokens = [], [], [], []
    for i in range(requests):
        timed = model.generate_timed(prompts[i % len(prompts)], max_new_tokens=max_new_tokens)
        ttft_ms.append(timed.ttft_s * 1000)
        total_ms.append(timed.total_s * 1000)
        tokens = timed.completion.completion_tokens
        new_tokens.append(tokens)
        decode_s = timed.total_s - timed.ttft_s
        if tokens > 1 and decode_s > 0:
            speed.append((tokens - 1) / decode_s)
    return {
        "requests": requests,
        "batch_size": 1,
        "max_new_tokens": max_new_tokens,
        "ttft_ms": _pcts(ttft_ms, (50, 95)),
        "latency_ms": {**_pcts(total_ms, (50, 95, 99)), "mean": float(np.mean(total_ms))},
        "tokens_per_s": _pcts(speed, (50,)) if speed else {"p50": None},
        "completion_tokens_mean": float(np.mean(new_tokens)),
        "hardware": hardware_info(),
    }
