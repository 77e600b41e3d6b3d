"""The dashboard in a real browser (Chromium through Playwright) against the gateway served on
127.0.0.1, with Midtrans mocked by `responses`: log in, create an app and copy its key, charge
with it, find, sync and refund the order, switch language. A screenshot of each page goes to
tests/screenshots/.

Without a browser the test is skipped with the reason; with REQUIRE_BROWSER=1 (CI) it fails.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import responses
from admin.dashboard import GONE, PASSWORD, forged_notification, settled
from e2e.servers import post_charge
from support import API_BASE, snap_ok, status_url, use_settings
from werkzeug.serving import make_server

from app import payments
from app.callback_sender import CallbackClient
from app.services import gateway

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# Werkzeug's test server leaks the open file of a static answer (the favicon) when the browser
# hangs up in the middle of it, as closing the page at the end of a test may: its request
# thread fails before it closes the answer. Only that leak is ignored; any other unclosed
# file or unraisable exception still fails the test.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <_io.FileIO name='[^']*/static/"
    ":pytest.PytestUnraisableExceptionWarning"
)
SHOTS = Path(__file__).resolve().parents[1] / "screenshots"


def _browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -r requirements-dev.txt)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    return None


@pytest.fixture
def browser():
    reason = _browser_missing()
    if reason:
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def live_gateway(app, midtrans, admin_user):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


class Screen:
    """A browser page that records console errors (a CSP violation is one) and screenshots."""

    def __init__(self, browser):
        SHOTS.mkdir(exist_ok=True)
        self.context = browser.new_context(
            viewport={"width": 1280, "height": 900},
            locale="en-US",
            permissions=["clipboard-read", "clipboard-write"],
        )
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on(
            "console", lambda m: self.problems.append(m.text) if m.type == "error" else None
        )
        self.page.on("pageerror", lambda e: self.problems.append(str(e)))

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def screen(browser, live_gateway):
    """The page a test drives; it fails if the browser logged an error on any page. It is
    closed before the gateway stops, so the shutdown itself is not seen as an error."""
    current = Screen(browser)
    yield current
    current.context.close()
    assert not current.problems, f"browser console errors (CSP violations?): {current.problems}"


def test_an_admin_manages_a_payment_in_the_browser(screen, live_gateway, midtrans):
    base = live_gateway
    page, shot = screen.page, screen.shot

    # Log in.
    page.goto(f"{base}/admin/")
    assert page.url.startswith(f"{base}/admin/login")
    shot("01-login")
    page.fill("#username", "root")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit].primary")
    page.wait_for_url(f"{base}/admin/")
    assert page.locator("h1").inner_text() == "Overview"
    shot("02-overview-empty")

    # Create an app; copy its key with the button.
    page.click("nav >> text=App Keys")
    page.click("text=New app")
    shot("03-app-new")
    page.fill("#code", "toko")
    page.fill("#name", "Toko Online")
    page.click("text=Create app and show its key")
    key = page.locator("#api-key").inner_text().strip()
    assert len(key) == 40
    page.click("[data-copy]")
    page.wait_for_selector("button.copied")
    assert page.evaluate("navigator.clipboard.readText()") == key
    shot("04-app-key")
    page.click("text=I have copied it, back to App Keys")
    assert "Toko Online" in page.locator("table").inner_text()
    shot("05-apps")

    # A client app charges with that key, over real HTTP.
    snap_ok(midtrans, token="tok-browser")
    post_charge(base, {"X-App-Code": "toko", "X-Api-Key": key}, "B-1", 125000)

    # Find it in the list, open it.
    page.click("nav >> text=Transactions")
    page.fill("#q", "B-1")
    page.click("text=Filter")
    row = page.locator("tbody tr", has_text="B-1")
    assert "toko-B-1" in row.inner_text() and "Rp 125.000" in row.inner_text()
    shot("06-transactions")
    row.locator("a", has_text="B-1").click()

    # Sync: Midtrans first says pending, then settlement.
    midtrans.add(responses.GET, status_url("toko-B-1"), json=settled("toko-B-1", 125000, "pending"))
    page.click("text=Sync from Midtrans")
    assert "The order is now pending" in page.locator(".flash").inner_text()
    midtrans.replace(responses.GET, status_url("toko-B-1"), json=settled("toko-B-1", 125000))
    page.click("text=Sync from Midtrans")
    assert "The order is now settlement" in page.locator(".flash").inner_text()
    assert "settlement" in page.locator("ol.timeline").inner_text()

    # Refund it, after confirming.
    refunds = midtrans.add(
        responses.POST, f"{API_BASE}/v2/trx-toko-B-1/refund", json={"status_code": "200"}
    )
    shot("07-transaction-settled")
    page.fill("#reason", "customer cancelled")
    page.check("#confirm")
    midtrans.replace(
        responses.GET, status_url("toko-B-1"), json=settled("toko-B-1", 125000, "refund")
    )
    page.click("button:has-text('Refund')")
    assert "The order is now refund" in page.locator(".flash").inner_text()
    assert refunds.call_count == 1
    shot("08-transaction-refunded")

    for path, name in [
        ("/admin/notifications", "09-notifications"),
        ("/admin/audit", "10-audit"),
        ("/admin/admins", "11-admins"),
        ("/admin/", "12-overview"),
    ]:
        page.goto(base + path)
        shot(name)
    page.goto(f"{base}/admin/audit")
    log = page.locator("table").inner_text()
    for action in ("login_ok", "app_create", "transaction_sync", "transaction_refund"):
        assert action in log

    # Switch to Bahasa Indonesia.
    page.goto(f"{base}/admin/transactions")
    page.click("form.lang button[value=id]")
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "Transaksi"
    assert page.get_attribute("html", "lang") == "id"
    shot("13-transactions-id")
    page.goto(f"{base}/admin/")
    assert page.locator("h1").inner_text() == "Ringkasan"
    shot("14-overview-id")

    # Log out: the dashboard is closed again.
    page.click("text=Keluar")
    page.goto(f"{base}/admin/")
    assert "/admin/login" in page.url


@pytest.mark.usefixtures("loopback_callbacks")
def test_an_admin_follows_callbacks_in_the_browser(screen, live_gateway, midtrans, app, receiver):
    """Create an app with a callback URL, copy its signing secret, see the endpoint disabled by
    a 410 with its reason, re-enable it, resend the failed event from the delivery log."""
    from standardwebhooks import Webhook

    base = live_gateway
    page, shot = screen.page, screen.shot

    def deliver() -> int:
        with app.app_context():
            client = CallbackClient(gateway(app).callback_policy)
            return payments.deliver_due_callbacks(client=client)

    page.goto(f"{base}/admin/login")
    page.fill("#username", "root")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit].primary")
    page.wait_for_url(f"{base}/admin/")

    # Create an app with a callback URL: its key and its signing secret, each copied.
    page.goto(f"{base}/admin/apps/new")
    page.fill("#code", "hooks")
    page.fill("#name", "Hooked Shop")
    page.fill("#callback_url", receiver.url)
    page.click("text=Create app and show its key")
    key = page.locator("#api-key").inner_text().strip()
    secret = page.locator("#signing-secret").inner_text().strip()
    assert secret.startswith("whsec_")
    page.click("[data-copy='#signing-secret']")
    page.wait_for_selector("button.copied")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    shot("15-app-created-with-callbacks")

    # A charge; the client's endpoint answers 410 Gone: callbacks are disabled, with the reason.
    snap_ok(midtrans, token="tok-hooks")
    post_charge(base, {"X-App-Code": "hooks", "X-Api-Key": key}, "H-1", 99000)
    receiver.answers = [GONE]
    assert deliver() == 1
    page.goto(f"{base}/admin/apps")
    row = page.locator("tbody tr", has_text="hooks")
    assert "410 Gone" in row.inner_text()
    assert row.locator(".badge-bad").inner_text() == "disabled"
    shot("16-apps-callbacks-disabled")

    # The delivery log shows the failed event; re-enable, then resend it.
    row.locator("a", has_text="Delivery log").click()
    assert "failed" in page.locator("table.callback-log").inner_text()
    shot("17-delivery-log-failed")
    page.click(".callback-disabled-banner >> text=Re-enable callbacks")
    assert "enabled again" in page.locator(".flash-success").inner_text()
    page.locator("table.callback-log a", has_text="Attempts").first.click()
    assert "gone for good" in page.locator("table.attempts").inner_text()
    page.click("button:has-text('Resend')")
    assert "queued again" in page.locator(".flash-success").inner_text()
    assert deliver() == 1
    page.reload()
    attempts = page.locator("table.attempts tbody tr")
    assert attempts.count() == 2 and "204" in attempts.nth(1).inner_text()
    shot("18-callback-event")
    last = receiver.received[-1]
    assert Webhook(secret).verify(last.body, last.headers)["data"]["order_id"] == "H-1"
    assert receiver.received[0].webhook_id == last.webhook_id

    page.goto(f"{base}/admin/apps")
    page.locator("tbody tr", has_text="hooks").locator("a", has_text="Delivery log").click()
    assert "delivered" in page.locator("table.callback-log").inner_text()
    shot("19-delivery-log")
    page.goto(f"{base}/admin/apps")
    page.locator("tbody tr", has_text="hooks").locator("a", has_text="Edit").click()
    shot("20-app-callbacks")


def test_a_mistyped_password_waits_and_a_flooded_order_stays_readable(
    screen, live_gateway, midtrans, app, app_key, monkeypatch
):
    """Five wrong passwords: the login page says how long to wait, and after that wait the
    right password gets in. An order named by 60 forged notifications shows the newest 20,
    their number and the link to the rest (issue 12 items 2 and 6)."""
    import json
    from datetime import UTC, datetime, timedelta

    import app.admin.throttle as throttle
    from app.extensions import db
    from app.models import Transaction

    now = [datetime.now(UTC)]
    monkeypatch.setattr(throttle, "utcnow", lambda: now[0])
    use_settings(app, ratelimit_login="10000 per minute")  # the throttle, not flask-limiter
    base = live_gateway
    page, shot = screen.page, screen.shot

    def log_in(password: str) -> str:
        page.goto(f"{base}/admin/login")
        page.fill("#username", "root")
        page.fill("#password", password)
        page.click("button[type=submit].primary")
        page.wait_for_load_state()
        return " ".join(page.locator(".flash").all_inner_texts())

    for _ in range(4):
        assert "the next try" not in log_in("wrong password!")
    assert "the next try is possible in 30 seconds" in log_in("wrong password!")
    assert "Try again in 30 seconds" in log_in(PASSWORD)
    assert "/admin/login" in page.url
    shot("21-login-wait")
    # The browser logs each 401 and 429 page as a failed load: expected here, nothing else.
    refused = [p for p in screen.problems if "status of 401" in p or "status of 429" in p]
    assert len(refused) == 6
    screen.problems[:] = [p for p in screen.problems if p not in refused]
    now[0] += timedelta(seconds=30)
    log_in(PASSWORD)
    assert page.url == f"{base}/admin/"

    snap_ok(midtrans, token="tok-flood")
    post_charge(base, app_key, "F-1", 50000)
    with app.app_context():
        txn = db.session.query(Transaction).filter_by(order_id="F-1").one()
        txn_id = txn.id
        forged = json.dumps({"order_id": "F-1", "status": "settlement", "x": "<" * 9000})
        for _ in range(60):
            db.session.add(forged_notification("F-1", forged))
        db.session.commit()
    page.goto(f"{base}/admin/transactions/{txn_id}")
    section = page.locator("#notifications")
    assert "60 notifications · the newest 20 here" in section.locator(".list-count").inner_text()
    assert section.locator("details.notification").count() == 20
    section.locator("details.notification").first.locator("summary").click()
    assert "The whole body" in section.locator("details.notification").first.inner_text()
    shot("22-order-flooded")
    section.locator("a", has_text="see them all").click()
    assert "F-1" in page.locator("h1").inner_text()
    assert "Page 1 of 2" in page.locator(".pager").inner_text()
    shot("23-notifications-of-an-order")
