"""Logging in and out: session ids, timeouts, cookie flags (throttling: test_throttle.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from admin.dashboard import PASSWORD, log_in, token_for
from sqlalchemy import select, update

from app.admin.models import AdminSession, AuditEntry
from app.extensions import db
from app.models import utcnow

GENERIC = "Wrong username or password."


def session_cookie(client) -> str | None:
    cookie = client.get_cookie("gateway_session")
    return cookie.value if cookie else None


def test_pages_need_a_login(client):
    resp = client.get("/admin/transactions?status=pending")
    assert resp.status_code == 302
    assert resp.location == "/admin/login?next=/admin/transactions?status%3Dpending"


def test_login_leads_to_the_page_asked_for(client, admin_user):
    client.get("/admin/apps")
    token = token_for(client)
    resp = client.post(
        "/admin/login?next=/admin/apps",
        data={"csrf_token": token, "username": "root", "password": PASSWORD},
    )
    assert resp.status_code == 302 and resp.location == "/admin/apps"
    assert "App Keys" in client.get("/admin/apps").get_data(as_text=True)


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/admin", "/charge"])
def test_login_never_redirects_outside_the_dashboard(client, admin_user, target):
    token = token_for(client)
    resp = client.post(
        f"/admin/login?next={target}",
        data={"csrf_token": token, "username": "root", "password": PASSWORD},
    )
    assert resp.location == "/admin/"


def test_wrong_password_and_unknown_user_get_the_same_answer(client, admin_user, app):
    wrong = log_in(client, "root", "not the password")
    unknown = log_in(client, "nobody", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert GENERIC in wrong.get_data(as_text=True)
    assert GENERIC in unknown.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302
    with app.app_context():
        entries = db.session.execute(select(AuditEntry.action, AuditEntry.username)).all()
    assert ("login_failed", "root") in entries and ("login_failed", "nobody") in entries


def test_the_session_id_changes_at_login(client, admin_user, app):
    token_for(client)  # a pre-login session (CSRF token) exists, possibly planted
    before = session_cookie(client)
    assert log_in(client).status_code == 302
    after = session_cookie(client)
    assert before and after and before != after
    with app.app_context():
        assert db.session.execute(select(AdminSession)).scalars().one().ip == "127.0.0.1"
    # The cookie from before the login opens nothing.
    client.set_cookie("gateway_session", before)
    assert client.get("/admin/").status_code == 302


def test_logout_kills_the_cookie_even_when_replayed(admin_client, app):
    cookie = session_cookie(admin_client)
    token = token_for(admin_client, "/admin/")
    resp = admin_client.post("/admin/logout", data={"csrf_token": token})
    assert resp.status_code == 302 and resp.location == "/admin/login"
    with app.app_context():
        assert db.session.execute(select(AdminSession)).first() is None
    admin_client.set_cookie("gateway_session", cookie)
    assert admin_client.get("/admin/").status_code == 302


@pytest.mark.parametrize(
    ("field", "age", "still_in"),
    [
        ("last_seen_at", timedelta(minutes=29), True),
        ("last_seen_at", timedelta(minutes=31), False),
        ("created_at", timedelta(hours=11, minutes=59), True),
        ("created_at", timedelta(hours=12, minutes=1), False),
    ],
)
def test_idle_and_absolute_timeouts(admin_client, app, field, age, still_in):
    with app.app_context():
        db.session.execute(update(AdminSession).values({field: utcnow() - age}))
        db.session.commit()
    resp = admin_client.get("/admin/")
    assert (resp.status_code == 200) is still_in
    if not still_in:
        page = admin_client.get(resp.location).get_data(as_text=True)
        assert "Your session has ended" in page
        with app.app_context():
            assert db.session.execute(select(AdminSession)).first() is None


def test_activity_keeps_an_idle_session_alive(admin_client, app):
    with app.app_context():
        db.session.execute(
            update(AdminSession).values(last_seen_at=utcnow() - timedelta(minutes=20))
        )
        db.session.commit()
    assert admin_client.get("/admin/").status_code == 200
    with app.app_context():
        seen = db.session.execute(select(AdminSession.last_seen_at)).scalar_one()
    assert utcnow() - seen < timedelta(minutes=1)


def test_session_cookie_flags(client, admin_user):
    resp = log_in(client)
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie


def test_session_cookie_is_secure_in_production(env, build_app):
    prod = build_app(
        {**env, "MIDTRANS_IS_PRODUCTION": "true", "MIDTRANS_SERVER_KEY": "Mid-server-live-key"}
    )
    prod.test_cli_runner().invoke(args=["admins", "create", "root", "--password", PASSWORD])
    client = prod.test_client()
    resp = log_in(client)
    assert resp.status_code == 302
    cookie = resp.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
