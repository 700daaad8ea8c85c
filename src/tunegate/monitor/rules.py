"""The spec's rollback rules, judged on the latest windows: which fire. Pure.

A rule fires when it is breached in each of the last `consecutive_windows` windows of the production
version, and each of those windows carries enough evidence: `min_requests` answered requests (and,
for the feedback rule, MIN_FEEDBACK judged feedback items). One bad window is noise; two in a row is
a pattern. Drift windows are counted in texts, not seconds, so the drift rule looks at the last
drift verdicts instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tunegate.monitor.windows import WindowStats
from tunegate.spec.schema import RollbackSpec

MIN_FEEDBACK = 10


@dataclass(frozen=True)
class Firing:
    rule: str  # error_rate | p95_latency_ms | negative_feedback_rate | drift
    observed: list[float]  # the rule's value in each judged window, oldest first
    limit: float

    def describe(self) -> str:
        values = ", ".join(f"{v:.4g}" for v in self.observed)
        return f"{self.rule} above {self.limit:.4g} in {len(self.observed)} windows in a row ({values})"


def _breached(values: list[float | None], limit: float) -> bool:
    return all(v is not None and v > limit for v in values)


def evaluate(
    windows: Sequence[WindowStats],
    drift_scores: Sequence[float],
    drift_threshold: float | None,
    rules: RollbackSpec,
) -> list[Firing]:
    """Rules that fire on the latest windows (oldest first in both sequences)."""
    k = rules.consecutive_windows
    firing: list[Firing] = []
    recent = list(windows[-k:])
    if len(recent) == k and all(w.requests >= rules.min_requests for w in recent):
        checks: list[tuple[str, float | None, list[float | None]]] = [
            ("error_rate", rules.error_rate_max, [w.error_rate for w in recent]),
            ("p95_latency_ms", rules.p95_latency_ms_max, [w.p95_latency_ms for w in recent]),
        ]
        if all(w.feedback >= MIN_FEEDBACK for w in recent):
            checks.append(
                (
                    "negative_feedback_rate",
                    rules.negative_feedback_rate_max,
                    [w.negative_feedback_rate for w in recent],
                )
            )
        for name, limit, values in checks:
            if limit is not None and _breached(values, limit):
                firing.append(Firing(name, [float(v) for v in values if v is not None], limit))
    scores = list(drift_scores[-k:])
    if (
        rules.drift
        and drift_threshold is not None
        and len(scores) == k
        and _breached(scores, drift_threshold)
    ):
        firing.append(Firing("drift", scores, drift_threshold))
    return firing
