"""Running the server: API-key checks against the workspace's users, and uvicorn with graceful shutdown.

`tunegate serve` = `configure_threads()` + `create_app(store, settings_for(...), observers)` +
`run_server(app, ...)`.
On SIGTERM / Ctrl-C uvicorn stops accepting connections, lets in-flight requests finish (up to
`graceful_shutdown_s`), then the app's lifespan drains the batchers and flushes the review queue.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from tunegate.errors import AccessDenied
from tunegate.review.access import authenticate
from tunegate.serve.settings import Authenticator, ServeSettings
from tunegate.spec.schema import ServeSpec, Spec
from tunegate.store import Store


def configure_threads() -> None:
    """Make torch's OpenMP threads sleep, not spin, between forwards. Call before torch is imported.

    By default idle OpenMP workers busy-wait for the next parallel region. In a server that is the
    wrong trade: the event loop (parsing, tokenizing, answering) needs those cores between forwards.
    Measured on 2 shared cores: 200 CPU-ms per single classify request with spinning, 17 with PASSIVE.
    An explicit OMP_WAIT_POLICY in the environment wins.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def split_cores(workers: int) -> int:
    """torch threads per inference worker: the cores this process may use, shared out between workers."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = max(1, cores // workers)
    torch.set_num_threads(threads)
    return threads


def store_authenticator(store: Store, cache_s: float = 5.0) -> Authenticator:
    """Key -> user name via the workspace's users; a revoked key stops working within `cache_s`."""
    cache: dict[str, tuple[float, str | None]] = {}

    def lookup(key: str) -> str | None:
        now = time.monotonic()
        hit = cache.get(key)
        if hit is not None and now - hit[0] < cache_s:
            return hit[1]
        try:
            user: str | None = authenticate(store, key).name
        except AccessDenied:
            user = None
        if len(cache) > 10_000:  # bounded: a flood of random keys must not grow memory
            cache.clear()
        cache[key] = (now, user)
        return user

    return lookup


def settings_for(
    store: Store,
    spec: Spec | None,
    *,
    models: Sequence[str] = (),
    require_api_key: bool | None = None,
) -> ServeSettings:
    section = spec.serve if spec is not None else ServeSpec()
    overrides: dict[str, object] = {"models": tuple(models) or ((spec.name,) if spec is not None else ())}
    if require_api_key is not None:
        overrides["require_api_key"] = require_api_key
    settings = ServeSettings.from_spec(section, **overrides)
    if settings.require_api_key:
        settings = ServeSettings.from_spec(section, **overrides, authenticate=store_authenticator(store))
    return settings


def run_server(app: object, *, host: str, port: int, graceful_shutdown_s: float = 30.0) -> None:
    import uvicorn

    uvicorn.run(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        timeout_graceful_shutdown=int(graceful_shutdown_s),
        log_level="info",
        backlog=2048,
        access_log=False,
    )
