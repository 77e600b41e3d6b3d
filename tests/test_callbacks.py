"""Callbacks to client apps: signed per Standard Webhooks, verified by a real receiver with
the `standardwebhooks` package, retried, ordered, disabled on 410, and never sent to private
addresses unless allowed."""

from __future__ import annotations

import ipaddress
import socket
from datetime import UTC, datetime, timedelta

import pytest
import responses
from kit.endpoints import CallbackReceiver, SocketServer
from standardwebhooks import Webhook
from support import charge, hook_app, status_url

from app import payments
from app.callback_sender import CallbackClient
from app.extensions import db
from app.models import App, CallbackAttempt, CallbackEvent
from app.services import gateway

SETTLED = {
    "status_code": "200",
    "transaction_id": "tx-9",
    "order_id": "C-1",
    "gross_amount": "7000.00",
    "currency": "IDR",
    "payment_type": "gopay",
    "transaction_status": "settlement",
    "fraud_status": "accept",
    "signature_key": "x" * 128,
    "merchant_id": "G1",
}


@pytest.fixture
def receiver(served):
    """The app's endpoint: keeps every callback unverified (the tests verify them) and answers
    the statuses a test queues in `answers`, then 204."""
    return served(CallbackReceiver(verify=False, path="/midtrans-updates"))


pytestmark = pytest.mark.usefixtures("loopback_callbacks")


@pytest.fixture
def hooked(cli, receiver):
    """An app whose callbacks go to the receiver: its headers and signing secret."""
    made = hook_app(cli, "shop", receiver.url)
    assert made.signing_secret.startswith("whsec_")
    return made.headers, made.signing_secret


def deliver(app, at: datetime | None = None) -> int:
    with app.app_context():
        client = CallbackClient(gateway(app).callback_policy)
        return payments.deliver_due_callbacks(client=client, now=at)


def events(app) -> list[CallbackEvent]:
    with app.app_context():
        rows = db.session.query(CallbackEvent).order_by(CallbackEvent.id).all()
        for row in rows:
            db.session.expunge(row)
        return rows


def test_each_state_change_reaches_the_app_signed_and_verifiable(
    app, client, hooked, receiver, midtrans
):
    headers, secret = hooked
    charge(client, headers, midtrans)
    midtrans.add(responses.GET, status_url("shop-C-1"), json={**SETTLED, "order_id": "shop-C-1"})
    client.get("/status/C-1", headers=headers)

    assert deliver(app) == 1  # the second waits for the first (same order)
    assert deliver(app) == 1

    verifier = Webhook(secret)
    bodies = [verifier.verify(r.body, r.headers) for r in receiver.received]
    assert [b["type"] for b in bodies] == ["transaction.updated"] * 2
    assert [b["data"]["transaction_status"] for b in bodies] == ["pending", "settlement"]
    data = bodies[1]["data"]
    assert data["order_id"] == "C-1" and data["id"] == "tx-9"
    assert "signature_key" not in data and "merchant_id" not in data
    assert datetime.fromisoformat(bodies[1]["timestamp"]).tzinfo is not None
    assert all(e.state == "delivered" for e in events(app))


def test_a_failed_attempt_is_retried_with_the_same_id_and_bytes(
    app, client, hooked, receiver, midtrans
):
    headers, secret = hooked
    receiver.answers = [(500, {})]
    charge(client, headers, midtrans)
    now = datetime.now(UTC)

    deliver(app, now)
    (event,) = events(app)
    assert event.state == "pending" and event.attempts == 1
    assert timedelta(seconds=4) <= event.next_attempt_at - now <= timedelta(seconds=6)
    assert deliver(app, now + timedelta(seconds=2)) == 0  # not due yet

    deliver(app, now + timedelta(seconds=6))
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == event.event_id
    assert first.body == second.body
    Webhook(secret).verify(second.body, second.headers)
    assert events(app)[0].state == "delivered"
    with app.app_context():
        attempts = [(a.status_code, a.error) for a in db.session.query(CallbackAttempt)]
    assert attempts == [(500, None), (204, None)]


