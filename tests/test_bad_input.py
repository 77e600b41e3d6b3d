"""No input may give a 500 (issue 11 item 8): hostile strings in notifications, request
bodies, paths, query strings and redirect targets get a 4xx (JSON outside /admin, an HTML
page under /admin) and change nothing; a notification is stored even when it is refused.

Several of these only failed on PostgreSQL (it refuses NUL in text); run this file with
TEST_DATABASE_URL as well. The malformed chunked bodies need the production server, so they
are sent to a real gunicorn over a raw socket.
"""

from __future__ import annotations

import json
import socket
from urllib.parse import quote

import pytest
import responses
from admin.dashboard import PASSWORD, token_for
from midtrans_samples import FIXTURE_SERVER_KEY, SNAP_NOTIFICATION_SETTLEMENT
from sqlalchemy import event
from support import API_BASE, signed, snap_ok

from app.admin.models import AuditEntry
from app.extensions import db
from app.models import App, Notification, Transaction, TransactionEvent

SETTLEMENT = SNAP_NOTIFICATION_SETTLEMENT
ORDER_ID = SETTLEMENT["order_id"]
SURROGATES = ["\ud800", "\udfff"]


@pytest.fixture
def env(env):
    env["MIDTRANS_SERVER_KEY"] = FIXTURE_SERVER_KEY
    return env


@pytest.fixture
def order(client, app_key, midtrans):
    """The user's app holds order ORDER-sandbox-0001 for 150,000 (no prefix), still pending."""
    snap_ok(midtrans)
    resp = client.post("/charge", json={"order_id": ORDER_ID, "amount": 150000}, headers=app_key)
    assert resp.status_code == 201


def post_notification(client, body: dict):
    # json.dumps writes a lone surrogate as the escape \ud800, as a hostile sender would.
    raw = json.dumps(body).encode("ascii")
    return client.post("/notification", data=raw, content_type="application/json")


def order_untouched(client) -> None:
    with client.application.app_context():
        txn = db.session.query(Transaction).one()
        assert txn.status == "pending"
        assert db.session.query(TransactionEvent).filter_by(source="notification").count() == 0


def stored_notification(client) -> Notification:
    with client.application.app_context():
        note = db.session.query(Notification).one()
        db.session.expunge(note)
        return note


def no_status_call(midtrans) -> bool:
    return not [c for c in midtrans.calls if c.request.url.startswith(f"{API_BASE}/v2/")]


# -- 1. lone surrogates in a Midtrans notification ------------------------------------------


@pytest.mark.parametrize("surrogate", SURROGATES, ids=["d800", "dfff"])
@pytest.mark.parametrize("field", ["order_id", "status_code", "gross_amount", "signature_key"])
def test_a_lone_surrogate_in_a_signed_field_is_stored_and_refused(
    client, order, midtrans, field, surrogate
):
    body = {**SETTLEMENT, field: SETTLEMENT[field] + surrogate}

    resp = post_notification(client, body)

    assert resp.status_code in {400, 403}
    assert resp.is_json and resp.json["error"]["code"] in {
        "invalid_signature",
        "invalid_notification",
    }
    note = stored_notification(client)
    assert (note.outcome, note.signature_valid) == ("rejected", False)
    assert json.loads(note.body) == body  # the raw body, the escape kept as sent
    escaped = "\\u" + format(ord(surrogate), "04x")
    if field != "signature_key":
        assert getattr(note, field) == SETTLEMENT[field] + escaped
    order_untouched(client)
    assert no_status_call(midtrans)


UNSIGNED = {
    "transaction_id": lambda s: {"transaction_id": "trx-" + s},
    "payment_type": lambda s: {"payment_type": "gopay" + s},
    "transaction_status": lambda s: {"transaction_status": "settlement" + s},
    "nested": lambda s: {"va_numbers": [{"bank": "bca", "va_number": "123" + s}]},
    "a key": lambda s: {"custom" + s: "x"},
}


@pytest.mark.parametrize("surrogate", SURROGATES, ids=["d800", "dfff"])
@pytest.mark.parametrize("where", UNSIGNED.values(), ids=UNSIGNED.keys())
def test_a_lone_surrogate_anywhere_in_a_signed_notification_is_stored_and_refused(
    client, order, midtrans, where, surrogate
):
    body = signed(**where(surrogate))

    resp = post_notification(client, body)

    assert resp.status_code == 400
    assert resp.json["error"]["code"] == "invalid_notification"
    note = stored_notification(client)
    assert note.outcome == "rejected"
    assert json.loads(note.body) == body
    if "transaction_id" in where(""):
        assert note.midtrans_transaction_id == "trx-\\u" + format(ord(surrogate), "04x")
    order_untouched(client)
    assert no_status_call(midtrans)


