"""One monitoring window of one served version, summarised: errors, latency, confidence, feedback.

Pure: `summarize` takes the window's request and feedback events and returns numbers. What counts:
  error_rate             5xx answers / answered requests (4xx are the client's mistakes, 429 is the
                         server protecting itself: both are reported, neither is an error of the model)
  latency percentiles    over all answered requests of the version, in ms
  confidence             top-class probability per classified text (classify) or mean token
                         log-probability per answer (chat); histogram over [0, 1] for probabilities
  feedback               feedback events about this version's responses; negative = marked wrong
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from tunegate.serve.events import FeedbackEvent, RequestEvent

CONFIDENCE_BINS = 10


@dataclass(frozen=True)
class WindowStats:
    model_ref: str
    start_s: float
    end_s: float
    requests: int
    errors: int
    error_rate: float
    client_errors: int
    rejected: int
    p50_latency_ms: float | None
    p95_latency_ms: float | None
    p99_latency_ms: float | None
    texts: int
    mean_confidence: float | None
    escalated: int
    confidence_histogram: list[int]
    feedback: int
    negative_feedback: int
    negative_feedback_rate: float | None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _percentile(values: np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def summarize(
    model_ref: str,
    requests: Sequence[RequestEvent],
    feedback: Sequence[FeedbackEvent],
    start_s: float,
    end_s: float,
) -> WindowStats:
    answered = [e for e in requests if e.status_code not in (429, 413)]
    latencies = np.array([e.latency_ms for e in answered], dtype=float)
    errors = sum(1 for e in answered if e.status_code >= 500)
    client_errors = sum(1 for e in answered if 400 <= e.status_code < 500)
    confidences = np.array(
        [c for e in answered if e.endpoint == "classify" for c in e.confidences], dtype=float
    )
    histogram = (
        np.histogram(confidences, bins=CONFIDENCE_BINS, range=(0.0, 1.0))[0] if len(confidences) else []
    )
    judged = [f for f in feedback if f.correct is not None]
    negative = sum(1 for f in judged if f.correct is False)
    return WindowStats(
        model_ref=model_ref,
        start_s=start_s,
        end_s=end_s,
        requests=len(answered),
        errors=errors,
        error_rate=errors / len(answered) if answered else 0.0,
        client_errors=client_errors,
        rejected=len(requests) - len(answered),
        p50_latency_ms=_percentile(latencies, 50),
        p95_latency_ms=_percentile(latencies, 95),
        p99_latency_ms=_percentile(latencies, 99),
        texts=len(confidences),
        mean_confidence=float(confidences.mean()) if len(confidences) else None,
        escalated=sum(e.escalated for e in answered),
        confidence_histogram=[int(x) for x in histogram],
        feedback=len(feedback),
        negative_feedback=negative,
        negative_feedback_rate=negative / len(judged) if judged else None,
    )
