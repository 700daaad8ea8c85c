"""Alerts: to the log always, and as JSON POSTed to the spec's webhook when one is set.

The webhook is called from a background thread with a short timeout and no retries: an alert sink
that is down must never slow serving, and the alert is in the log and in `tunegate monitor` anyway.
The payload is plain JSON ({"kind", "model", "message", "details", "time"}), which Slack-style
incoming webhooks and generic receivers accept.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import httpx

log = logging.getLogger("tunegate.monitor")


class Alerts:
    def __init__(self, webhook_url: str | None = None, timeout_s: float = 5.0) -> None:
        self.webhook_url = webhook_url
        self.timeout_s = timeout_s
        self.sent: list[dict[str, Any]] = []  # what was raised, newest last (the monitor shows the tail)
        self.webhook_failures = 0
        self._threads: list[threading.Thread] = []

    def raise_alert(self, kind: str, model: str, message: str, details: dict[str, Any] | None = None) -> None:
        payload = {
            "kind": kind,
            "model": model,
            "message": message,
            "details": details or {},
            "time": time.time(),
        }
        log.warning("ALERT %s %s: %s", kind, model, message)
        self.sent.append(payload)
        del self.sent[:-200]
        if self.webhook_url:
            thread = threading.Thread(target=self._post, args=(payload,), daemon=True, name="alert-webhook")
            thread.start()
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]

    def _post(self, payload: dict[str, Any]) -> None:
        try:
            httpx.post(self.webhook_url, json=payload, timeout=self.timeout_s).raise_for_status()  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            self.webhook_failures += 1
            log.error("alert webhook %s failed: %s", self.webhook_url, exc)

    def wait(self, timeout_s: float = 10.0) -> None:
        """Wait for webhook deliveries in flight (tests, shutdown)."""
        for thread in list(self._threads):
            thread.join(timeout_s)
