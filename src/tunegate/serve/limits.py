"""The guard in front of /v1: body size (413), concurrency (429 + Retry-After), timing.

A plain ASGI middleware rather than Starlette's BaseHTTPMiddleware, because it must see streamed
responses end (a streamed chat completion holds its concurrency slot until its last chunk) and
must refuse before the body is read into a request object.

Overload policy: there is no waiting room. A request beyond `max_concurrency` is answered 429 at
once with Retry-After, so latency for the accepted ones stays bounded and a client backs off; an
unbounded queue would accept everything and time all of it out. Everything outside /v1 (health,
metrics, dashboard) passes untouched, so a saturated server still answers its health checks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from tunegate.serve.errors_http import error_body

Scope = dict[str, Any]
# (scope, status code, latency ms) after the last byte of the response was sent
OnComplete = Callable[[Scope, int, float], None]


class Limits:
    """The guard's configuration and its one counter, shared by the app (batching hint, metrics)."""

    def __init__(
        self,
        *,
        max_concurrency: int,
        max_body_bytes: int,
        retry_after_s: int = 1,
        on_complete: OnComplete | None = None,
        on_reject: Callable[[str], None] | None = None,
        prefix: str = "/v1/",
    ) -> None:
        self.max_concurrency = max_concurrency
        self.max_body_bytes = max_body_bytes
        self.retry_after_s = retry_after_s
        self.on_complete = on_complete
        self.on_reject = on_reject
        self.prefix = prefix
        self.inflight = 0  # only touched on the event loop thread


class Gatekeeper:
    """ASGI middleware: `app.add_middleware(Gatekeeper, limits=Limits(...))`."""

    def __init__(self, app: Any, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.limits.prefix):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        scope.setdefault("state", {})["arrived_s"] = time.time()
        if self.limits.inflight >= self.limits.max_concurrency:
            await self._refuse(
                scope,
                send,
                429,
                f"the server is at its concurrency limit ({self.limits.max_concurrency}); retry later",
                "concurrency",
                started,
                [(b"retry-after", str(self.limits.retry_after_s).encode())],
            )
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limits.max_body_bytes:
            await self._refuse(scope, send, 413, self._too_large(declared), "body_size", started)
            return
        self.limits.inflight += 1
        status = 500
        try:
            body, more = b"", True
            while more:  # read the whole body first: it is small, and the limit must hold before parsing
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body += message.get("body", b"")
                more = message.get("more_body", False)
                if len(body) > self.limits.max_body_bytes:
                    await self._refuse(scope, send, 413, self._too_large(len(body)), "body_size", started)
                    status = 413
                    return
            replayed = False

            async def replay() -> dict[str, Any]:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            async def send_and_watch(message: dict[str, Any]) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            await self.app(scope, replay, send_and_watch)
        finally:
            self.limits.inflight -= 1
            if self.limits.on_complete and status != 413:
                self.limits.on_complete(scope, status, (time.perf_counter() - started) * 1000)

    def _too_large(self, size: int) -> str:
        return f"request body of {size} bytes is over the limit of {self.limits.max_body_bytes} bytes"

    async def _refuse(
        self,
        scope: Scope,
        send: Any,
        status: int,
        message: str,
        reason: str,
        started: float,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        payload = json.dumps(error_body(status, message, code=reason)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    *(headers or []),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
        if self.limits.on_reject:
            self.limits.on_reject(reason)
        if self.limits.on_complete:
            self.limits.on_complete(scope, status, (time.perf_counter() - started) * 1000)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