def test_events_of_one_order_are_delivered_in_order(app, client, hooked, receiver, midtrans):
    headers, _ = hooked
    receiver.answers = [(503, {})]
    charge(client, headers, midtrans)
    midtrans.add(responses.GET, status_url("shop-C-1"), json={**SETTLED, "order_id": "shop-C-1"})
    client.get("/status/C-1", headers=headers)
    now = datetime.now(UTC)

    assert deliver(app, now) == 1  # pending fails; settlement must wait behind it
    assert deliver(app, now + timedelta(seconds=1)) == 0
    assert deliver(app, now + timedelta(seconds=10)) == 1
    assert deliver(app, now + timedelta(seconds=11)) == 1
    statuses = [r.json()["data"]["transaction_status"] for r in receiver.received]
    assert statuses == ["pending", "pending", "settlement"]


def test_retry_after_is_honoured_on_429(app, client, hooked, receiver, midtrans):
    headers, _ = hooked
    receiver.answers = [(429, {"Retry-After": "120"})]
    charge(client, headers, midtrans)
    now = datetime.now(UTC)
    deliver(app, now)
    assert events(app)[0].next_attempt_at - now == timedelta(seconds=120)


def test_410_disables_the_endpoint_and_recover_sends_again(
    app, client, cli, hooked, receiver, midtrans
):
    headers, secret = hooked
    receiver.answers = [(410, {})]
    charge(client, headers, midtrans)
    deliver(app)
    assert events(app)[0].state == "failed"
    with app.app_context():
        shop = db.session.query(App).filter_by(code="shop").one()
        assert shop.callback_disabled_at is not None and "410" in shop.callback_disabled_reason

    charge(client, headers, midtrans, order_id="C-2")
    assert deliver(app) == 0  # disabled: nothing is sent, but the event is kept
    assert events(app)[1].state == "pending"

    cli("apps", "set-callback", "shop", receiver.url)
    out = cli("apps", "recover-callbacks", "shop", "--since", "2000-01-01T00:00:00Z")
    assert "1 failed callbacks" in out.output
    deliver(app)
    deliver(app)
    assert [e.state for e in events(app)] == ["delivered", "delivered"]
    assert len(receiver.received) == 3


def test_retries_end_after_the_schedule_and_the_event_is_kept_as_failed(
    app, client, hooked, receiver, midtrans
):
    headers, _ = hooked
    receiver.answers = [(500, {})] * 20
    charge(client, headers, midtrans)
    at = datetime.now(UTC)
    last_try = at
    for _ in range(10):
        deliver(app, at)
        last_try, at = at, events(app)[0].next_attempt_at or at
    (event,) = events(app)
    assert (event.state, event.attempts) == ("failed", 10)
    # about 3 days of retries (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h, jittered)
    assert timedelta(days=2.8) < last_try - event.created_at < timedelta(days=3.5)
    resent = None
    with app.app_context():
        resent = payments.resend_event(event.id).event_id
    receiver.answers = []
    deliver(app)
    assert events(app)[0].state == "delivered"
    assert receiver.received[-1].headers["webhook-id"] == resent == event.event_id


def test_an_endpoint_failing_for_five_days_is_disabled(app, client, hooked, receiver, midtrans):
    headers, _ = hooked
    receiver.answers = [(500, {})] * 5
    charge(client, headers, midtrans)
    now = datetime.now(UTC)
    deliver(app, now)
    with app.app_context():
        event = db.session.query(CallbackEvent).one()
        event.next_attempt_at = now + timedelta(days=5, seconds=1)
        db.session.commit()
    deliver(app, now + timedelta(days=5, seconds=1))
    with app.app_context():
        shop = db.session.query(App).filter_by(code="shop").one()
        assert shop.callback_disabled_at is not None
        assert "failing since" in shop.callback_disabled_reason


def test_rotated_secret_signs_alongside_the_old_one_for_a_day(
    app, client, cli, hooked, receiver, midtrans
):
    headers, old_secret = hooked
    out = cli("apps", "rotate-secret", "shop").output.strip().splitlines()[-1]
    new_secret = out.split(": ", 1)[1]
    charge(client, headers, midtrans)
    deliver(app)
    first = receiver.received[0]
    assert len(first.headers["webhook-signature"].split(" ")) == 2
    Webhook(old_secret).verify(first.body, first.headers)
    Webhook(new_secret).verify(first.body, first.headers)


def test_apps_without_a_callback_url_get_no_events(app, client, app_key, midtrans):
    charge(client, app_key, midtrans)
    assert events(app) == []


# -- SSRF -------------------------------------------------------------------------------------


@pytest.fixture
def canary(served):
    """A listener that must never be reached: it counts connections."""
    return served(SocketServer())


