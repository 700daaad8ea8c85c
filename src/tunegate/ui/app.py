"""Mounting the dashboard: on the serving app (`tunegate serve`) or alone (`tunegate ui`).

`mount(app, store)` adds the /ui router to an existing FastAPI app; the CLI calls it on the app
`serve.create_app` built, so `serve` never imports `ui` (the layers run ui above serve).
`create_dashboard_app(store)` is the dashboard without the model server: nothing is loaded, so it
starts in a moment and needs no torch; `tunegate ui` runs it with serve's `run_server`.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from tunegate.store import Store
from tunegate.ui.routes import dashboard_router


def mount(app: FastAPI, store: Store) -> FastAPI:
    app.include_router(dashboard_router(store))
    return app


def create_dashboard_app(store: Store) -> FastAPI:
    app = FastAPI(title="tunegate dashboard", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/ui", status_code=303)

    @app.get("/health/live", include_in_schema=False)
    def live() -> dict[str, str]:
        return {"status": "live"}

    return mount(app, store)
