"""Two-factor sign-in in a real browser (Chromium through Playwright, the fixtures of
test_browser): set it up from the page (the QR code drawn inline, the key read as a person
would type it into an app), log out, log in with a TOTP code, log out, log in with a recovery
code (that a used one is refused is test_mfa's: a refusal is a 401, which Chromium reports as
a console error, and the screen fixture fails on any). Screenshots go to tests/screenshots/
(mfa-*.png)."""

from __future__ import annotations

import time

import pyotp
from admin import test_browser as browser_tests
from admin.dashboard import PASSWORD
from support import use_settings

pytestmark = browser_tests.pytestmark
browser = browser_tests.browser
live_gateway = browser_tests.live_gateway
screen = browser_tests.screen


def _log_in(page, base: str) -> None:
    page.goto(f"{base}/admin/login")
    page.fill("#username", "root")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit].primary")


def _log_out(page, base: str) -> None:
    page.click("text=Log out")
    page.wait_for_url(f"{base}/admin/login")


def test_an_admin_sets_up_mfa_and_logs_in_with_a_code_and_a_recovery_code(
    screen, live_gateway, app
):
    use_settings(app, ratelimit_login="10000 per minute")
    base, page, shot = live_gateway, screen.page, screen.shot

    _log_in(page, base)
    page.wait_for_url(f"{base}/admin/")
    page.goto(f"{base}/admin/account")
    page.click("text=Set up two-factor sign-in")
    page.wait_for_url(f"{base}/admin/account/mfa")
    qr = page.locator("#mfa-qr svg")
    assert qr.count() == 1 and qr.bounding_box()["width"] > 100
    shot("mfa-01-setup")
    secret = page.locator("#mfa-secret").inner_text().replace(" ", "")
    totp = pyotp.TOTP(secret)
    page.fill("#password", PASSWORD)
    page.fill("#code", totp.now())
    page.click("text=Turn on two-factor sign-in")
    codes = page.locator("#recovery-codes code").all_inner_texts()
    assert len(codes) == 10 and len(set(codes)) == 10
    assert "shown only this once" in page.locator(".warning").inner_text()
    shot("mfa-02-recovery-codes")
    page.click("text=I have stored them, back to my account")
    assert "On since" in page.locator("#mfa-state").inner_text()
    assert secret not in page.content()
    shot("mfa-03-account")

    # Log in again: the password, then a code from the app (the next step's: this step's
    # code was used to set it up, and a code never works twice).
    _log_out(page, base)
    _log_in(page, base)
    page.wait_for_url(f"{base}/admin/login/code")
    page.goto(f"{base}/admin/apps")  # the password alone opens nothing
    assert page.url.startswith(f"{base}/admin/login/code")
    shot("mfa-04-second-step")
    page.fill("#code", totp.at(time.time(), counter_offset=1))
    page.click("text=Verify")
    page.wait_for_url(f"{base}/admin/apps")
    assert page.locator("h1").inner_text() == "App Keys"

    # Without the phone: a recovery code, once.
    _log_out(page, base)
    _log_in(page, base)
    page.wait_for_url(f"{base}/admin/login/code")
    page.fill("#code", codes[0])
    page.click("text=Verify")
    page.wait_for_url(f"{base}/admin/")
    assert "9 are left" in page.locator(".flash").inner_text()
    shot("mfa-05-in-with-a-recovery-code")
