"""Two-factor sign-in (app/admin_mfa.py, app/admin/mfa.py, the second step in account.py):
setting it up, logging in with a TOTP or a recovery code, replays and reuse refused, only
hashes stored, the second step throttled and audited, the gateway-wide requirement, and
`flask admins reset-mfa`."""

from __future__ import annotations

import hashlib
import re
import time
from datetime import timedelta

import pyotp
import pytest
from admin.dashboard import PASSWORD, csrf_from, log_in, token_for
from sqlalchemy import select, update
from support import use_settings

from app.admin.models import AdminSession, AuditEntry
from app.extensions import db
from app.models import AdminMfa, AdminRecoveryCode, utcnow

SECRET_RE = re.compile(r'id="mfa-secret" class="secret">([A-Z2-7 ]+)<')
CODE_RE = re.compile(r'<code class="secret">([a-z2-9]{4}(?:-[a-z2-9]{4}){3})</code>')


@pytest.fixture(autouse=True)
def lenient_limiter(app):
    """RATELIMIT_LOGIN (10 a minute per address) is raised: these tests log in many times."""
    use_settings(app, ratelimit_login="10000 per minute")


def code_at(secret: str, offset: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time(), counter_offset=offset)


def enrol(client) -> tuple[str, list[str]]:
    """Set MFA up in the dashboard as the logged-in admin; the secret and recovery codes."""
    page = client.get("/admin/account/mfa").get_data(as_text=True)
    secret = SECRET_RE.search(page).group(1).replace(" ", "")
    resp = client.post(
        "/admin/account/mfa",
        data={"csrf_token": csrf_from(page), "password": PASSWORD, "code": code_at(secret)},
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    codes = CODE_RE.findall(resp.get_data(as_text=True))
    assert len(codes) == 10 and len(set(codes)) == 10
    return secret, codes


def log_out(client) -> None:
    client.post("/admin/logout", data={"csrf_token": token_for(client, "/admin/")})


def second_step(client, code: str, **kwargs):
    token = token_for(client, "/admin/login/code")
    return client.post("/admin/login/code", data={"csrf_token": token, "code": code}, **kwargs)


def audit_rows(app, action: str) -> list[AuditEntry]:
    with app.app_context():
        rows = db.session.execute(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
        ).scalars()
        result = list(rows)
        db.session.commit()
        return result


def mfa_row(app) -> AdminMfa | None:
    with app.app_context():
        row = db.session.execute(select(AdminMfa)).scalar_one_or_none()
        db.session.commit()
        return row


def test_setting_up_shows_a_qr_code_and_the_key_then_recovery_codes_once(admin_client, app):
    page = admin_client.get("/admin/account").get_data(as_text=True)
    assert "Set up two-factor sign-in" in page
    setup = admin_client.get("/admin/account/mfa").get_data(as_text=True)
    assert '<div class="qr-code" id="mfa-qr"><svg' in setup
    secret = SECRET_RE.search(setup).group(1).replace(" ", "")
    assert len(secret) == 32
    # Reloading keeps the key the app may have scanned already.
    again = admin_client.get("/admin/account/mfa").get_data(as_text=True)
    assert SECRET_RE.search(again).group(1).replace(" ", "") == secret

    token = csrf_from(setup)
    wrong = admin_client.post(
        "/admin/account/mfa", data={"csrf_token": token, "password": PASSWORD, "code": "000000"}
    )
    assert wrong.status_code == 400
    assert "The code is wrong" in wrong.get_data(as_text=True)
    assert mfa_row(app).enabled_at is None
    # A borrowed session cannot turn it on (and lock the owner out): the password is asked.
    borrowed = admin_client.post(
        "/admin/account/mfa",
        data={"csrf_token": token, "password": "not the password", "code": code_at(secret)},
    )
    assert borrowed.status_code == 400
    assert "The current password is wrong." in borrowed.get_data(as_text=True)
    assert mfa_row(app).enabled_at is None
    assert audit_rows(app, "mfa_enable")[-1].detail == "failed: wrong current password"

    done = admin_client.post(
        "/admin/account/mfa",
        data={"csrf_token": token, "password": PASSWORD, "code": code_at(secret)},
    )
    shown = done.get_data(as_text=True)
    assert done.status_code == 200 and "shown only this once" in shown
    assert len(CODE_RE.findall(shown)) == 10
    assert mfa_row(app).enabled_at is not None
    assert [e.detail for e in audit_rows(app, "mfa_enable")] == [
        "failed: wrong current password",
        None,
    ]

    # From now on the key is never shown again, and the setup page leads to the account.
    assert admin_client.get("/admin/account/mfa").status_code == 302
    account = admin_client.get("/admin/account").get_data(as_text=True)
    assert "10 recovery codes left" in account
    assert secret not in account and secret[:4] + " " not in account
    assert "otpauth" not in account


def test_an_unconfirmed_key_is_replaced_after_an_hour(admin_client, app):
    first = SECRET_RE.search(admin_client.get("/admin/account/mfa").get_data(as_text=True))
    with app.app_context():
        db.session.execute(update(AdminMfa).values(created_at=utcnow() - timedelta(hours=2)))
        db.session.commit()
    second = SECRET_RE.search(admin_client.get("/admin/account/mfa").get_data(as_text=True))
    assert first.group(1) != second.group(1)


def test_the_provisioning_uri_names_the_gateway_and_the_admin(app, admin_user):
    from app import admin_mfa
    from app.models import Admin

    with app.app_context():
        admin = db.session.execute(select(Admin)).scalar_one()
        db.session.commit()
        uri = admin_mfa.begin_enrolment(admin).uri
    assert uri.startswith("otpauth://totp/midtrans-gateway:root?secret=")
    assert "issuer=midtrans-gateway" in uri


def test_login_needs_a_code_and_a_code_is_never_accepted_twice(admin_client, app):
    secret, _codes = enrol(admin_client)
    log_out(admin_client)

    resp = log_in(admin_client)
    assert resp.status_code == 302 and resp.location.startswith("/admin/login/code")
    # The password alone opens nothing.
    for path in ("/admin/", "/admin/apps", "/admin/account"):
        blocked = admin_client.get(path)
        assert blocked.status_code == 302 and blocked.location.startswith("/admin/login/code")
    page = admin_client.get("/admin/login/code").get_data(as_text=True)
    assert "authenticator app" in page

    wrong = second_step(admin_client, "123456")
    assert wrong.status_code == 401 and "The code is wrong." in wrong.get_data(as_text=True)
    assert admin_client.get("/admin/").status_code == 302

    code = code_at(secret, 1)  # the next step's code (the setup used this step's)
    ok = second_step(admin_client, code)
    assert ok.status_code == 302 and ok.location == "/admin/"
    assert admin_client.get("/admin/").status_code == 200
    assert audit_rows(app, "login_ok")[-1].detail == "with a TOTP code"
    failed = audit_rows(app, "login_failed")
    assert [(e.username, e.detail) for e in failed] == [("root", "wrong code at the second step")]

    log_out(admin_client)
    log_in(admin_client)
    replayed = second_step(admin_client, code)
    assert replayed.status_code == 401
    older = second_step(admin_client, code_at(secret, 0))  # older than the last one used
    assert older.status_code == 401
    assert admin_client.get("/admin/").status_code == 302


def test_a_recovery_code_logs_in_once(admin_client, app):
    _secret, codes = enrol(admin_client)
    log_out(admin_client)

    log_in(admin_client)
    typed = " " + codes[3].upper().replace("-", " ") + " "  # as someone may type it
    ok = second_step(admin_client, typed, follow_redirects=True)
    assert ok.status_code == 200 and "9 are left" in ok.get_data(as_text=True)
    assert audit_rows(app, "login_ok")[-1].detail == "with a recovery code, 9 left"

    log_out(admin_client)
    log_in(admin_client)
    assert second_step(admin_client, codes[3]).status_code == 401
    assert admin_client.get("/admin/").status_code == 302
    assert second_step(admin_client, codes[4]).status_code == 302
    assert admin_client.get("/admin/").status_code == 200


def test_only_hashes_of_recovery_codes_are_stored(admin_client, app):
    _secret, codes = enrol(admin_client)
    with app.app_context():
        rows = db.session.execute(select(AdminRecoveryCode)).scalars().all()
        stored = {r.code_hash for r in rows}
        db.session.commit()
    plain = [c.replace("-", "") for c in codes]
    assert stored == {hashlib.sha256(c.encode()).hexdigest() for c in plain}
    dump = repr([(r.id, r.code_hash, r.created_at, r.used_at) for r in rows])
    assert not any(c in dump or c.replace("-", "") in dump for c in codes)


def test_a_pending_login_expires_after_five_minutes(admin_client, app):
    secret, _codes = enrol(admin_client)
    log_out(admin_client)
    log_in(admin_client)
    with app.app_context():
        db.session.execute(update(AdminSession).values(created_at=utcnow() - timedelta(minutes=6)))
        db.session.commit()
    resp = admin_client.get("/admin/login/code")
    assert resp.status_code == 302 and resp.location.startswith("/admin/login")
    page = admin_client.get(resp.location).get_data(as_text=True)
    assert "The login took too long" in page
    with app.app_context():
        assert db.session.execute(select(AdminSession)).first() is None
        db.session.commit()
    # No code works without the password first.
    form = admin_client.get("/admin/login").get_data(as_text=True)
    resp = admin_client.post(
        "/admin/login/code", data={"csrf_token": csrf_from(form), "code": code_at(secret, 1)}
    )
    assert resp.status_code == 302 and resp.location.startswith("/admin/login")
    assert admin_client.get("/admin/").status_code == 302


def test_the_second_step_needs_a_csrf_token(admin_client):
    enrol(admin_client)
    log_out(admin_client)
    log_in(admin_client)
    resp = admin_client.post("/admin/login/code", data={"code": "123456"})
    assert resp.status_code == 400


def test_wrong_codes_are_throttled_per_address_and_per_account(app, admin_client):
    secret, _codes = enrol(admin_client)
    log_out(admin_client)

    def pending_from(address: str):
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = address
        assert log_in(client).status_code == 302
        return client

    first = pending_from("198.51.100.7")
    for _ in range(4):
        assert second_step(first, "111111").status_code == 401
    fifth = second_step(first, "111111")
    assert fifth.status_code == 401
    assert "the next try is possible in 30 seconds" in fifth.get_data(as_text=True)
    refused = second_step(first, code_at(secret, 1))  # even the right code waits
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "30"
    assert "Too many wrong codes" in refused.get_data(as_text=True)

    second = pending_from("203.0.113.9")
    for _ in range(5):
        assert second_step(second, "222222").status_code == 401
    # Ten wrong codes for the account from anywhere: a new address waits too.
    third = pending_from("192.0.2.1")
    assert second_step(third, code_at(secret, 1)).status_code == 429

    failed = audit_rows(app, "login_failed")
    assert len(failed) == 12
    assert all(e.detail.startswith("wrong code at the second step") for e in failed)
    assert "refused unchecked" in failed[-1].detail

    # `admins unlock` clears the code throttling too.
    from support import cli_for

    result = cli_for(app)("admins", "unlock", "root")
    assert "(2 addresses had failed logins on record)" in result.output
    assert second_step(third, code_at(secret, 1)).status_code == 302


def test_requiring_mfa_sends_an_admin_without_it_to_set_it_up(app, admin_client, cli):
    token = token_for(admin_client, "/admin/admins")
    refused = admin_client.post(
        "/admin/admins/require-mfa", data={"csrf_token": token, "require": "y"}
    )
    assert refused.status_code == 400
    assert "Set up two-factor sign-in for yourself first" in refused.get_data(as_text=True)

    enrol(admin_client)
    token = token_for(admin_client, "/admin/admins")
    resp = admin_client.post(
        "/admin/admins/require-mfa", data={"csrf_token": token, "require": "y"}
    )
    assert resp.status_code == 302
    [entry] = audit_rows(app, "mfa_required")
    assert (entry.before, entry.after) == ({"required": False}, {"required": True})

    cli("admins", "create", "ops", "--password", PASSWORD)
    ops = app.test_client()
    assert log_in(ops, "ops").status_code == 302
    for path in ("/admin/", "/admin/apps", "/admin/account"):
        resp = ops.get(path)
        assert resp.status_code == 302 and resp.location == "/admin/account/mfa"
    token = token_for(ops, "/admin/account/mfa")
    resp = ops.post(
        "/admin/admins",
        data={"csrf_token": token, "username": "x", "password": PASSWORD, "repeat": PASSWORD},
    )
    assert resp.status_code == 302 and resp.location == "/admin/account/mfa"
    unknown = cli("admins", "unlock", "x", expect_ok=False)  # the admin was not created
    assert unknown.output.strip() == "Error: no admin named 'x'"
    page = ops.get("/admin/account/mfa").get_data(as_text=True)
    assert "Every admin of this gateway must use two-factor sign-in" in page

    enrol(ops)
    assert ops.get("/admin/").status_code == 200
    admins = ops.get("/admin/admins").get_data(as_text=True)
    assert admins.count("<td>on</td>") == 2


def test_turning_mfa_off_needs_the_password_or_a_code(admin_client, app):
    secret, codes = enrol(admin_client)
    token = token_for(admin_client, "/admin/account")
    wrong = admin_client.post(
        "/admin/account/mfa/disable", data={"csrf_token": token, "off-proof": "not my password"}
    )
    assert wrong.status_code == 400
    assert "The password or code is wrong." in wrong.get_data(as_text=True)
    assert mfa_row(app).enabled_at is not None
    assert audit_rows(app, "mfa_disable")[-1].detail == "failed: wrong password or code"

    # A recovery code is no proof here (it would look like a password).
    resp = admin_client.post(
        "/admin/account/mfa/disable", data={"csrf_token": token, "off-proof": codes[0]}
    )
    assert resp.status_code == 400 and mfa_row(app) is not None

    ok = admin_client.post(
        "/admin/account/mfa/disable", data={"csrf_token": token, "off-proof": code_at(secret, 1)}
    )
    assert ok.status_code == 302
    assert mfa_row(app) is None
    with app.app_context():
        assert db.session.execute(select(AdminRecoveryCode)).first() is None
        db.session.commit()
    log_out(admin_client)
    assert log_in(admin_client).location == "/admin/"


def test_new_recovery_codes_replace_the_old_ones(admin_client, app):
    _secret, old = enrol(admin_client)
    token = token_for(admin_client, "/admin/account")
    resp = admin_client.post(
        "/admin/account/mfa/recovery-codes", data={"csrf_token": token, "codes-proof": PASSWORD}
    )
    new = CODE_RE.findall(resp.get_data(as_text=True))
    assert resp.status_code == 200 and len(new) == 10 and not set(new) & set(old)
    assert audit_rows(app, "mfa_recovery_codes")[-1].detail is None
    log_out(admin_client)
    log_in(admin_client)
    assert second_step(admin_client, old[0]).status_code == 401
    assert second_step(admin_client, new[0]).status_code == 302


def test_reset_mfa_on_the_command_line(admin_client, app, cli):
    enrol(admin_client)
    log_out(admin_client)
    result = cli("admins", "reset-mfa", "root")
    assert result.output == "Two-factor sign-in of root removed, with its recovery codes.\n"
    assert mfa_row(app) is None
    [entry] = audit_rows(app, "mfa_reset")
    assert (entry.username, entry.target, entry.ip) == ("cli", "admin:root", None)
    assert log_in(admin_client).location == "/admin/"  # the password alone again

    again = cli("admins", "reset-mfa", "root")
    assert again.output == "root had no two-factor sign-in; nothing to remove.\n"

    unknown = cli("admins", "reset-mfa", "ghost", expect_ok=False)
    assert unknown.exit_code != 0
    assert unknown.output.strip().splitlines() == ["Error: no admin named 'ghost'"]


def test_the_second_step_and_its_audit_entries_in_indonesian(admin_client, app):
    from app.admin import meaning

    secret, _codes = enrol(admin_client)
    log_out(admin_client)
    log_in(admin_client)
    page = admin_client.get("/admin/login/code", headers={"Accept-Language": "id"}).get_data(
        as_text=True
    )
    assert "Verifikasi dua langkah" in page and "kode pemulihan" in page
    with app.test_request_context(headers={"Accept-Language": "id"}):
        assert meaning.detail_text("with a recovery code, 9 left") == (
            "dengan kode pemulihan, sisa 9"
        )
        assert meaning.detail_text("wrong code at the second step") == "kode salah di langkah kedua"
        assert str(meaning.AUDIT_WORDS["mfa_reset"]) == "verifikasi dua langkah direset"