@pytest.fixture
def canary6(served):
    return served(SocketServer("::1", socket.AF_INET6))


@pytest.mark.parametrize(
    "template",
    [
        "http://127.0.0.1:{port}/",
        "http://localhost:{port}/",
        "http://[::1]:{port6}/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://[::ffff:127.0.0.1]:{port}/",
        "ftp://example.com/",
    ],
)
def test_private_callback_urls_are_refused_when_set(build_app, tmp_path, canary, canary6, template):
    from support import database_url

    flask_app = build_app({"DATABASE_URL": database_url(tmp_path), "SECRET_KEY": "k" * 32})
    url = template.format(port=canary.port, port6=canary6.port)
    result = flask_app.test_cli_runner().invoke(
        args=["apps", "create", "evil", "--name", "x", "--callback-url", url]
    )
    assert result.exit_code != 0
    assert "private" in result.output or "http(s)" in result.output
    with flask_app.app_context():
        assert db.session.query(App).count() == 0
    assert canary.connections == canary6.connections == 0


def test_a_url_that_turns_private_is_refused_at_send_time(build_app, tmp_path, canary, midtrans):
    """The URL passed the check when set; at send time it resolves to loopback."""
    from support import database_url

    flask_app = build_app(
        {
            "DATABASE_URL": database_url(tmp_path),
            "SECRET_KEY": "k" * 32,
            "MIDTRANS_SERVER_KEY": "SB-Mid-server-test",
            "MIDTRANS_SNAP_BASE_URL": "https://app.midtrans.test/snap/v1",
        }
    )
    runner = flask_app.test_cli_runner()
    key = runner.invoke(args=["apps", "create", "shop", "--name", "S"]).output.split()[-1]
    with flask_app.app_context():
        shop = db.session.query(App).one()
        shop.callback_url = f"http://localhost:{canary.port}/hook"
        shop.signing_secret = "whsec_" + "A" * 44
        db.session.commit()
    charge(flask_app.test_client(), {"X-App-Code": "shop", "X-Api-Key": key}, midtrans)
    deliver(flask_app)
    with flask_app.app_context():
        attempt = db.session.query(CallbackAttempt).one()
        assert attempt.status_code is None and "refused" in attempt.error
    assert canary.connections == 0


def test_redirects_are_not_followed(app, client, hooked, receiver, canary, midtrans):
    headers, _ = hooked
    receiver.answers = [(302, {"Location": f"http://localhost:{canary.port}/steal"})]
    charge(client, headers, midtrans)
    deliver(app)
    assert canary.connections == 0
    assert events(app)[0].state == "pending"  # a redirect is a failure, retried later


def test_resend_waits_while_a_worker_is_delivering(app, client, hooked, receiver, midtrans):
    from app.errors import BusyError

    headers, _ = hooked
    charge(client, headers, midtrans)
    with app.app_context():
        event = db.session.query(CallbackEvent).one()
        event.claimed_until = datetime.now(UTC) + timedelta(minutes=1)
        db.session.commit()
        with pytest.raises(BusyError):
            payments.resend_event(event.id)


# -- Retry-After (issue 12 item 5) -------------------------------------------------------------


def http_date(at: datetime) -> str:
    from email.utils import format_datetime

    return format_datetime(at.astimezone(UTC), usegmt=True)


@pytest.mark.parametrize(
    "value, low, high",
    [
        ("1e308", timedelta(hours=24), timedelta(hours=24)),  # crashed the attempt
        ("inf", timedelta(hours=24), timedelta(hours=24)),
        ("999999999999", timedelta(hours=24), timedelta(hours=24)),
        ("-5", timedelta(seconds=5), timedelta(seconds=5)),  # never sooner than the schedule
        ("0", timedelta(seconds=5), timedelta(seconds=5)),
        ("nan", timedelta(seconds=4.5), timedelta(seconds=5.5)),  # no number: the schedule
        ("soon, please", timedelta(seconds=4.5), timedelta(seconds=5.5)),
        ("1_000", timedelta(seconds=4.5), timedelta(seconds=5.5)),
        ("http-date +300 s", timedelta(seconds=295), timedelta(seconds=301)),
        ("http-date -1 h", timedelta(seconds=5), timedelta(seconds=5)),
        ("Fri, 31 Dec 9999 23:59:59 GMT", timedelta(hours=24), timedelta(hours=24)),
    ],
)
@pytest.mark.parametrize("status", [429, 503])
def test_any_retry_after_is_recorded_and_rescheduled_within_the_schedule_bounds(
    app, client, hooked, receiver, midtrans, status, value, low, high
):
    headers, _ = hooked
    charge(client, headers, midtrans)
    now = datetime.now(UTC)
    if value == "http-date +300 s":
        value = http_date(now + timedelta(seconds=300))
    elif value == "http-date -1 h":
        value = http_date(now - timedelta(hours=1))
    receiver.answers = [(status, {"Retry-After": value})]

    assert deliver(app, now) == 1
    (event,) = events(app)
    assert event.state == "pending" and event.attempts == 1
    assert low <= event.next_attempt_at - now <= high
    with app.app_context():
        (attempt,) = db.session.query(CallbackAttempt).all()
        assert attempt.status_code == status


