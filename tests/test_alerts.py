"""Alerts (issue 17, "go beyond the peers"): each condition the worker watches, the rule of at
most one alert per condition per 15 minutes, the dashboard's open conditions, the settings,
and a real alert from `flask --app wsgi worker --once` to a receiver on 127.0.0.1."""

from __future__ import annotations

import base64
import os
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from admin.dashboard import token_for
from kit.endpoints import CallbackReceiver
from support import charge, make_app

from app import alerts
from app.alerts import Alert, Condition, WorkerHeartbeat
from app.config import ConfigError, Settings
from app.database import writing
from app.extensions import db
from app.models import App, EventSource, Notification, NotificationOutcome, Transaction
from app.payments.lifecycle import flag_order, locked_transaction
from bench.processes import FLASK, REPO, run

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
FLAG = "amount mismatch: Midtrans says 1000.00, the order is 7000; settlement not applied"


pytestmark = pytest.mark.usefixtures("loopback_callbacks")


@pytest.fixture
def env(env):
    return {**env, "ALERT_WEBHOOK_URL": "http://127.0.0.1:9/alerts"}


@pytest.fixture(autouse=True)
def no_earlier_auth_failures(monkeypatch):
    """This test process's own rejected Midtrans calls (other tests') are not news here."""
    monkeypatch.setattr(alerts, "_process_auth_failures", alerts.auth_failures_in_process())


def order(client, app_key, midtrans, order_id: str = "A-1") -> int:
    charge(client, app_key, midtrans, order_id=order_id)
    return db.session.query(Transaction.id).filter_by(order_id=order_id).scalar()


def flag(txn_id: int, reason: str = FLAG) -> None:
    with writing():
        flag_order(locked_transaction(txn_id), reason, source=EventSource.NOTIFICATION)


def check(conditions, now):
    return alerts.check([Condition(c) for c in conditions], now=now)


def row(key: str) -> Alert:
    db.session.expire_all()
    return db.session.get(Alert, key)


def test_a_flagged_order_is_sent_once_per_15_minutes_and_later_news_waits(
    app, client, app_key, midtrans
):
    with app.app_context():
        first, second = order(client, app_key, midtrans, "A-1"), order(client, app_key, midtrans)
        assert check(["order_flagged"], T0) == []  # nothing flagged: nothing sent
        flag(first)
        sent = check(["order_flagged"], datetime.now(UTC))
        assert len(sent) == 1
        body = sent[0]
        assert body["alert"]["condition"] == "order_flagged"
        assert body["alert"]["state"] == "open"
        assert body["text"] == body["content"] and "A-1" in body["text"] and FLAG in body["text"]
        assert body["alert"]["facts"]["orders"] == [{"order_id": "A-1", "flag": FLAG}]
        sent_at = row("order_flagged").last_sent_at

        assert check(["order_flagged"], sent_at + timedelta(minutes=1)) == []  # no news
        flag(second, "paid after the gateway expired it (Midtrans says settlement)")
        assert check(["order_flagged"], sent_at + timedelta(minutes=5)) == []  # within 15 min
        assert row("order_flagged").pending is True
        later = check(["order_flagged"], sent_at + timedelta(minutes=15))
        assert len(later) == 1 and "paid after the gateway expired it" in later[0]["text"]
        assert row("order_flagged").sent_count == 2
        assert check(["order_flagged"], sent_at + timedelta(minutes=31)) == []
        # An event condition stays open an hour after its last news, then closes.
        assert row("order_flagged").state == "open"
        check(["order_flagged"], sent_at + timedelta(minutes=5) + timedelta(hours=1, seconds=1))
        assert row("order_flagged").state == "closed"


def test_news_merged_while_waiting_names_every_order(app, client, app_key, midtrans):
    with app.app_context():
        ids = [order(client, app_key, midtrans, f"M-{i}") for i in range(3)]
        flag(ids[0])
        now = datetime.now(UTC)
        assert len(check(["order_flagged"], now)) == 1
        flag(ids[1])
        assert check(["order_flagged"], now + timedelta(minutes=2)) == []
        flag(ids[2])
        assert check(["order_flagged"], now + timedelta(minutes=4)) == []
        body = check(["order_flagged"], now + timedelta(minutes=16))[0]
        assert [o["order_id"] for o in body["alert"]["facts"]["orders"]] == ["M-1", "M-2"]
        assert body["alert"]["facts"]["count"] == 2


def test_a_flag_older_than_an_hour_is_not_news_on_the_first_check(app, client, app_key, midtrans):
    with app.app_context():
        flag(order(client, app_key, midtrans))
        assert check(["order_flagged"], datetime.now(UTC) + timedelta(hours=2)) == []


