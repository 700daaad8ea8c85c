"""The request log: one JSON line per answered request, personal data masked. The one writer of it.

    <workspace>/monitor/requests-YYYY-MM-DD.jsonl

A line holds the request id, time, endpoint, status, latency, model version, route, labels and
confidences, and the input texts passed through `tunegate.data.pii.redact` (emails, phone, card,
IBAN and national-ID numbers masked) and cut to `max_text_chars`. Embeddings are not logged. Written
from the monitor's thread, never from a request.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import IO

from tunegate.data.pii import redact
from tunegate.serve.events import FeedbackEvent, RequestEvent


class RequestLog:
    def __init__(self, folder: Path, max_text_chars: int = 2000) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_text_chars = max_text_chars
        self._day = ""
        self._fh: IO[str] | None = None

    def _file(self, when_s: float) -> IO[str]:
        day = time.strftime("%Y-%m-%d", time.gmtime(when_s))
        if day != self._day or self._fh is None:
            if self._fh is not None:
                self._fh.close()
            self._fh = (self.folder / f"requests-{day}.jsonl").open("a", encoding="utf-8")
            self._day = day
        return self._fh

    def write(self, events: list[RequestEvent | FeedbackEvent]) -> None:
        if not events:
            return
        fh = self._file(events[-1].time_s or time.time())
        for event in events:
            fh.write(json.dumps(self.line(event), ensure_ascii=False) + "\n")
        fh.flush()

    def line(self, event: RequestEvent | FeedbackEvent) -> dict[str, object]:
        if isinstance(event, FeedbackEvent):
            return {
                "type": "feedback",
                "request_id": event.request_id,
                "time": event.time_s,
                "correct": event.correct,
                "label": event.label,
                "model": event.model_ref,
            }
        return {
            "type": "request",
            "request_id": event.request_id,
            "time": event.time_s,
            "endpoint": event.endpoint,
            "status": event.status_code,
            "latency_ms": round(event.latency_ms, 3),
            "model": event.model_ref,
            "route": event.route,
            "user": event.user,
            "labels": list(event.labels),
            "confidences": [round(c, 5) for c in event.confidences],
            "escalated": event.escalated,
            "texts": [redact(t)[: self.max_text_chars] for t in event.texts],
        }

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
