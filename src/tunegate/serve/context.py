"""Everything a request handler needs, built once per app by `create_app` and kept on `app.state.ctx`."""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from tunegate.serve.errors_http import ApiError
from tunegate.serve.escalation import HumanSignals
from tunegate.serve.events import FeedbackEvent, Observer, RequestEvent
from tunegate.serve.holder import ModelHolder
from tunegate.serve.metrics import ServeMetrics
from tunegate.serve.settings import ServeSettings

log = logging.getLogger("tunegate.serve")

_RECENT_REQUESTS = 100_000  # request id -> model ref, so feedback can name the version it is about


@dataclass
class ServeContext:
    settings: ServeSettings
    holder: ModelHolder
    signals: HumanSignals
    metrics: ServeMetrics
    inference: ThreadPoolExecutor  # encoder forwards: serve.inference_workers at a time
    generation: ThreadPoolExecutor  # chat generation, so a long answer never blocks classification
    observers: list[Observer] = field(default_factory=list)
    recent: OrderedDict[str, str] = field(default_factory=OrderedDict)
    shutting_down: bool = False

    def remember(self, request_id: str, model_ref: str) -> None:
        self.recent[request_id] = model_ref
        if len(self.recent) > _RECENT_REQUESTS:
            self.recent.popitem(last=False)

    def notify(self, event: RequestEvent | FeedbackEvent) -> None:
        for observer in self.observers:
            try:
                observer(event)
            except Exception:  # an observer's bug must never fail a request
                log.exception("observer %r failed", observer)

    def authenticate(self, request: Request) -> str | None:
        """The user behind the request's API key (`Authorization: Bearer KEY`), or 401."""
        header = request.headers.get("authorization", "")
        key = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if not self.settings.require_api_key:
            return self.settings.authenticate(key) if (key and self.settings.authenticate) else None
        if not key:
            raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>'", code="missing_api_key")
        user = self.settings.authenticate(key) if self.settings.authenticate else None
        if user is None:
            raise ApiError(401, "invalid or revoked API key", code="invalid_api_key")
        return user


def new_request_id(prefix: str = "req") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def record(request: Request, **detail: Any) -> None:
    """Attach what the handler learned (model, texts, confidences) for the request event built at the end."""
    request.state.tunegate = {**getattr(request.state, "tunegate", {}), **detail}


def record_route(
    request: Request, *, endpoint: str, request_id: str, served: Any, route: str, user: str | None
) -> None:
    """Who answers the request: recorded first, so a failure later is counted against that version.
    Later `record` calls add results to it."""
    record(
        request,
        endpoint=endpoint,
        request_id=request_id,
        model_ref=served.ref,
        model_name=served.version.name,
        route=route,
        user=user,
    )


def now_s() -> int:
    return int(time.time())