def test_a_surrogate_pair_is_ordinary_text(client, order, midtrans):
    """An escaped pair (an emoji) is valid Unicode: not mistaken for a lone surrogate."""
    body = signed(custom_field1="thanks \ud83d\ude00")
    midtrans.add(
        responses.GET,
        f"{API_BASE}/v2/{ORDER_ID}/status",
        json={**{k: v for k, v in body.items() if k != "signature_key"}},
    )
    assert post_notification(client, body).status_code == 200


def test_a_verified_notification_with_nul_in_an_unsigned_field_is_still_stored(
    client, order, midtrans
):
    body = signed(transaction_id="trx-\x00-1")
    midtrans.add(
        responses.GET,
        f"{API_BASE}/v2/{ORDER_ID}/status",
        json={**{k: v for k, v in body.items() if k != "signature_key"}, "transaction_id": "t"},
    )
    resp = post_notification(client, body)
    assert resp.status_code == 200
    assert stored_notification(client).midtrans_transaction_id == "trx-\\u0000-1"


# -- 4. /status/<order_id> that cannot be an order id ----------------------------------------


@pytest.fixture
def statements(app):
    """The SQL statements the app runs while the test is going on."""
    seen: list[str] = []
    with app.app_context():
        engine = db.engine

    def record(conn, cursor, statement, *args):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


@pytest.mark.parametrize(
    "order_id",
    ["%00", "INV%00-1", "a%0d%0ab", "INV%20001", "..%2Fcharge", "a/b", "x" * 51, "%C3%A9"],
    ids=["NUL", "NUL inside", "CRLF", "space", "dot-dot slash", "slash", "too long", "e-acute"],
)
def test_status_of_something_that_cannot_be_an_order_id_is_404_without_a_query(
    client, app_key, midtrans, statements, order_id
):
    statements.clear()
    resp = client.get(f"/status/{order_id}", headers=app_key)
    assert resp.status_code == 404
    assert resp.json["error"]["code"] == "not_found"
    assert not [s for s in statements if "transactions" in s]
    assert len(midtrans.calls) == 0


def test_status_of_a_real_order_still_works(client, app_key, midtrans):
    snap_ok(midtrans)
    client.post("/charge", json={"order_id": "INV~2025.001_a", "amount": 5}, headers=app_key)
    midtrans.add(
        responses.GET,
        f"{API_BASE}/v2/INV~2025.001_a/status",
        json={"status_code": "404", "status_message": "Transaction doesn't exist."},
    )
    resp = client.get("/status/INV~2025.001_a", headers=app_key)
    assert resp.status_code == 200, resp.json
    assert resp.json["transaction_status"] == "pending"


@pytest.mark.parametrize("code", ["bil\x00ing", "\x00", "bil\x01ing"], ids=["NUL", "only", "SOH"])
def test_an_app_code_with_a_control_character_is_401(client, app_key, code):
    """gunicorn refuses such headers itself; another server might pass them on."""
    resp = client.get("/status/INV-1", headers={**app_key, "X-App-Code": code})
    assert resp.status_code == 401
    assert resp.json["error"]["code"] == "unauthorized"


# -- 3. the dashboard's redirect targets ----------------------------------------------------


HOSTILE_NEXT = {
    "CRLF": "/admin/apps%0d%0aSet-Cookie:%20x=y",
    "LF": "/admin/apps%0a",
    "NUL": "/admin/%00",
    "tab": "/admin/%09apps",
    "DEL": "/admin/apps%7f",
    "C1 control": "/admin/apps%C2%85",
    "other host": "//evil.example/admin",
    "other host, backslash": "/%5Cevil.example/admin",
    "absolute": "https://evil.example/admin",
    "javascript": "javascript:alert(1)",
    "outside the dashboard": "/charge",
    "a prefix only": "/administrator",
}


@pytest.mark.parametrize("target", HOSTILE_NEXT.values(), ids=HOSTILE_NEXT.keys())
def test_login_never_follows_a_hostile_next(client, admin_user, target):
    token = token_for(client)
    resp = client.post(
        f"/admin/login?next={target}",
        data={"csrf_token": token, "username": "root", "password": PASSWORD},
    )
    assert resp.status_code == 302
    assert resp.location == "/admin/"


@pytest.mark.parametrize("target", HOSTILE_NEXT.values(), ids=HOSTILE_NEXT.keys())
def test_the_language_switch_never_follows_a_hostile_next(client, target):
    from urllib.parse import unquote

    token = token_for(client)
    resp = client.post(
        "/admin/language", data={"csrf_token": token, "lang": "id", "next": unquote(target)}
    )
    assert resp.status_code == 302
    assert resp.location == "/admin/"


