"""Callbacks in the dashboard: the URL on the app form, the signing secret shown once (and
verified against a real delivery), rotation, the endpoint's state and re-enabling it, the
delivery log with every attempt, resend and recover; every POST needs a CSRF token and is
audited."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from admin.dashboard import GONE, csrf_from, table_snapshot
from kit.endpoints import Received
from sqlalchemy import select
from standardwebhooks import Webhook
from support import hook_app

from app import payments
from app.admin.models import AuditEntry
from app.callback_sender import CallbackClient
from app.extensions import db
from app.models import App, CallbackEvent, CallbackState
from app.services import gateway
from bench.processes import ClientApp

NEW_APP = "/admin/apps/new"


pytestmark = pytest.mark.usefixtures("loopback_callbacks")


@pytest.fixture
def shop(cli, receiver) -> ClientApp:
    """An app `shop` whose callbacks go to the receiver: API headers, signing secret."""
    return hook_app(cli, "shop", receiver.url, name="Shop")


def deliver(app, at: datetime | None = None) -> int:
    with app.app_context():
        return payments.deliver_due_callbacks(
            client=CallbackClient(gateway(app).callback_policy), now=at
        )


def stored_app(app, code: str) -> App:
    with app.app_context():
        row = db.session.execute(select(App).where(App.code == code)).scalar_one()
        db.session.expunge(row)
        return row


def stored_events(app) -> list[CallbackEvent]:
    with app.app_context():
        rows = db.session.execute(select(CallbackEvent).order_by(CallbackEvent.id)).scalars().all()
        for row in rows:
            db.session.expunge(row)
        return list(rows)


def audit_entries(app, action: str) -> list[AuditEntry]:
    with app.app_context():
        rows = (
            db.session.execute(
                select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
            )
            .scalars()
            .all()
        )
        for row in rows:
            db.session.expunge(row)
        return list(rows)


def shown_secret(html: str) -> str:
    return re.search(r'<code id="signing-secret" class="secret">(whsec_[^<]+)</code>', html).group(
        1
    )


def text(resp) -> str:
    return resp.get_data(as_text=True)


def verified(secret: str, received: Received) -> dict:
    return Webhook(secret).verify(received.body, received.headers)


# -- the URL and its signing secret ----------------------------------------------------------


def test_creating_an_app_with_a_callback_url_shows_a_secret_that_verifies_a_delivery(
    admin_client, post, app, receiver, charge
):
    resp = post(
        NEW_APP, {"code": "toko", "name": "Toko", "callback_url": receiver.url}, page=NEW_APP
    )
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    html = text(resp)
    secret = shown_secret(html)
    assert 'data-copy="#signing-secret"' in html and 'data-copy="#api-key"' in html
    for header in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        assert header in html
    key = re.search(r'<code id="api-key" class="secret">([0-9a-f]{40})</code>', html).group(1)
    assert secret not in text(admin_client.get("/admin/apps"))

    charge({"X-App-Code": "toko", "X-Api-Key": key}, "INV-1")
    assert deliver(app) == 1
    body = verified(secret, receiver.received[0])
    assert body["data"]["order_id"] == "INV-1"
    (entry,) = audit_entries(app, "app_create")
    assert entry.after["callback_url"] == receiver.url and secret not in str(entry.after)


def test_setting_a_url_on_an_app_shows_its_secret_once(
    admin_client, post, app, app_key, receiver, charge
):
    edit = "/admin/apps/1"
    resp = post(
        edit, {"name": "biling app", "order_prefix": "", "callback_url": receiver.url}, page=edit
    )
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    secret = shown_secret(text(resp))
    assert "Standard Webhooks" in text(resp)

    again = text(admin_client.get(edit))
    assert receiver.url in again and secret not in again and "active" in again

    charge(app_key, "INV-7")
    deliver(app)
    assert verified(secret, receiver.received[0])["data"]["transaction_status"] == "pending"
    (entry,) = audit_entries(app, "app_callback_url")
    assert entry.before == {"callback_url": None} and entry.after == {"callback_url": receiver.url}
    assert "signing secret" in entry.detail and secret not in entry.detail
    assert audit_entries(app, "app_edit") == []  # only the URL changed


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://10.0.0.1/hook", "private"),
        ("http://169.254.169.254/latest/meta-data/", "private"),
        ("ftp://example.com/hook", "http(s)"),
        ("http://user:pw@example.com/hook", "credentials"),
    ],
)
def test_a_refused_url_shows_its_error_and_changes_nothing(
    admin_client, post, app, app_key, url, message
):
    edit = "/admin/apps/1"
    before = table_snapshot(app)
    resp = post(edit, {"name": "Renamed", "order_prefix": "new-", "callback_url": url}, page=edit)
    assert resp.status_code == 400
    html = text(resp)
    field = html.split('id="callback_url"', 1)[1].split("</div>", 1)[0]
    assert 'class="error"' in field and message in field
    assert url in html  # the admin's input stays in the field to be corrected
    assert table_snapshot(app) == before

    created = post(NEW_APP, {"code": "evil", "name": "Evil", "callback_url": url}, page=NEW_APP)
    assert created.status_code == 400 and message in text(created)
    assert table_snapshot(app) == before


def test_removing_the_url_stops_callbacks(admin_client, post, app, shop, receiver, charge):
    app_id = stored_app(app, "shop").id
    edit = f"/admin/apps/{app_id}"
    resp = post(edit, {"name": "Shop", "order_prefix": "shop-", "callback_url": ""}, page=edit)
    assert resp.status_code == 302
    assert "callbacks are stopped" in text(admin_client.get("/admin/apps"))
    assert stored_app(app, "shop").callback_url is None
    charge(shop.headers, "AFTER-1")
    assert stored_events(app) == [] and deliver(app) == 0 and receiver.received == []
    (entry,) = audit_entries(app, "app_callback_url")
    assert entry.after == {"callback_url": None} and entry.detail == "callbacks stopped"


def test_rotating_the_secret_needs_the_box_and_both_secrets_sign_for_a_day(
    admin_client, post, app, shop, receiver, charge
):
    app_id = stored_app(app, "shop").id
    edit = f"/admin/apps/{app_id}"
    rotate = f"/admin/apps/{app_id}/callbacks/rotate-secret"
    unticked = post(rotate, page=edit)
    assert unticked.status_code == 302
    assert stored_app(app, "shop").signing_secret == shop.signing_secret
    assert audit_entries(app, "app_callback_rotate_secret") == []

    resp = post(rotate, {"confirm": "y"}, page=edit)
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    html = text(resp)
    new_secret = shown_secret(html)
    assert new_secret != shop.signing_secret and "24 hours" in html

    charge(shop.headers, "ROT-1")
    deliver(app)
    verified(shop.signing_secret, receiver.received[0])
    verified(new_secret, receiver.received[0])
    (entry,) = audit_entries(app, "app_callback_rotate_secret")
    assert "previous secret" in entry.detail
    assert new_secret not in str(entry.detail) and shop.signing_secret not in str(entry.detail)
    # The edit page now says a rotation is under way.
    assert "A rotation is under way" in text(admin_client.get(edit))


# -- the endpoint's state --------------------------------------------------------------------


def test_states_none_active_failing_and_disabled_with_its_reason(
    admin_client, post, app, app_key, shop, receiver, charge
):
    shop_id = stored_app(app, "shop").id
    listing = text(admin_client.get("/admin/apps"))
    biling_row = listing.split("<code>biling</code>", 1)[1].split("</tr>", 1)[0]
    shop_row = listing.split("<code>shop</code>", 1)[1].split("</tr>", 1)[0]
    assert "none" in biling_row and "badge-ok" in shop_row

    receiver.answers = [500]
    charge(shop.headers, "F-1")
    deliver(app)
    listing = text(admin_client.get("/admin/apps"))
    assert "failing since" in listing.split("<code>shop</code>", 1)[1].split("</tr>", 1)[0]

    receiver.answers = [GONE]
    deliver(app, datetime.now(UTC) + timedelta(seconds=10))
    assert "410" in stored_app(app, "shop").callback_disabled_reason
    listing = text(admin_client.get("/admin/apps"))
    shop_row = listing.split("<code>shop</code>", 1)[1].split("</tr>", 1)[0]
    assert 'badge badge-bad"' in shop_row and "410 Gone" in shop_row
    assert "Re-enable callbacks" in shop_row
    page = text(admin_client.get(f"/admin/apps/{shop_id}"))
    assert "Callbacks are disabled:" in page and "410 Gone" in page
    log = text(admin_client.get(f"/admin/apps/{shop_id}/callbacks"))
    assert "Callbacks are disabled:" in log and "410 Gone" in log

    # Saving the app's name does not quietly re-enable the endpoint...
    edit = f"/admin/apps/{shop_id}"
    post(edit, {"name": "Shop 2", "order_prefix": "shop-", "callback_url": receiver.url}, page=edit)
    assert stored_app(app, "shop").callback_disabled_at is not None
    # ...the button does.
    resp = post(f"/admin/apps/{shop_id}/callbacks/enable", {"next": "/admin/apps"}, page=edit)
    assert resp.status_code == 302 and resp.location == "/admin/apps"
    shop_now = stored_app(app, "shop")
    assert shop_now.callback_disabled_at is None and shop_now.callback_url == receiver.url
    (entry,) = audit_entries(app, "app_callback_enable")
    assert "410" in entry.before["callback_disabled_reason"]
    assert entry.after["callback_disabled_reason"] is None
    assert "badge-ok" in text(admin_client.get("/admin/apps")).split("<code>shop</code>", 1)[1]


# -- the delivery log, resend, recover -------------------------------------------------------


def test_resend_queues_a_failed_event_again_with_the_same_webhook_id(
    admin_client, post, app, shop, receiver, charge
):
    shop_id = stored_app(app, "shop").id
    receiver.answers = [GONE]
    txn_id = charge(shop.headers, "R-1")
    deliver(app)
    (event,) = stored_events(app)
    assert event.state == CallbackState.FAILED
    log_path = f"/admin/apps/{shop_id}/callbacks"
    post(f"/admin/apps/{shop_id}/callbacks/enable", page=log_path)

    event_path = f"{log_path}/{event.id}"
    resp = post(f"{event_path}/resend", page=event_path)
    assert resp.status_code == 302 and resp.location == event_path
    (queued,) = stored_events(app)
    assert queued.state == CallbackState.PENDING and queued.event_id == event.event_id
    deliver(app)
    first, second = receiver.received
    assert first.webhook_id == second.webhook_id == event.event_id
    assert first.body == second.body
    verified(shop.signing_secret, second)
    assert stored_events(app)[0].state == CallbackState.DELIVERED

    detail = text(admin_client.get(event_path))
    rows = detail.split("<tbody>")[-1].split("</tbody>")[0].split("<tr>")[1:]
    assert len(rows) == 2
    assert "410" in rows[0] and "gone for good" in rows[0] and receiver.url in rows[0]
    assert "204" in rows[1] and " ms" in rows[1]
    (entry,) = audit_entries(app, "callback_resend")
    assert entry.target == f"callback:{event.event_id}"
    assert entry.before["state"] == "failed" and entry.after == {"state": "pending"}
    assert "R-1" in entry.detail

    # The order's page lists its callbacks with a link to the log.
    order_page = text(admin_client.get(f"/admin/transactions/{txn_id}"))
    section = order_page.split('id="callbacks"', 1)[1].split("</section>", 1)[0]
    assert event.event_id in section and "delivered" in section and event_path in section


def _failed_events(app, app_id: int, txn_id: int, created: list[datetime], state="failed"):
    with app.app_context():
        for i, moment in enumerate(created):
            db.session.add(
                CallbackEvent(
                    event_id=f"msg_test{i:03d}{state}",
                    app_id=app_id,
                    transaction_id=txn_id,
                    type="transaction.updated",
                    payload='{"type":"transaction.updated","data":{}}',
                    state=state,
                    attempts=10 if state == "failed" else 1,
                    created_at=moment,
                    next_attempt_at=None,
                )
            )
        db.session.commit()


def test_recover_counts_failed_events_since_a_jakarta_time(
    admin_client, post, app, app_key, charge
):
    txn_id = charge(app_key, "OLD-1")
    # 10:00 WIB on 10 January is 03:00 UTC.
    _failed_events(
        app,
        1,
        txn_id,
        [
            datetime(2026, 1, 10, 2, 30, tzinfo=UTC),  # 09:30 WIB: before
            datetime(2026, 1, 10, 3, 30, tzinfo=UTC),  # 10:30 WIB: after
            datetime(2026, 1, 11, 0, 0, tzinfo=UTC),
        ],
    )
    _failed_events(app, 1, txn_id, [datetime(2026, 1, 12, tzinfo=UTC)], state="delivered")
    log_path = "/admin/apps/1/callbacks"
    resp = post(f"{log_path}/recover", {"since": "2026-01-10T10:00"}, page=log_path)
    assert resp.status_code == 302
    page = text(admin_client.get(resp.location))
    assert "2 failed callbacks are queued again." in page
    states = {e.event_id: e.state for e in stored_events(app)}
    assert states == {
        "msg_test000failed": "failed",
        "msg_test001failed": "pending",
        "msg_test002failed": "pending",
        "msg_test000delivered": "delivered",
    }
    (entry,) = audit_entries(app, "callback_recover")
    assert entry.detail == "failed since 2026-01-10 10:00 WIB: 2 queued again"
    assert entry.target == "app:biling"

    nothing = post(f"{log_path}/recover", {"since": "2026-01-10T10:00"}, page=log_path)
    assert "0 failed callbacks are queued again." in text(admin_client.get(nothing.location))
    bad = post(f"{log_path}/recover", {"since": "yesterday"}, page=log_path)
    assert "Give the date and time" in text(admin_client.get(bad.location))
    assert len(audit_entries(app, "callback_recover")) == 2


def test_the_log_is_newest_first_paginated_and_filtered_by_state(
    admin_client, app, app_key, charge
):
    txn_id = charge(app_key, "MANY-1")
    start = datetime(2026, 3, 1, tzinfo=UTC)
    _failed_events(app, 1, txn_id, [start + timedelta(minutes=i) for i in range(51)], "delivered")
    _failed_events(app, 1, txn_id, [start - timedelta(days=1)], "failed")
    log_path = "/admin/apps/1/callbacks"

    def ids(html: str) -> list[str]:
        return re.findall(r"<code>(msg_test\d+\w+)</code></a>", html)

    first = text(admin_client.get(log_path))
    assert "52 events" in first and "Page 1 of 2" in first
    assert ids(first)[:2] == ["msg_test050delivered", "msg_test049delivered"]
    assert len(ids(first)) == 50
    second = text(admin_client.get(f"{log_path}?page=2"))
    assert ids(second) == ["msg_test000delivered", "msg_test000failed"]

    failed = text(admin_client.get(f"{log_path}?state=failed"))
    assert ids(failed) == ["msg_test000failed"] and "1 event" in failed
    assert "delivered (51)" in failed and "failed (1)" in failed and "pending (0)" in failed
    assert ids(text(admin_client.get(f"{log_path}?state=pending"))) == []
    assert len(ids(text(admin_client.get(f"{log_path}?state=bogus")))) == 50
    found = text(admin_client.get(f"{log_path}?q=msg_test007delivered"))
    assert ids(found) == ["msg_test007delivered"]
    assert len(ids(text(admin_client.get(f"{log_path}?q=MANY")))) == 50


def test_an_event_of_another_app_is_not_found_under_this_one(
    admin_client, app, app_key, shop, charge
):
    charge(shop.headers, "S-1")
    (event,) = stored_events(app)
    assert admin_client.get(f"/admin/apps/{event.app_id}/callbacks/{event.id}").status_code == 200
    assert admin_client.get(f"/admin/apps/1/callbacks/{event.id}").status_code == 404
    assert admin_client.get("/admin/apps/99/callbacks").status_code == 404


# -- every page renders; every POST needs its token ------------------------------------------


@pytest.fixture
def world(admin_client, app, shop, receiver, charge) -> dict:
    """Shop with a failed event and a disabled endpoint (so each POST would change something)."""
    receiver.answers = [GONE]
    txn_id = charge(shop.headers, "W-1")
    deliver(app)
    (event,) = stored_events(app)
    return {"app": event.app_id, "event": event.id, "txn": txn_id}


PAGES = [
    "/admin/apps",
    "/admin/apps/new",
    "/admin/apps/{app}",
    "/admin/apps/{app}/callbacks",
    "/admin/apps/{app}/callbacks?state=failed",
    "/admin/apps/{app}/callbacks?state=delivered&q=W-1",
    "/admin/apps/{app}/callbacks/{event}",
    "/admin/transactions/{txn}",
]


@pytest.mark.parametrize("lang", ["en", "id"])
@pytest.mark.parametrize("path", PAGES)
def test_each_page_renders_without_inline_script_or_style(admin_client, world, path, lang):
    resp = admin_client.get(path.format(**world), headers={"Accept-Language": lang})
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    html = text(resp)
    assert f'lang="{lang}"' in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert "<style" not in html and " style=" not in html


POSTS = {
    "create": (NEW_APP, {"code": "evil", "name": "Evil", "callback_url": "http://127.0.0.1/"}),
    "edit_url": ("/admin/apps/{app}", {"name": "Shop", "callback_url": "http://127.0.0.1:1/x"}),
    "edit_remove": ("/admin/apps/{app}", {"name": "Shop", "order_prefix": "shop-"}),
    "enable": ("/admin/apps/{app}/callbacks/enable", {}),
    "rotate_secret": ("/admin/apps/{app}/callbacks/rotate-secret", {"confirm": "y"}),
    "resend": ("/admin/apps/{app}/callbacks/{event}/resend", {}),
    "recover": ("/admin/apps/{app}/callbacks/recover", {"since": "2000-01-01T00:00"}),
}


@pytest.mark.parametrize("token", [None, "wrong-token", "IjEyMyI.aBcDeF.0123456789"])
@pytest.mark.parametrize("name", sorted(POSTS))
def test_post_without_a_valid_token_is_refused(admin_client, app, world, name, token):
    path, data = POSTS[name]
    before = table_snapshot(app)
    body = dict(data)
    if token is not None:
        body["csrf_token"] = token
    resp = admin_client.post(path.format(**world), data=body)
    assert resp.status_code == 400
    assert table_snapshot(app) == before


def test_every_new_post_works_with_its_token_and_is_audited(admin_client, app, world):
    """The same posts, with the page's token: each one is accepted and leaves its entry."""
    page = text(admin_client.get("/admin/apps/{app}/callbacks".format(**world)))
    token = csrf_from(page)
    for name in ("resend", "recover", "enable", "rotate_secret"):
        path, data = POSTS[name]
        resp = admin_client.post(path.format(**world), data={**data, "csrf_token": token})
        assert resp.status_code in (200, 302), name
    actions = {
        "callback_resend",
        "callback_recover",
        "app_callback_enable",
        "app_callback_rotate_secret",
    }
    for action in actions:
        assert audit_entries(app, action), action
    audit_page = text(admin_client.get("/admin/audit"))
    for action in actions:
        assert f'<option value="{action}"' in audit_page


def test_the_callback_pages_speak_indonesian(admin_client, world):
    headers = {"Accept-Language": "id"}
    app_page = text(admin_client.get("/admin/apps/{app}".format(**world), headers=headers))
    assert "Aktifkan kembali callback" in app_page and "Rotasi secret penanda tangan" in app_page
    log = text(admin_client.get("/admin/apps/{app}/callbacks".format(**world), headers=headers))
    assert "Kirim ulang semua yang gagal sejak itu" in log and "Percobaan" in log