def test_a_disabled_callback_endpoint(app, cli):
    make_app(cli, "shop")
    with app.app_context():
        with writing():
            db.session.query(App).filter_by(code="shop").one().callback_url = "https://s.test/h"
        now = datetime.now(UTC)
        assert check(["callback_disabled"], now) == []
        with writing():
            shop = db.session.query(App).filter_by(code="shop").one()
            shop.callback_disabled_at = now + timedelta(seconds=1)
            shop.callback_disabled_reason = "410 Gone"
        body = check(["callback_disabled"], now + timedelta(seconds=2))[0]
        assert body["alert"]["facts"]["apps"] == [{"app": "shop", "reason": "410 Gone"}]
        assert "shop (410 Gone)" in body["text"]
        assert check(["callback_disabled"], now + timedelta(minutes=20)) == []  # still open
        assert row("callback_disabled").state == "open"
        with writing():
            db.session.query(App).filter_by(code="shop").one().callback_disabled_at = None
        check(["callback_disabled"], now + timedelta(minutes=21))
        assert row("callback_disabled").state == "closed"


def test_midtrans_rejecting_the_server_key(app, client, app_key, midtrans, monkeypatch):
    with app.app_context():
        txn_id = order(client, app_key, midtrans)
        now = datetime.now(UTC)
        assert check(["midtrans_auth"], now) == []
        with writing():
            db.session.get(Transaction, txn_id).last_error = alerts.AUTH_MESSAGE
        body = check(["midtrans_auth"], datetime.now(UTC))[0]
        assert body["alert"]["facts"]["orders"] == ["A-1"]
        assert "server key" in body["text"]
        # The worker's own rejected calls count too (its metrics), after the window.
        seen = alerts.auth_failures_in_process()
        monkeypatch.setattr(alerts, "auth_failures_in_process", lambda: seen + 3)
        sent_at = row("midtrans_auth").last_sent_at
        assert check(["midtrans_auth"], sent_at + timedelta(minutes=1)) == []
        body = check(["midtrans_auth"], sent_at + timedelta(minutes=16))[0]
        assert body["alert"]["facts"]["worker_calls"] == 3


def test_notifications_unconfirmed_for_over_an_hour(app):
    with app.app_context():
        now = datetime.now(UTC)
        with writing():
            for minutes, outcome in ((30, "unconfirmed"), (90, "applied")):
                db.session.add(
                    Notification(
                        body="{}",
                        received_at=now - timedelta(minutes=minutes),
                        outcome=outcome,
                        signature_valid=True,
                    )
                )
        assert check(["notifications_unconfirmed"], now) == []
        body = check(["notifications_unconfirmed"], now + timedelta(minutes=31))[0]
        assert body["alert"]["facts"]["count"] == 1
        # Still open later: no reminder, no second alert.
        assert check(["notifications_unconfirmed"], now + timedelta(minutes=60)) == []
        with writing():
            db.session.query(Notification).update({"outcome": NotificationOutcome.APPLIED})
        check(["notifications_unconfirmed"], now + timedelta(minutes=61))
        assert row("notifications_unconfirmed").state == "closed"


def test_the_worker_not_running(app):
    with app.app_context():
        now = datetime.now(UTC)
        assert check(["worker_down"], now) == []  # no worker ever ran: nothing to say
        alerts.beat(now)
        assert check(["worker_down"], now + timedelta(minutes=9)) == []
        body = check(["worker_down"], now + timedelta(minutes=11))[0]
        assert body["alert"]["facts"]["minutes"] == 11
        assert db.session.get(WorkerHeartbeat, "worker").pid == os.getpid()
        alerts.beat(now + timedelta(minutes=12))  # the worker is back
        assert check(["worker_down"], now + timedelta(minutes=12)) == []
        assert row("worker_down").state == "closed"


def test_without_a_webhook_the_state_is_kept_and_nothing_is_due(env, build_app, monkeypatch):
    quiet = build_app({**env, "ALERT_WEBHOOK_URL": ""})
    with quiet.app_context():
        alerts.beat(datetime.now(UTC) - timedelta(minutes=30))
        assert alerts.check([Condition.WORKER_DOWN]) == []
        assert row("worker_down").state == "open" and row("worker_down").pending is False