def test_login_still_follows_a_dashboard_next(client, admin_user):
    token = token_for(client)
    resp = client.post(
        "/admin/login?next=" + quote("/admin/transactions?q=INV&page=2"),
        data={"csrf_token": token, "username": "root", "password": PASSWORD},
    )
    assert resp.status_code == 302
    assert resp.location == "/admin/transactions?q=INV&page=2"


# -- 4. the dashboard's searches and filters ------------------------------------------------


@pytest.fixture
def shop_order(admin_client, app_key, midtrans) -> None:
    snap_ok(midtrans)
    resp = admin_client.post(
        "/charge", json={"order_id": "INV-2025-001", "amount": 5000}, headers=app_key
    )
    assert resp.status_code == 201


SEARCHES = [
    "/admin/transactions?q={}",
    "/admin/transactions.csv?q={}",
    "/admin/notifications?q={}",
    "/admin/notifications?outcome={}",
    "/admin/audit?q={}",
    "/admin/audit?action={}",
    "/admin/apps/1/callbacks?q={}",
    "/admin/apps/1/callbacks?state={}",
]


@pytest.mark.parametrize("page", SEARCHES)
def test_dashboard_searches_take_control_characters(admin_client, shop_order, page):
    for term in ["%00", "INV%00", "%0d%0a", "%01%7f"]:
        resp = admin_client.get(page.format(term))
        resp.get_data()  # the CSV streams: its query runs while it is read
        assert resp.status_code == 200, term


def test_a_search_for_an_order_id_with_nul_finds_the_order(admin_client, shop_order):
    resp = admin_client.get("/admin/transactions?q=INV-2025%00-001")
    assert resp.status_code == 200
    assert "INV-2025-001" in resp.get_data(as_text=True)


TX_FILTERS = {
    "superscript digit app": "app=%C2%B2",
    "huge app id": "app=99999999999999999999999",
    "first day there is": "date_from=0001-01-01",
    "last day there is": "date_to=9999-12-31",
    "all at once": "app=%C2%B2&date_from=0001-01-01&date_to=9999-12-31&q=INV%00",
}


@pytest.mark.parametrize("path", ["/admin/transactions", "/admin/transactions.csv"])
def test_transaction_filters_out_of_range_are_ignored(admin_client, shop_order, path):
    for query in TX_FILTERS.values():
        resp = admin_client.get(f"{path}?{query}")
        assert resp.status_code == 200, query
        assert "INV-2025-001" in resp.get_data(as_text=True), query


def test_a_row_id_beyond_the_database_is_an_html_404(admin_client):
    for path in [
        "/admin/transactions/99999999999999999999999",
        "/admin/transactions/2147483648",
        "/admin/apps/99999999999999999999999",
        "/admin/apps/1/callbacks/99999999999999999999999",
    ]:
        resp = admin_client.get(path)
        assert resp.status_code == 404, path
        assert resp.mimetype == "text/html", path


def test_a_login_name_with_nul_is_a_wrong_login(client, admin_user):
    token = token_for(client)
    resp = client.post(
        "/admin/login", data={"csrf_token": token, "username": "ro\x00ot", "password": PASSWORD}
    )
    assert resp.status_code == 401
    assert "Wrong username or password." in resp.get_data(as_text=True)
    with client.application.app_context():
        entry = db.session.query(AuditEntry).filter_by(action="login_failed").one()
        assert entry.username == "ro\\u0000ot"


def test_an_app_name_with_a_control_character_is_refused(admin_client):
    for name in ["Shop\x00", "Shop\r\nX"]:
        token = token_for(admin_client, "/admin/apps/new")
        resp = admin_client.post(
            "/admin/apps/new", data={"csrf_token": token, "code": "shop", "name": name}
        )
        assert resp.status_code == 400, repr(name)
        assert "control characters" in resp.get_data(as_text=True)
    with admin_client.application.app_context():
        assert db.session.query(App).filter_by(code="shop").count() == 0


