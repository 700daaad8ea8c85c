"""The dashboard's pages and actions: `dashboard_router(store)` returns a FastAPI router under /ui.

    GET  /ui/login, POST /ui/login     API-key login; sets an HttpOnly, SameSite=Strict cookie
    POST /ui/logout
    GET  /ui                           models
    GET  /ui/models/{name}             versions, stage timeline (decision log), rollback (admin)
    GET  /ui/versions/{ref}            spec, data fingerprint, lineage, loss curve, promote (admin)
    GET  /ui/versions/{ref}/gate       gate verdict: targets table and the evaluation's plots
    GET  /ui/versions/{ref}/gate-report.html   the stored, standalone gate report (evidence bytes)
    GET  /ui/review                    the review queue (keyboard: a r c j k)
    GET  /ui/monitor                   latency, errors, drift, feedback of production and canary
    POST /ui/api/review/open|decide, /ui/api/promote, /ui/api/rollback   JSON in, JSON out

Every page and action needs a logged-in user (the cookie, or `Authorization: Bearer KEY` for
scripts); the key is checked with `review.authenticate` on every request, so a revoked key stops
working at once. Actions call the library (`review.open_review`, `review.decide`,
`registry.promote`, `registry.rollback`), which checks the role again; buttons a role may not use
are not rendered, and their endpoints refuse with 403 anyway. Actions take JSON only: a cross-site
HTML form cannot send `application/json`, and the cookie is SameSite=Strict (the CSRF defence).

Deliberately not here: deciding anything (the library does), what pages show (views.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from pydantic import BaseModel, Field

from tunegate.errors import AccessDenied, PromotionRefused, StoreError, TunegateError
from tunegate.gate.plots import calibration_curve_png, confusion_matrix_png, latency_histogram_png
from tunegate.registry import promote, rollback
from tunegate.review import Actor, allowed, authenticate, decide, open_review
from tunegate.store import Store
from tunegate.ui import charts, views

COOKIE = "tunegate_key"
_HERE = Path(__file__).parent
_STATIC = {"dashboard.css": "text/css", "dashboard.js": "text/javascript", "review.js": "text/javascript"}
_TEMPLATES = Environment(
    loader=FileSystemLoader(_HERE / "templates"),
    autoescape=select_autoescape(["html", "j2"]),
    undefined=StrictUndefined,  # a typo in a template is an error, not a blank cell
)


class OpenBody(BaseModel):
    ref: str


class DecideBody(BaseModel):
    item_id: int
    approve: bool
    comment: str = Field("", max_length=4000)


class PromoteBody(BaseModel):
    ref: str
    to: str
    reason: str = Field("", max_length=4000)


class RollbackBody(BaseModel):
    name: str
    reason: str = Field("", max_length=4000)


def _key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.cookies.get(COOKIE)


def current_actor(store: Store, request: Request) -> Actor | None:
    key = _key(request)
    if not key:
        return None
    try:
        return authenticate(store, key)
    except AccessDenied:
        return None


def _refusal(exc: TunegateError) -> JSONResponse:
    status = 403 if isinstance(exc, AccessDenied) else 409 if isinstance(exc, PromotionRefused) else 400
    body: dict[str, Any] = {"error": str(exc)}
    if isinstance(exc, PromotionRefused):
        body["codes"] = list(exc.reasons)
    return JSONResponse(body, status_code=status)


def _unauthenticated() -> JSONResponse:
    return JSONResponse({"error": "log in first (or send Authorization: Bearer KEY)"}, status_code=401)


def dashboard_router(store: Store) -> APIRouter:
    router = APIRouter(prefix="/ui", include_in_schema=False)

    def page(request: Request, template: str, actor: Actor, **context: Any) -> HTMLResponse:
        html = _TEMPLATES.get_template(template).render(
            actor=actor,
            can=lambda action: allowed(actor.role, action),
            path=request.url.path,
            **context,
        )
        return HTMLResponse(html)

    def login_redirect(request: Request) -> RedirectResponse:
        return RedirectResponse(f"/ui/login?next={quote(request.url.path)}", status_code=303)

    @router.get("/login")
    def login_form(next: str = "/ui", error: str = "") -> HTMLResponse:
        return HTMLResponse(
            _TEMPLATES.get_template("login.html.j2").render(next=_safe_next(next), error=error)
        )

    @router.post("/login")
    async def login(request: Request) -> Response:
        # A two-field urlencoded form, parsed here: no python-multipart dependency for one form.
        fields = parse_qs((await request.body()).decode("utf-8", "replace"))
        key = (fields.get("api_key") or [""])[0].strip()
        target = _safe_next((fields.get("next") or ["/ui"])[0])
        try:
            actor = authenticate(store, key)
        except AccessDenied as exc:
            html = _TEMPLATES.get_template("login.html.j2").render(next=target, error=str(exc))
            return HTMLResponse(html, status_code=401)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, key, httponly=True, samesite="strict", path="/ui")
        response.headers["x-tunegate-user"] = actor.name
        return response

    @router.post("/logout")
    def logout() -> RedirectResponse:
        response = RedirectResponse("/ui/login", status_code=303)
        response.delete_cookie(COOKIE, path="/ui")
        return response

    @router.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in _STATIC:  # a fixed list: no path from the URL ever reaches the file system
            return Response(status_code=404)
        return FileResponse(_HERE / "static" / name, media_type=_STATIC[name])

    @router.get("")
    def models_page(request: Request) -> Response:
        if (actor := current_actor(store, request)) is None:
            return login_redirect(request)
        return page(request, "models.html.j2", actor, models=views.models_overview(store))

    @router.get("/models/{name}")
    def model_page(request: Request, name: str) -> Response:
        if (actor := current_actor(store, request)) is None:
            return login_redirect(request)
        rows = views.version_rows(store, name)
        if not rows:
            return HTMLResponse(f"no model named {name!r}", status_code=404)
        production = next((r["version"] for r in rows if r["version"].stage == "production"), None)
        return page(
            request,
            "model.html.j2",
            actor,
            name=name,
            rows=rows,
            production=production,
            timeline=views.timeline(store, name),
        )

    @router.get("/versions/{ref}")
    def version_page(request: Request, ref: str) -> Response:
        if (actor := current_actor(store, request)) is None:
            return login_redirect(request)
        try:
            version = store.meta.resolve(ref)
        except TunegateError as exc:
            return HTMLResponse(str(exc), status_code=404)
        detail = views.version_detail(store, actor, version)
        loss_png = charts.loss_curve_png(views.training_log(store, version))
        return page(request, "version.html.j2", actor, loss_png=loss_png, **detail)

    @router.get("/versions/{ref}/gate")
    def gate_page(request: Request, ref: str) -> Response:
        if (actor := current_actor(store, request)) is None:
            return login_redirect(request)
        try:
            version = store.meta.resolve(ref)
        except TunegateError as exc:
            return HTMLResponse(str(exc), status_code=404)
        gate = store.meta.latest_gate(version.id)
        evaluation = store.meta.latest_evaluation(version.id)
        results = evaluation.results if evaluation else {}
        # The gate report's own figure functions, drawn from the evaluation results the gate judged.
        plots = [
            (
                "confusion-matrix",
                "Confusion matrix",
                confusion_matrix_png(results.get("confusion"), results.get("labels") or []),
            ),
            ("calibration-curve", "Calibration", calibration_curve_png(results.get("calibration"))),
            ("latency-histogram", "Latency", latency_histogram_png(results.get("latency"))),
        ]
        return page(
            request,
            "gate.html.j2",
            actor,
            version=version,
            gate=gate,
            targets=views.gate_targets(gate.verdict) if gate else [],
            summary=results.get("summary") or {},
            plots=plots,
            has_report=gate is not None and _stored_report(store, gate.report_sha256) is not None,
        )

    @router.get("/versions/{ref}/gate-report.html")
    def stored_report(request: Request, ref: str) -> Response:
        if current_actor(store, request) is None:
            return login_redirect(request)
        gate = store.meta.latest_gate(store.meta.resolve(ref).id)
        path = None if gate is None else _stored_report(store, gate.report_sha256)
        if path is None:
            return HTMLResponse("no stored gate report for this version", status_code=404)
        return FileResponse(path, media_type="text/html")

    @router.get("/review")
    def review_page(request: Request) -> Response:
        if (actor := current_actor(store, request)) is None:
            return login_redirect(request)
        queue = views.review_queue(store, actor) if allowed(actor.role, "review") else []
        return page(
            request,
            "review.html.j2",
            actor,
            queue=queue,
            queue_json=json.dumps([{"batch_id": q["batch"].id, "items": q["items"]} for q in queue]),
            reviewable=views.reviewable_versions(store) if allowed(actor.role, "review") else [],
        )

    @router.get("/monitor")
    def monitor_page(request: Request) -> Response:
        if (actor := current_actor(store, request)) is None:
            return login_redirect(request)
        state = views.monitoring(store)
        return page(
            request,
            "monitor.html.j2",
            actor,
            state=state,
            chart=charts.monitoring_png(state["versions"], now_s=state.get("updated_at")),
        )

    # -- actions: the library checks the role again; these only translate errors to HTTP ------------

    @router.post("/api/review/open")
    def api_open(request: Request, body: OpenBody) -> JSONResponse:
        if (actor := current_actor(store, request)) is None:
            return _unauthenticated()
        try:
            opened = open_review(store, actor, body.ref)
        except TunegateError as exc:
            return _refusal(exc)
        return JSONResponse(
            {"batch_id": opened.batch.id, "items": len(opened.items), "reused": opened.reused}
        )

    @router.post("/api/review/decide")
    def api_decide(request: Request, body: DecideBody) -> JSONResponse:
        if (actor := current_actor(store, request)) is None:
            return _unauthenticated()
        try:
            outcome = decide(store, actor, body.item_id, body.approve, body.comment)
        except TunegateError as exc:
            return _refusal(exc)
        return JSONResponse(
            {
                "item_id": body.item_id,
                "approve": body.approve,
                "counts": outcome.counts,
                "batch_status": outcome.batch.status,
                "verdict": outcome.verdict.to_dict(),
                "signed_off": outcome.signoff is not None,
            }
        )

    @router.post("/api/promote")
    def api_promote(request: Request, body: PromoteBody) -> JSONResponse:
        if (actor := current_actor(store, request)) is None:
            return _unauthenticated()
        try:
            result = promote(store, actor, body.ref, body.to, reason=body.reason)
        except TunegateError as exc:
            return _refusal(exc)
        return JSONResponse({"changes": [c.to_dict() for c in result.changes]})

    @router.post("/api/rollback")
    def api_rollback(request: Request, body: RollbackBody) -> JSONResponse:
        if (actor := current_actor(store, request)) is None:
            return _unauthenticated()
        try:
            result = rollback(store, actor, body.name, reason=body.reason or "rollback from the dashboard")
        except TunegateError as exc:
            return _refusal(exc)
        return JSONResponse({"changes": [c.to_dict() for c in result.changes]})

    return router


def _safe_next(target: str) -> str:
    """Only local dashboard paths: a login link must not redirect to another site."""
    return target if target.startswith("/ui") and "//" not in target else "/ui"


def _stored_report(store: Store, report_sha256: str) -> Path | None:
    try:
        path = store.artifacts.get_tree(report_sha256, verify=False) / "gate-report.html"
    except StoreError:
        return None
    return path if path.is_file() else None
