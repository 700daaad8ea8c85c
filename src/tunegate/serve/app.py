"""The HTTP server: `create_app(store, settings)` builds the FastAPI app that `tunegate serve` runs.

    POST /v1/classify            labels + probabilities; low confidence flagged and queued for review
    POST /v1/chat/completions    OpenAI-compatible, `stream: true` as server-sent events
    POST /v1/embeddings          OpenAI-compatible (float or base64)
    POST /v1/feedback            a user's verdict on an earlier response (by its id)
    POST /admin/reload           re-read the registry now (promote / rollback done elsewhere)
    GET  /metrics                Prometheus text format
    GET  /health/live            the process answers
    GET  /health/ready           a production version is loaded and the server is not shutting down

Order of the guards on /v1: concurrency and body size (Gatekeeper, before parsing) -> API key ->
validation (400) -> model routing (404) -> token limit (400) -> timeout (504). Every refusal is an
OpenAI-style error body. Graceful shutdown is uvicorn's (stop accepting, finish in-flight requests);
the lifespan then drains the batchers and flushes the review queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from tunegate.errors import ServeError
from tunegate.serve import api_chat, api_text
from tunegate.serve.context import ServeContext
from tunegate.serve.errors_http import ApiError, error_response
from tunegate.serve.escalation import HumanSignals
from tunegate.serve.events import Observer, RequestEvent
from tunegate.serve.holder import ModelHolder
from tunegate.serve.limits import Gatekeeper, Limits
from tunegate.serve.metrics import ServeMetrics
from tunegate.serve.settings import ServeSettings
from tunegate.store import Store, VersionRecord

log = logging.getLogger("tunegate.serve")


def create_app(store: Store, settings: ServeSettings, observers: Sequence[Observer] = ()) -> FastAPI:
    """The app; models load in its lifespan (so the process is live before it is ready)."""
    if settings.require_api_key and settings.authenticate is None:
        raise ServeError(
            "serve.require_api_key is true but no API keys can be checked: create a key "
            "(tunegate users add) or set serve.require_api_key: false for a local, closed network"
        )
    metrics = ServeMetrics()
    limits = Limits(
        max_concurrency=settings.max_concurrency,
        max_body_bytes=settings.max_body_bytes,
        on_reject=lambda reason: metrics.rejected.labels(reason).inc(),
    )

    def on_swap(name: str, route: str, version: VersionRecord | None) -> None:
        metrics.served_version.labels(name, route).set(version.version if version else 0)
        log.info("serving %s@%s -> %s", name, route, version.ref if version else "nothing")

    ctx = ServeContext(
        settings=settings,
        holder=None,  # type: ignore[arg-type]  # set below: the holder needs the executor
        signals=HumanSignals(store.meta.engine),
        metrics=metrics,
        inference=ThreadPoolExecutor(settings.inference_workers, thread_name_prefix="inference"),
        generation=ThreadPoolExecutor(1, thread_name_prefix="generation"),
        observers=list(observers),
    )
    ctx.holder = ModelHolder(
        store,
        settings,
        ctx.inference,
        inflight_hint=lambda: limits.inflight,
        on_batch=metrics.batch_size.observe,
        on_swap=on_swap,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        changes = await ctx.holder.sync()
        log.info("loaded: %s", "; ".join(changes) or "no production version yet")
        poller = asyncio.get_running_loop().create_task(_poll_registry(ctx))
        try:
            yield
        finally:
            ctx.shutting_down = True
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            await ctx.holder.close()
            await asyncio.to_thread(ctx.signals.close)
            ctx.inference.shutdown(wait=True)
            ctx.generation.shutdown(wait=True)

    app = FastAPI(title="tunegate", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.ctx = ctx
    app.include_router(api_text.router)
    app.include_router(api_chat.router)
    _add_error_handlers(app)
    _add_operational_routes(app, ctx, limits)

    def on_complete(scope: dict[str, Any], status: int, latency_ms: float) -> None:
        state = scope.get("state", {})
        detail = state.get("tunegate", {})
        endpoint = detail.get("endpoint") or scope["path"].rsplit("/", 1)[-1]
        metrics.requests.labels(
            endpoint, detail.get("model_ref", "-"), detail.get("route", "-"), str(status)
        ).inc()
        metrics.latency.labels(endpoint).observe(latency_ms / 1000)
        ctx.notify(
            RequestEvent(
                request_id=detail.get("request_id", ""),
                time_s=state.get("arrived_s", 0.0),
                endpoint=endpoint,
                status_code=status,
                latency_ms=latency_ms,
                model_ref=detail.get("model_ref"),
                model_name=detail.get("model_name"),
                route=detail.get("route"),
                texts=detail.get("texts", ()),
                labels=detail.get("labels", ()),
                confidences=detail.get("confidences", ()),
                escalated=detail.get("escalated", 0),
                embeddings=detail.get("embeddings"),
                user=detail.get("user"),
            )
        )

    limits.on_complete = on_complete
    app.add_middleware(Gatekeeper, limits=limits)
    return app


async def _poll_registry(ctx: ServeContext) -> None:
    while True:
        await asyncio.sleep(ctx.settings.reload_interval_s)
        try:
            changes = await ctx.holder.sync()
            for change in changes:
                log.warning("registry changed: %s", change)
        except Exception:  # a broken new version must not take the serving one down
            log.exception("reloading from the registry failed; still serving the loaded versions")


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(
            exc.status_code, exc.message, param=exc.param, code=exc.code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error_response(
            400, f"{where or 'body'}: {first.get('msg', 'invalid request')}", param=where or None
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        # Logged with its traceback by Starlette; the client gets the same error shape as any refusal.
        return error_response(500, f"internal error ({type(exc).__name__}); the server log has the details")

    @app.exception_handler(ServeError)
    async def _serve_error(request: Request, exc: ServeError) -> JSONResponse:
        return error_response(503, str(exc))


def _add_operational_routes(app: FastAPI, ctx: ServeContext, limits: Limits) -> None:
    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "live"}

    @app.get("/health/ready")
    async def ready() -> JSONResponse:
        ok = bool(ctx.holder.deployments) and not ctx.shutting_down
        body = {"status": "ready" if ok else "not ready", "models": ctx.holder.describe()}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        ctx.metrics.inflight.set(limits.inflight)
        return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/admin/reload")
    async def reload(request: Request) -> dict[str, Any]:
        ctx.authenticate(request)
        return {"changes": await ctx.holder.sync(), "models": ctx.holder.describe()}
