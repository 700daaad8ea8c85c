"""What the server tells its observers (the monitor) about each request and each piece of feedback.

The serve stage cannot import monitor/ (stages depend forward only), so the monitor subscribes: an
observer is a callable that takes an event and must return at once (it runs on the event loop; heavy
work belongs on the observer's own thread). Texts are raw here; whoever stores them redacts them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class RequestEvent:
    request_id: str
    time_s: float  # unix time the request arrived
    endpoint: str  # classify | chat | embeddings | feedback | other
    status_code: int
    latency_ms: float
    model_ref: str | None = None  # name@version that answered
    model_name: str | None = None
    route: str | None = None  # production | canary | staging
    texts: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    confidences: tuple[float, ...] = ()  # per text (classify) or one mean token log-probability (chat)
    escalated: int = 0
    embeddings: np.ndarray | None = field(default=None, compare=False)  # [texts, dim], classify only
    user: str | None = None


@dataclass(frozen=True)
class FeedbackEvent:
    request_id: str
    time_s: float
    correct: bool | None
    label: str | None
    model_ref: str | None


Observer = Callable[[RequestEvent | FeedbackEvent], None]
