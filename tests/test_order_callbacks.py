"""An order's own `callback_url` (issue 15 item 4): its callbacks go there, signed with the
app's secret, under the same address rules as the app's URL; the client's own `metadata` and
`custom_field1..3` come back in /status, the records and every callback."""

from __future__ import annotations

import json

import pytest
import responses
from kit.endpoints import CallbackReceiver
from support import SNAP_URL, charge, hook_app, make_app, status_answer, status_url

from app import payments
from app.callback_sender import AddressPolicy, CallbackClient
from app.extensions import db
from app.models import App, CallbackEvent, Transaction
from app.services import gateway

ECHO = {
    "metadata": {"invoice": 7, "tags": ["vps", "monthly"]},
    "custom_field1": "whmcs-7",
    "custom_field2": "tenant-a",
    "custom_field3": "x",
}


def settled(midtrans_order_id: str, amount: int = 7000) -> dict:
    """Midtrans's status answer for a paid order, echoing a custom field of its own."""
    return status_answer(
        midtrans_order_id, amount=amount, payment_type="gopay", custom_field1="what Midtrans echoes"
    )


pytestmark = pytest.mark.usefixtures("loopback_callbacks")


@pytest.fixture
def app_hook(served):
    return served(CallbackReceiver(path="/app-updates"))


@pytest.fixture
def order_hook(served):
    return served(CallbackReceiver(path="/order-7"))


@pytest.fixture
def shop(cli, app_hook, order_hook):
    made = hook_app(cli, "shop", app_hook.url)
    app_hook.secret = order_hook.secret = made.signing_secret
    return made.headers


def deliver(flask_app) -> int:
    with flask_app.app_context():
        client = CallbackClient(gateway(flask_app).callback_policy)
        return payments.deliver_due_callbacks(client=client)


def pay(client, headers, midtrans, order_id: str, amount: int = 7000) -> dict:
    midtrans.add(
        responses.GET, status_url(f"shop-{order_id}"), json=settled(f"shop-{order_id}", amount)
    )
    resp = client.get(f"/status/{order_id}", headers=headers)
    assert resp.status_code == 200
    return resp.json


def test_an_orders_callbacks_go_to_its_own_url_signed_with_the_apps_secret(
    app, client, shop, midtrans, app_hook, order_hook
):
    charge(client, shop, midtrans, "C-7", callback_url=order_hook.url, **ECHO)
    charge(client, shop, midtrans, "C-8")
    pay(client, shop, midtrans, "C-7")

    while deliver(app):
        pass

    assert order_hook.unverified() == [] and app_hook.unverified() == []
    assert order_hook.statuses("C-7") == ["pending", "settlement"]
    assert order_hook.events("C-8") == []
    assert app_hook.statuses("C-8") == ["pending"]
    assert app_hook.events("C-7") == []
    for event in order_hook.events("C-7"):
        assert {k: event["data"][k] for k in ECHO} == ECHO


def test_the_client_fields_are_echoed_in_status_and_records(client, shop, midtrans, order_hook):
    charge(client, shop, midtrans, "C-7", **ECHO)
    status = pay(client, shop, midtrans, "C-7")
    record = client.get("/transactions/C-7", headers=shop).json
    listed = client.get("/transactions", headers=shop).json["data"][0]

    for view in (status, record, listed):
        assert {k: view[k] for k in ECHO} == ECHO
    # The callback URL is the gateway's business, never Midtrans's.
    sent = json.loads(next(c for c in midtrans.calls if c.request.url == SNAP_URL).request.body)
    assert "callback_url" not in sent and sent["custom_field1"] == "whmcs-7"


def test_an_order_url_is_used_when_the_app_has_no_url_but_a_secret(
    app, client, cli, midtrans, order_hook
):
    made = hook_app(cli, "solo", order_hook.url)
    cli("apps", "set-callback", "solo", "")  # the app's own URL goes; its secret stays
    order_hook.secret = made.signing_secret

    charge(client, made.headers, midtrans, "S-1", callback_url=order_hook.url)
    charge(client, made.headers, midtrans, "S-2")
    assert deliver(app) == 1

    assert order_hook.unverified() == []
    assert order_hook.statuses("S-1") == ["pending"]
    assert order_hook.events("S-2") == []


def test_a_gone_order_url_ends_its_events_and_leaves_the_apps_endpoint_alone(
    app, client, shop, midtrans, order_hook
):
    order_hook.answers.append((410, {}))
    charge(client, shop, midtrans, "C-7", callback_url=order_hook.url)
    assert deliver(app) == 1
    with app.app_context():
        (event,) = db.session.query(CallbackEvent).all()
        shop_app = db.session.query(App).filter_by(code="shop").one()
        assert event.state == "failed"
        assert shop_app.callback_disabled_at is None
        assert shop_app.callback_failing_since is None


def test_an_app_without_a_signing_secret_is_told_how_to_get_one(client, cli, midtrans):
    headers = make_app(cli, "plain")

    resp = client.post(
        "/charge",
        json={"order_id": "P-1", "amount": 5000, "callback_url": "https://example.com/hook"},
        headers=headers,
    )

    assert resp.status_code == 400
    error = resp.json["error"]
    assert error["details"] == {"field": "callback_url"}
    assert "signing secret" in error["message"] and "set-callback" in error["message"]
    assert len(midtrans.calls) == 0
    with client.application.app_context():
        assert db.session.query(Transaction).count() == 0


def strict(flask_app) -> None:
    """No address is allowed any more (CALLBACK_ALLOWED_HOSTS empty, the default)."""
    gateway(flask_app).callback_policy = AddressPolicy.parse("")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://10.1.2.3/hook", "CALLBACK_ALLOWED_HOSTS"),
        ("http://169.254.169.254/latest/meta-data", "CALLBACK_ALLOWED_HOSTS"),
        ("http://127.0.0.1:9/hook", "CALLBACK_ALLOWED_HOSTS"),
        ("https://user:pw@example.com/hook", "credentials"),
        ("ftp://example.com/hook", "http(s)"),
        ("gojek://return", "gopay.callback_url"),
        ("", "empty"),
        (7, "string"),
    ],
)
def test_an_unsafe_or_malformed_order_url_is_refused_before_midtrans(
    app, client, shop, midtrans, url, says
):
    strict(app)

    resp = client.post(
        "/charge", json={"order_id": "U-1", "amount": 5000, "callback_url": url}, headers=shop
    )

    assert resp.status_code == 400, resp.get_data(as_text=True)
    assert resp.json["error"]["details"] == {"field": "callback_url"}
    assert says in resp.json["error"]["message"]
    assert len(midtrans.calls) == 0
    with app.app_context():
        assert db.session.query(Transaction).count() == 0


def test_a_different_callback_url_is_other_details(client, shop, midtrans, order_hook):
    first = charge(client, shop, midtrans, "C-7", callback_url=order_hook.url)
    same = client.post(
        "/charge",
        json={"order_id": "C-7", "amount": 7000, "callback_url": order_hook.url},
        headers=shop,
    )
    other = client.post(
        "/charge",
        json={"order_id": "C-7", "amount": 7000, "callback_url": order_hook.url + "x"},
        headers=shop,
    )
    assert same.status_code == 201 and same.json == first.json
    assert other.status_code == 409
