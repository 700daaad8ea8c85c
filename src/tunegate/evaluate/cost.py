"""What a model costs, in US dollars, from measured time and the spec's hourly hardware price.

    training_usd            = training wall seconds x hourly price / 3600
    usd_per_1k_requests     = (1000 / measured throughput in texts per second) x hourly price / 3600

The serving figure assumes batched serving at the measured throughput with the hardware fully used
(one request = one text); a lightly loaded server costs more per request. The assumption travels with
the numbers in the results so nobody reads them as more than they are.

Pure functions only: no timing (latency.py measures) and no judging (gate/ does).
"""

from __future__ import annotations

import math
from typing import Any

SECONDS_PER_HOUR = 3600.0
SERVING_ASSUMPTION = (
    "serving cost assumes batched serving at the measured throughput with the hardware fully used "
    "(one request = one text), billed at the hourly price"
)


def training_cost_usd(training_wall_s: float, hourly_price_usd: float) -> float:
    return training_wall_s * hourly_price_usd / SECONDS_PER_HOUR


def usd_per_1k_requests(throughput_per_s: float, hourly_price_usd: float) -> float:
    return 1000.0 / throughput_per_s * hourly_price_usd / SECONDS_PER_HOUR


def cost_summary(
    *, training_wall_s: float | None, throughput_per_s: float | None, hourly_price_usd: float
) -> dict[str, Any]:
    """Both costs with their inputs; a cost whose input was not measured (or is not positive) is None."""
    training = (
        training_cost_usd(training_wall_s, hourly_price_usd)
        if training_wall_s is not None and math.isfinite(training_wall_s) and training_wall_s >= 0
        else None
    )
    serving = (
        usd_per_1k_requests(throughput_per_s, hourly_price_usd)
        if throughput_per_s is not None and math.isfinite(throughput_per_s) and throughput_per_s > 0
        else None
    )
    return {
        "hourly_price_usd": hourly_price_usd,
        "training_wall_s": training_wall_s,
        "throughput_per_s": throughput_per_s,
        "training_usd": training,
        "usd_per_1k_requests": serving,
        "assumption": SERVING_ASSUMPTION,
    }