def test_retry_after_is_parsed_from_seconds_and_http_dates():
    from app.callback_sender import parse_retry_after

    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after(" 2.5 ", now) == 2.5
    assert parse_retry_after("-5", now) == 0
    assert parse_retry_after("1e308", now) == 1e308
    assert parse_retry_after("inf", now) == float("inf")
    assert parse_retry_after("Fri, 01 May 2026 12:02:00 GMT", now) == 120
    assert parse_retry_after("Friday, 01-May-26 12:02:00 GMT", now) == 120  # RFC 850
    assert parse_retry_after("Fri, 01 May 2026 11:00:00 GMT", now) == 0
    for garbage in [None, "", "nan", "-nan", "soon", "1_000", "0x10", "Fri, 99 Foo 2026"]:
        assert parse_retry_after(garbage, now) is None, garbage


def test_an_attempt_is_recorded_even_when_the_client_raises(
    app, client, hooked, receiver, midtrans
):
    class Broken(CallbackClient):
        def deliver(self, *args, **kwargs):
            raise RuntimeError("a bug")

    headers, _ = hooked
    charge(client, headers, midtrans)
    now = datetime.now(UTC)
    with app.app_context():
        broken = Broken(gateway(app).callback_policy)
        assert payments.deliver_due_callbacks(client=broken, now=now) == 1
        attempt = db.session.query(CallbackAttempt).one()
        assert attempt.status_code is None and "RuntimeError" in attempt.error
    (event,) = events(app)
    assert event.state == "pending" and event.claimed_until is None
    assert timedelta(seconds=4) < event.next_attempt_at - now < timedelta(seconds=6)


# -- SSRF: IPv6 forms that carry an IPv4 address (issue 12 item 8) ----------------------------
# Policy only: nothing here opens a connection to these addresses.