def test_the_overview_shows_the_open_conditions_in_both_languages(admin_client, app, monkeypatch):
    with app.app_context():
        alerts.beat(datetime.now(UTC) - timedelta(minutes=30))
    monkeypatch.setattr(alerts, "_web_checked", None)  # the web check runs on this overview
    page = admin_client.get("/admin/").get_data(as_text=True)
    assert 'data-condition="worker_down"' in page and "Worker not running" in page
    assert "no heartbeat for 30 minutes" in page
    token = token_for(admin_client, "/admin/")
    admin_client.post("/admin/language", data={"csrf_token": token, "lang": "id"})
    page = admin_client.get("/admin/").get_data(as_text=True)
    assert "Worker tidak berjalan" in page and "Worker not running" not in page


def test_readyz_checks_the_worker_without_changing_its_answer(client, app, monkeypatch):
    with app.app_context():
        alerts.beat(datetime.now(UTC) - timedelta(minutes=30))
    monkeypatch.setattr(alerts, "_web_checked", None)
    resp = client.get("/readyz")
    assert resp.status_code == 200 and resp.json["status"] == "ready"
    with app.app_context():
        assert row("worker_down").state == "open"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ALERT_WEBHOOK_URL": "ftp://chat.example/x"}, "http(s) URL with a host"),
        ({"ALERT_WEBHOOK_URL": "https://u:p@chat.example/x"}, "credentials"),
        (
            {"ALERT_WEBHOOK_URL": "http://chat.example/x", "MIDTRANS_IS_PRODUCTION": "true"},
            "https",
        ),
        ({"ALERT_SIGNING_SECRET": SECRET}, "ALERT_WEBHOOK_URL is not"),
        (
            {"ALERT_WEBHOOK_URL": "https://chat.example/x", "ALERT_SIGNING_SECRET": "secret"},
            "whsec_",
        ),
    ],
)
def test_bad_alert_settings_name_the_setting(env, changes, message):
    base = {k: v for k, v in env.items() if not k.startswith("ALERT_")}
    if changes.get("MIDTRANS_IS_PRODUCTION"):
        base["MIDTRANS_SERVER_KEY"] = "Mid-server-x"
        base["SECRET_KEY"] = secrets.token_hex(32)
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({**base, **changes})
    assert message in str(raised.value)
    assert str(raised.value).split()[0].startswith("ALERT_")


def test_good_alert_settings(env):
    settings = Settings.from_env(
        {**env, "ALERT_WEBHOOK_URL": "https://hooks.slack.test/x", "ALERT_SIGNING_SECRET": SECRET}
    )
    assert settings.alert_webhook_url == "https://hooks.slack.test/x"
    assert settings.alert_signing_secret == SECRET
    assert SECRET not in repr(settings)
    production = {
        **env,
        "MIDTRANS_IS_PRODUCTION": "true",
        "MIDTRANS_SERVER_KEY": "Mid-server-x",
        "SECRET_KEY": secrets.token_hex(32),
        "CALLBACK_ALLOWED_HOSTS": "alerts.internal",
        "ALERT_WEBHOOK_URL": "http://alerts.internal/hook",
    }
    assert Settings.from_env(production).alert_webhook_url == "http://alerts.internal/hook"


def test_the_worker_sends_one_signed_alert_to_a_local_receiver(
    env, build_app, client, app_key, midtrans, served
):
    receiver = served(CallbackReceiver(secret=SECRET, path="/alerts"))
    process_env = {
        **os.environ,
        **env,
        "ALERT_WEBHOOK_URL": receiver.url,
        "ALERT_SIGNING_SECRET": SECRET,
        "MIDTRANS_API_BASE_URL": "http://127.0.0.1:9",
    }
    flask_app = client.application
    with flask_app.app_context():
        flag(order(client, app_key, midtrans, "W-1"))
    once = run([*FLASK, "worker", "--once"], env=process_env, cwd=REPO)
    assert once.returncode == 0, once.stderr
    assert receiver.unverified() == []
    flagged = [r.event for r in receiver.received if r.event["alert"]["condition"] != "worker_down"]
    assert len(flagged) == 1, [r.body for r in receiver.received]
    event = flagged[0]
    assert event["alert"]["condition"] == "order_flagged"
    assert "W-1" in event["text"] and event["content"] == event["text"]
    assert receiver.received[0].webhook_id.startswith("alert_order_flagged_")
    # The next round within 15 minutes sends nothing more about it.
    again = run([*FLASK, "worker", "--once"], env=process_env, cwd=REPO)
    assert again.returncode == 0, again.stderr
    assert len(receiver.received) == 1
    with flask_app.app_context():
        assert db.session.get(WorkerHeartbeat, "worker") is not None
        assert row("order_flagged").sent_count == 1
