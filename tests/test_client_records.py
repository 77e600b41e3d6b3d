"""GET /transactions, GET /transactions/<order_id> and GET /config: a client app reads its own
records (no Midtrans call), page by page, newest change first; never another app's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import responses
from support import API_BASE, charge, status_answer, status_url

from app.extensions import db
from app.models import Transaction

VA = [{"bank": "bca", "va_number": "12345678901"}]


def _settle(client, headers, midtrans, order_id, midtrans_order_id=None):
    body = status_answer(midtrans_order_id or order_id, amount=10000, va_numbers=VA)
    midtrans.add(responses.GET, status_url(midtrans_order_id or order_id), json=body)
    assert client.get(f"/status/{order_id}", headers=headers).json["outcome"] == "paid"


def _set_updated(client, order_id, moment):
    with client.application.app_context():
        txn = db.session.query(Transaction).filter_by(order_id=order_id).one()
        db.session.execute(
            db.update(Transaction).where(Transaction.id == txn.id).values(updated_at=moment)
        )
        db.session.commit()


@pytest.fixture
def five_orders(client, app_key, midtrans):
    """INV-1..INV-5, changed one minute apart (INV-5 last), INV-2 and INV-4 paid."""
    base = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
    for n in range(1, 6):
        charge(client, app_key, midtrans, f"INV-{n}", 10000)
    for n in (2, 4):
        _settle(client, app_key, midtrans, f"INV-{n}")
    for n in range(1, 6):
        _set_updated(client, f"INV-{n}", base + timedelta(minutes=n))
    return base


def _walk(client, headers, query=""):
    seen, cursor, pages = [], None, 0
    while True:
        suffix = f"&cursor={cursor}" if cursor else ""
        answer = client.get(f"/transactions?{query}{suffix}", headers=headers)
        assert answer.status_code == 200, answer.json
        seen += [row["order_id"] for row in answer.json["data"]]
        cursor, pages = answer.json["next_cursor"], pages + 1
        if cursor is None:
            return seen, pages
        assert pages < 20


def test_the_list_is_newest_change_first_and_pages_by_cursor(client, app_key, five_orders):
    seen, pages = _walk(client, app_key, "limit=2")
    assert seen == ["INV-5", "INV-4", "INV-3", "INV-2", "INV-1"]
    assert pages == 3

    first = client.get("/transactions?limit=2", headers=app_key).json
    row = first["data"][1]
    assert row["order_id"] == "INV-4" and row["outcome"] == "paid" and row["paid"] is True
    assert row["amount"] == 10000 and row["live"] is False
    assert row["updated_at"].startswith("2026-11-20T03:04:00")
    assert "signature_key" not in row and "merchant_id" not in row


def test_filters_by_outcome_status_and_time(client, app_key, five_orders):
    assert _walk(client, app_key, "outcome=paid")[0] == ["INV-4", "INV-2"]
    assert _walk(client, app_key, "outcome=pending")[0] == ["INV-5", "INV-3", "INV-1"]
    assert _walk(client, app_key, "status=settlement&limit=1")[0] == ["INV-4", "INV-2"]
    wib = timezone(timedelta(hours=7))
    since = (five_orders + timedelta(minutes=3)).astimezone(wib).isoformat()
    assert _walk(client, app_key, f"updated_since={since.replace('+', '%2B')}")[0] == [
        "INV-5",
        "INV-4",
        "INV-3",
    ]
    assert _walk(client, app_key, "updated_since=2026-11-20T03:04:30Z")[0] == ["INV-5"]


def test_an_order_changed_while_paging_is_not_shown_twice(client, app_key, five_orders):
    first = client.get("/transactions?limit=2", headers=app_key).json
    assert [r["order_id"] for r in first["data"]] == ["INV-5", "INV-4"]
    _set_updated(client, "INV-5", five_orders + timedelta(hours=1))  # moves to the front
    rest = client.get(f"/transactions?cursor={first['next_cursor']}", headers=app_key).json
    assert [r["order_id"] for r in rest["data"]] == ["INV-3", "INV-2", "INV-1"]


def test_the_list_and_the_record_never_show_another_apps_orders(
    client, app_key, shop_key, midtrans
):
    charge(client, app_key, midtrans, "INV-1", 10000)
    charge(client, shop_key, midtrans, "SHOP-1", 10000)
    assert [r["order_id"] for r in client.get("/transactions", headers=shop_key).json["data"]] == [
        "SHOP-1"
    ]
    assert client.get("/transactions/INV-1", headers=shop_key).status_code == 404
    assert client.get("/transactions/SHOP-1", headers=app_key).status_code == 404
    # Another app's cursor leads nowhere either: it only positions within the caller's rows.
    mine = client.get("/transactions?limit=1", headers=app_key).json
    assert client.get("/transactions?limit=1", headers=app_key).json["next_cursor"] is None
    assert mine["data"][0]["order_id"] == "INV-1"


def test_one_record_carries_its_timeline(client, app_key, midtrans):
    charge(client, app_key, midtrans, "INV-9", 10000)
    _settle(client, app_key, midtrans, "INV-9")
    calls = len(midtrans.calls)
    record = client.get("/transactions/INV-9", headers=app_key)
    assert record.status_code == 200
    assert len(midtrans.calls) == calls  # from the records: Midtrans is not asked
    body = record.json
    assert body["order_id"] == "INV-9" and body["outcome"] == "paid"
    assert body["va_numbers"] == VA
    steps = [(e["from_status"], e["to_status"], e["source"]) for e in body["events"]]
    assert steps[-1] == ("pending", "settlement", "status")
    assert all(e["at"].endswith("+00:00") for e in body["events"])


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("outcome=rich", "outcome"),
        ("status=paid", "status"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=ten", "limit"),
        ("limit=%D9%A3", "limit"),  # an Arabic-Indic three: a digit to Python, not to us
        ("updated_since=yesterday", "updated_since"),
        ("updated_since=2026-11-20T03:00:00", "updated_since"),  # no zone: ambiguous
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=12.x", "cursor"),
        ("cursor=", "cursor"),
        ("outcome=", "outcome"),
        ("updated_since=", "updated_since"),
        ("updated_since=2026-13-01T00:00:00Z", "updated_since"),
        ("updated_since=20261120T030000Z", "updated_since"),
    ],
)
def test_a_bad_query_is_400_naming_the_parameter(client, app_key, query, field):
    answer = client.get(f"/transactions?{query}", headers=app_key)
    assert answer.status_code == 400
    assert answer.json["error"]["code"] == "invalid_request"
    assert answer.json["error"]["details"]["field"] == field


def test_the_records_need_the_apps_key(client, app_key):
    for path in ("/transactions", "/transactions/INV-1", "/config"):
        assert client.get(path).status_code == 401
        wrong = {**app_key, "X-Api-Key": "nope"}
        assert client.get(path, headers=wrong).status_code == 401


def test_an_order_id_no_charge_could_have_made_is_404(client, app_key):
    assert client.get("/transactions/a%00b", headers=app_key).status_code == 404
    assert client.get("/transactions/" + "x" * 51, headers=app_key).status_code == 404


@pytest.mark.parametrize(
    ("production", "snap_js", "new3ds_js"),
    [
        (
            "false",
            "https://app.sandbox.midtrans.com/snap/snap.js",
            "https://api.sandbox.midtrans.com/v2/assets/js/midtrans-new-3ds.min.js",
        ),
        (
            "true",
            "https://app.midtrans.com/snap/snap.js",
            "https://api.midtrans.com/v2/assets/js/midtrans-new-3ds.min.js",
        ),
    ],
)
def test_config_gives_the_public_client_settings(env, build_app, production, snap_js, new3ds_js):
    del env["MIDTRANS_API_BASE_URL"], env["MIDTRANS_SNAP_BASE_URL"]
    env.update(MIDTRANS_CLIENT_KEY="SB-Mid-client-abc", MIDTRANS_IS_PRODUCTION=production)
    if production == "true":
        env.update(MIDTRANS_SERVER_KEY="Mid-server-live", MIDTRANS_CLIENT_KEY="Mid-client-abc")
    flask_app = build_app(env)
    client = flask_app.test_client()
    runner = flask_app.test_cli_runner()
    key = runner.invoke(args=["apps", "create", "pos", "--name", "POS"]).output.split()[-1]
    headers = {"X-App-Code": "pos", "X-Api-Key": key}
    answer = client.get("/config", headers=headers)
    assert answer.status_code == 200
    assert answer.json == {
        "client_key": env["MIDTRANS_CLIENT_KEY"],
        "is_production": production == "true",
        "snap_js_url": snap_js,
        "new3ds_js_url": new3ds_js,
    }
    assert env["MIDTRANS_SERVER_KEY"] not in answer.get_data(as_text=True)


def test_config_follows_the_midtrans_address_the_gateway_uses(client, app_key):
    body = client.get("/config", headers=app_key).json
    assert body["new3ds_js_url"] == f"{API_BASE}/v2/assets/js/midtrans-new-3ds.min.js"
    assert body["snap_js_url"].endswith("/snap/snap.js")


def test_any_well_formed_cursor_or_time_is_a_position_not_an_error(client, app_key, five_orders):
    assert _walk(client, app_key, "cursor=0.0")[0] == []  # before every order
    assert len(_walk(client, app_key, "cursor=9999999999999999.9999999999")[0]) == 5
    assert len(_walk(client, app_key, "updated_since=0000-01-01T00:00:00Z")[0]) == 5
    assert _walk(client, app_key, "updated_since=9999-12-31T23:59:60-23:59")[0] == []
