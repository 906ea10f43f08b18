"""The dashboard in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright)
against a real worker and API: an analyst signs in, sees incidents arrive without reloading,
acknowledges one and approves its playbook's waiting step, and watches both take effect live;
hostile markup in events stays text and runs nothing. Screenshots go to
RESPONDER_TEST_SCREENSHOTS (default: the test's tmp_path)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from responder.service.identity import Role
from tests.support.stack import Stack, running_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LIVE_S = 60_000  # ms: a worker and Kafka in between, on a busy 2-core machine
XSS_TITLE = '<img src=x onerror="window.__xss=1;alert(1)"><script>window.__xss=2</script>'
XSS_RESOURCE = "<svg onload=window.__xss=3>"


def tampered(event_id: str, resource: str, title: str) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return {
        "id": event_id,
        "source": "modelscan",
        "type": "model.tampered",
        "time": now,
        "severity": "critical",
        "title": title,
        "resource": {"kind": "model", "id": resource},
    }


def shoot(page: Any, path: Path) -> None:
    """A full-page screenshot without a focus ring in it."""
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.screenshot(path=str(path), full_page=True)


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    chosen = os.environ.get("RESPONDER_TEST_SCREENSHOTS")
    out = Path(chosen) if chosen else tmp_path / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture
def stack(kafka_bootstrap: str, pg_schema_url: str, unique: str, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(kafka_bootstrap, pg_schema_url, unique, tmp_path) as running:
        yield running


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.fail("Debian's chromium is missing: apt-get install chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


def test_an_analyst_works_an_incident_live_in_a_real_browser(
    stack: Stack, browser: Any, shots: Path
) -> None:
    """Sign in, incidents appear without a reload, ack and approve take effect live, XSS inert."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:  # an alert() from injected markup would land here
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    # Sign in by keyboard alone (the token field has the focus); the skip link comes first.
    page.goto(f"{stack.url}/ui/login")
    expect(page.get_by_label("API token")).to_be_focused()
    page.keyboard.type(stack.tokens[Role.responder])
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{stack.url}/ui/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to main content"
    assert stack.tokens[Role.responder] not in page.content()
    assert page.evaluate("document.cookie") == ""  # HttpOnly: scripts cannot read the session
    expect(page.locator("#live-status")).to_contain_text("Live", timeout=LIVE_S)
    page.evaluate("window.__sameDocument = true")

    # Two incidents arrive through Kafka and the worker, and appear in the open queue.
    stack.send(
        tampered(f"mt-{stack.unique}", "models:/fraud-scorer/7", "Pickle with os.system"),
        tampered(f"xss-{stack.unique}", XSS_RESOURCE, XSS_TITLE),
    )
    rows = page.locator("#queue-rows a.title")
    expect(rows).to_have_count(2, timeout=LIVE_S)
    assert page.evaluate("window.__sameDocument") is True  # no reload happened
    hostile = page.locator("#queue-rows a.title", has_text="<img src=x")
    expect(hostile).to_contain_text(XSS_TITLE + " on " + XSS_RESOURCE)
    expect(page.locator("#queue-rows")).to_contain_text("Critical")
    shoot(page, shots / "queue.png")

    # The hostile incident page and its evidence render the markup as text.
    hostile.click()
    expect(page.locator("h1.incident-title")).to_contain_text(XSS_TITLE)
    page.locator("#incident-evidence a").first.click()
    expect(page.locator("pre.json")).to_contain_text(XSS_RESOURCE)
    shoot(page, shots / "evidence.png")
    assert page.evaluate("window.__xss") is None and dialogs == []
    assert page.locator("img[src=x], svg").count() == 0

    # The other incident: acknowledge it, then approve its playbook's waiting step.
    page.goto(f"{stack.url}/ui/")
    page.get_by_role("link", name="Pickle with os.system on models:/fraud-scorer/7").click()
    expect(page.locator("#incident-status")).to_contain_text("Open")
    approve = page.locator("#incident-runs button", has_text="Approve")
    expect(approve).to_have_count(1, timeout=LIVE_S)
    expect(page.locator("#incident-runs")).to_contain_text("waiting approval")
    page.get_by_role("button", name="Acknowledge").click()
    expect(page.locator(".notice")).to_contain_text("Acknowledgement sent")
    page.evaluate("window.__sameDocument = true")
    expect(page.locator("#incident-status")).to_contain_text("Acknowledged", timeout=LIVE_S)
    expect(page.get_by_role("button", name="Acknowledge")).to_have_count(0)
    expect(page.locator("#incident-timeline")).to_contain_text("analyst:token:responder")

    page.locator("#incident-runs button", has_text="Approve").click()
    expect(page.locator(".notice")).to_contain_text("Approval sent")
    page.evaluate("window.__sameDocument = true")
    runs = page.locator("#incident-runs")
    expect(runs.locator("h3")).to_contain_text("completed", timeout=LIVE_S)
    expect(runs).to_contain_text("approved by token:responder")
    expect(page.locator("#incident-comments")).to_contain_text("Quarantined by the playbook")
    assert page.evaluate("window.__sameDocument") is True
    expect(page.locator("#blast-radius")).to_be_visible()
    expect(page.locator("#evidence-bundle")).to_be_visible()
    shoot(page, shots / "incident.png")

    # The hostile incident's run still waits: it is on the approvals page.
    page.get_by_role("link", name="Waiting approvals").click()
    expect(page.locator("#approvals-list article")).to_have_count(1)
    expect(page.locator("#approvals-list")).to_contain_text(XSS_TITLE)
    shoot(page, shots / "approvals.png")

    assert page.evaluate("window.__xss") is None and dialogs == []
    assert errors == [], errors  # no CSP violation or script error on any page
    context.close()
