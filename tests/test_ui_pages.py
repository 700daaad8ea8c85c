"""Dashboard pages and actions in-process (FastAPI's TestClient): login, cookie, roles, refusals.

No browser and no model here (fake versions from governance_support), so these run in the default
suite everywhere; tests/test_ui_browser.py drives the same pages in headless Chromium.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from governance_support import fake_version, make_users
from tunegate.review import revoke
from tunegate.store import open_store
from tunegate.store.lifecycle import force_stage
from tunegate.ui import create_dashboard_app

FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture
def setup(tmp_path):
    store = open_store(tmp_path / "ws")
    users = make_users(store)
    old = fake_version(store, "clf")
    force_stage(store.meta, old.id, "production", actor="test", reason="setup")
    new = fake_version(store, "clf")
    client = TestClient(create_dashboard_app(store))
    return store, {name: key for name, (_, key) in users.items()}, new, client


def logged_in(client: TestClient, key: str) -> TestClient:
    response = client.post("/ui/login", content=f"api_key={key}", headers=FORM, follow_redirects=False)
    assert response.status_code == 303
    return client


def test_pages_need_a_login_and_the_cookie_is_httponly_strict(setup):
    _, keys, _, client = setup
    response = client.get("/ui/review", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/ui/login?next=/ui/review"
    assert client.post("/ui/api/promote", json={"ref": "clf@2", "to": "staging"}).status_code == 401
    bad = client.post("/ui/login", content="api_key=tg_nope", headers=FORM, follow_redirects=False)
    assert bad.status_code == 401 and "unknown API key" in bad.text
    response = client.post(
        "/ui/login", content=f"api_key={keys['vera']}&next=/ui/monitor", headers=FORM, follow_redirects=False
    )
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/ui" in cookie
    assert response.headers["location"] == "/ui/monitor"
    assert client.get("/ui/review").status_code == 200


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/ui", "/ui//evil.example"])
def test_login_never_redirects_off_the_dashboard(setup, target):
    _, keys, _, client = setup
    response = client.post(
        "/ui/login", content=f"api_key={keys['vera']}&next={target}", headers=FORM, follow_redirects=False
    )
    assert response.headers["location"] == "/ui"


def test_buttons_follow_the_role_and_the_server_rechecks_it(setup):
    store, keys, new, _ = setup
    app = create_dashboard_app(store)
    for name, sees_buttons in (("vera", False), ("rita", False), ("admin", True)):
        client = logged_in(TestClient(app), keys[name])
        assert ('id="promote"' in client.get(f"/ui/versions/{new.ref}").text) is sees_buttons, name
        assert ('id="rollback"' in client.get("/ui/models/clf").text) is sees_buttons, name
    reviewer = logged_in(TestClient(app), keys["rita"])
    assert reviewer.post("/ui/api/promote", json={"ref": new.ref, "to": "staging"}).status_code == 403
    assert reviewer.post("/ui/api/rollback", json={"name": "clf"}).status_code == 403
    viewer = logged_in(TestClient(app), keys["vera"])
    assert viewer.post("/ui/api/review/open", json={"ref": new.ref}).status_code == 403
    admin = logged_in(TestClient(app), keys["admin"])
    refused = admin.post("/ui/api/promote", json={"ref": new.ref, "to": "staging"})
    assert refused.status_code == 409 and refused.json()["codes"] == ["no_signoff"]
    assert store.meta.resolve(new.ref).stage == "candidate"


def test_a_revoked_key_stops_working_at_once(setup):
    store, keys, _, client = setup
    logged_in(client, keys["ravi"])
    assert client.get("/ui", follow_redirects=False).status_code == 200
    revoke(store, keys["admin"], "ravi")
    assert client.get("/ui", follow_redirects=False).status_code == 303


def test_static_files_are_a_fixed_list(setup):
    _, _, _, client = setup
    assert client.get("/ui/static/review.js").status_code == 200
    assert client.get("/ui/static/..%2Froutes.py").status_code == 404
    assert client.get("/ui/static/routes.py").status_code == 404