def rfc6052(prefix: str, v4: str, length: int) -> str:
    """`v4` embedded in the IPv6 `prefix` of `length` bits, RFC 6052 layout (u octet skipped)."""
    head = ipaddress.IPv6Address(prefix).packed[: length // 8]
    packed = ipaddress.IPv4Address(v4).packed
    if length == 96:
        return str(ipaddress.IPv6Address(head + packed))
    body = (head + packed + bytes(16))[:15]
    return str(ipaddress.IPv6Address(body[:8] + b"\0" + body[8:]))


def sixtofour(v4: str) -> str:
    return str(ipaddress.IPv6Address(b"\x20\x02" + ipaddress.IPv4Address(v4).packed + bytes(10)))


def teredo(server: str, client: str) -> str:
    s = ipaddress.IPv4Address(server).packed
    c = bytes(b ^ 0xFF for b in ipaddress.IPv4Address(client).packed)
    return str(ipaddress.IPv6Address(bytes.fromhex("20010000") + s + bytes(4) + c))


FORBIDDEN_V4 = ["127.0.0.1", "10.1.2.3", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0"]
EMBEDDINGS = {
    "ipv4-mapped ::ffff:a.b.c.d": lambda v4: f"::ffff:{v4}",
    "ipv4-compatible ::a.b.c.d": lambda v4: f"::{v4}",
    "ipv4-translated ::ffff:0:a.b.c.d": lambda v4: f"::ffff:0:{v4}",
    "nat64 64:ff9b::/96": lambda v4: f"64:ff9b::{v4}",
    "nat64 local 64:ff9b:1::/48, /96 layout": lambda v4: rfc6052("64:ff9b:1::", v4, 96),
    "nat64 local 64:ff9b:1::/48, /48 layout": lambda v4: rfc6052("64:ff9b:1::", v4, 48),
    "nat64 local 64:ff9b:1::/56 layout": lambda v4: rfc6052("64:ff9b:1::", v4, 56),
    "nat64 local 64:ff9b:1::/64 layout": lambda v4: rfc6052("64:ff9b:1::", v4, 64),
    "6to4 2002::/16": lambda v4: sixtofour(v4),
    "teredo 2001::/32, client": lambda v4: teredo("8.8.8.8", v4),
    "teredo 2001::/32, server": lambda v4: teredo(v4, "8.8.4.4"),
}


@pytest.mark.parametrize("v4", FORBIDDEN_V4)
@pytest.mark.parametrize("form", EMBEDDINGS)
def test_ipv6_forms_carrying_a_forbidden_ipv4_are_refused(form, v4):
    import ipaddress

    from app.callback_sender import AddressPolicy, UnsafeCallbackURL, embedded_ipv4

    address = EMBEDDINGS[form](v4)
    assert ipaddress.IPv4Address(v4) in embedded_ipv4(ipaddress.IPv6Address(address))
    policy = AddressPolicy.parse("")
    assert not policy.address_allowed(address, address)
    with pytest.raises(UnsafeCallbackURL, match="private"):
        policy.check_url(f"http://[{address}]:8080/hook")  # a numeric lookup: no traffic


@pytest.mark.parametrize("form", EMBEDDINGS)
def test_ipv6_forms_carrying_a_public_ipv4_are_allowed(form):
    from app.callback_sender import AddressPolicy

    if form == "ipv4-mapped ::ffff:a.b.c.d":
        address = "::ffff:8.8.8.8"
    elif form.startswith("nat64 local"):
        # The layout of 64:ff9b:1::/48 is the network's choice: every possible reading must be
        # public. 8.8.8.8 in each layout at once reads as 8.8.8.8 in all of them.
        address = "64:ff9b:1:808:8:808:808:808"
    else:
        address = EMBEDDINGS[form]("8.8.8.8")
    policy = AddressPolicy.parse("")
    assert policy.address_allowed(address, address)
    assert policy.check_url(f"https://[{address}]/hook")


def test_a_local_nat64_address_public_in_one_layout_only_is_refused():
    from app.callback_sender import AddressPolicy

    address = rfc6052("64:ff9b:1::", "8.8.8.8", 96)  # in the /48 layout: 0.0.0.0
    assert not AddressPolicy.parse("").address_allowed(address, address)


def test_callback_allowed_hosts_may_allow_the_embedded_ipv4():
    from app.callback_sender import AddressPolicy

    policy = AddressPolicy.parse("10.1.2.3, 192.168.7.0/24")
    for allowed in ["64:ff9b::10.1.2.3", "::ffff:10.1.2.3", "2002:a01:203::1", "::192.168.7.9"]:
        assert policy.address_allowed(allowed, allowed), allowed
    for refused in ["64:ff9b::10.1.2.4", "::ffff:127.0.0.1", "2002:a01:204::1", "::192.168.8.1"]:
        assert not policy.address_allowed(refused, refused), refused
    # A name or an IPv6 range in the setting allows the IPv6 form itself.
    assert AddressPolicy.parse("64:ff9b::/96").address_allowed("x", "64:ff9b::127.0.0.1")
    assert AddressPolicy.parse("nat64.internal").address_allowed(
        "nat64.internal", "64:ff9b::127.0.0.1"
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://[64:ff9b::7f00:1]:{port}/",
        "http://[::127.0.0.1]:{port}/",
        "http://[2002:7f00:1::]:{port}/",
        "http://[64:ff9b::169.254.169.254]/latest/meta-data/",
    ],
)
def test_embedded_private_callback_urls_are_refused_when_set(build_app, tmp_path, canary, url):
    from support import database_url

    flask_app = build_app({"DATABASE_URL": database_url(tmp_path), "SECRET_KEY": "k" * 32})
    url = url.format(port=canary.port)
    result = flask_app.test_cli_runner().invoke(
        args=["apps", "create", "evil", "--name", "x", "--callback-url", url]
    )
    assert result.exit_code != 0 and "private" in result.output
    with flask_app.app_context():
        assert db.session.query(App).count() == 0
    assert canary.connections == 0