def test_a_refund_reason_with_nul_is_refunded_and_audited(admin_client, shop_order, midtrans):
    """Midtrans has given the money back by the time the audit entry is written: that entry
    must not fail (PostgreSQL refuses NUL) and turn a done refund into a 500."""
    import re

    from admin.dashboard import settled
    from support import status_url

    with admin_client.application.app_context():
        txn = db.session.query(Transaction).one()
        txn.status = "settlement"
        db.session.commit()
        txn_id = txn.id
    page = admin_client.get(f"/admin/transactions/{txn_id}").get_data(as_text=True)
    key = re.search(r'name="refund_key" type="hidden" value="([^"]+)"', page).group(1)
    refunds = midtrans.add(
        responses.POST, f"{API_BASE}/v2/INV-2025-001/refund", json={"status_code": "200"}
    )
    midtrans.add(
        responses.GET, status_url("INV-2025-001"), json=settled("INV-2025-001", 5000, "refund")
    )
    form = {"refund_key": key, "amount": "5000", "reason": "asked\x00", "confirm": "y"}

    resp = admin_client.post(
        f"/admin/transactions/{txn_id}/refund",
        data={"csrf_token": token_for(admin_client, f"/admin/transactions/{txn_id}"), **form},
    )

    assert resp.status_code == 302
    assert refunds.call_count == 1
    with admin_client.application.app_context():
        entry = db.session.query(AuditEntry).filter_by(action="transaction_refund").one()
        assert entry.detail.endswith("asked\\u0000")


def test_recovering_callbacks_from_the_first_day_there_is_is_refused(admin_client, app_key):
    token = token_for(admin_client, "/admin/apps/1/callbacks")
    resp = admin_client.post(
        "/admin/apps/1/callbacks/recover",
        data={"csrf_token": token, "since": "0001-01-01T00:00"},
        follow_redirects=True,
    )
    assert resp.status_code == 200
    assert "Give the date and time (WIB)" in resp.get_data(as_text=True)


# -- 2. malformed chunked bodies under gunicorn ---------------------------------------------


@pytest.fixture(scope="module")
def gunicorn_gateway(tmp_path_factory):
    """The gateway under real gunicorn (the repository's gunicorn.conf.py), no simulator."""
    from e2e.servers import (
        create_client_app,
        database_url,
        free_port,
        gateway_env,
        prepare_database,
        start_gateway,
    )

    workdir = tmp_path_factory.mktemp("gunicorn")
    port = free_port()
    env = gateway_env(
        database_url=database_url(workdir),
        port=port,
        simulator_url=f"http://127.0.0.1:{free_port()}",
        GUNICORN_WORKERS="1",
        GUNICORN_THREADS="2",
    )
    prepare_database(env, workdir)
    headers = create_client_app(env, workdir, "shop").headers
    process = start_gateway(env, workdir, log_dir=workdir)
    yield port, headers, process
    process.stop()


def send_raw(port: int, request: bytes) -> tuple[int, dict, bytes]:
    """Send bytes as they are; the status, headers and body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


BAD_CHUNKS = {
    "NUL in a chunk extension": b"5;\x00bad\r\nhello\r\n0\r\n\r\n",
    "space in a chunk extension": b"5;a=b c\r\nhello\r\n0\r\n\r\n",
    "chunk size not hex": b"zz\r\nhello\r\n0\r\n\r\n",
    "negative chunk size": b"-5\r\nhello\r\n0\r\n\r\n",
    "chunk without its CRLF": b"5\r\nhelloXX0\r\n\r\n",
}


@pytest.mark.parametrize("path", ["/charge", "/notification"])
@pytest.mark.parametrize("chunks", BAD_CHUNKS.values(), ids=BAD_CHUNKS.keys())
def test_a_malformed_chunked_body_is_a_400_under_gunicorn(gunicorn_gateway, path, chunks):
    port, app_headers, process = gunicorn_gateway
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in app_headers.items())
    head += "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"

    status, headers, body = send_raw(port, head.encode() + chunks)

    assert status == 400, process.log()[-3000:]
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body)["error"]["code"] == "invalid_request"
    assert "Traceback" not in process.log()


def test_a_malformed_chunked_form_is_an_html_400_in_the_dashboard(gunicorn_gateway):
    port, _, process = gunicorn_gateway
    head = b"POST /admin/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    head += b"Content-Type: application/x-www-form-urlencoded\r\n"
    head += b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"

    status, headers, body = send_raw(port, head + BAD_CHUNKS["NUL in a chunk extension"])

    assert status == 400, process.log()[-3000:]
    assert headers["Content-Type"].startswith("text/html")
    assert b"chunked" in body


def test_a_good_chunked_body_still_works_under_gunicorn(gunicorn_gateway):
    """The same framing, well formed, reaches the view (a notification refused as forged)."""
    port, _, process = gunicorn_gateway
    payload = json.dumps({**SETTLEMENT, "signature_key": "0" * 128}).encode()
    head = b"POST /notification HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    head += b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    chunked = f"{len(payload):x};ext=1\r\n".encode() + payload + b"\r\n0\r\n\r\n"

    status, _, body = send_raw(port, head + chunked)

    assert status == 403, process.log()[-3000:]
    assert json.loads(body)["error"]["code"] == "invalid_signature"
