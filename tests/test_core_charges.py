"""POST /charge with `payment_type` (SPEC "Core API charges"): what reaches Midtrans's Core
`/v2/charge` for each type, the payment details at once, strict validation, errors mapped like
Snap's, replay, `GET /status` serving the details while pending, renewal."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import responses
import support
from support import API_BASE, SNAP_URL, basic_auth, cli_for, make_app, status_url

from app.extensions import db
from app.models import CallbackEvent, Transaction
from app.payments import reconcile_due_orders
from app.services import gateway

CHARGE_URL = f"{API_BASE}/v2/charge"
ORDER = "POS-1"


def jakarta(delta: timedelta) -> str:
    """A time `delta` from now as Midtrans writes it (Jakarta, UTC+7)."""
    return (datetime.now(UTC) + timedelta(hours=7) + delta).strftime("%Y-%m-%d %H:%M:%S")


DAY_AHEAD = jakarta(timedelta(days=1))
QUARTER_AHEAD = jakarta(timedelta(minutes=15))


def charge_answer(order_id: str, payment_type: str, status: str = "pending", **extra) -> dict:
    """Midtrans's answer to a Core charge (the shape of its API reference and seed 004)."""
    return {
        "status_code": {"pending": "201", "deny": "202"}.get(status, "200"),
        "status_message": f"{payment_type} transaction is created",
        "transaction_id": f"tx-{order_id}",
        "order_id": order_id,
        "merchant_id": "G123",
        "gross_amount": "25000.00",
        "currency": "IDR",
        "payment_type": payment_type,
        "transaction_time": "2026-11-26 16:00:00",
        "transaction_status": status,
        "fraud_status": "accept",
        **extra,
    }


QR_ACTIONS = [
    {"name": "generate-qr-code", "method": "GET", "url": "https://api.mt/v2/qris/tx/qr-code"},
]
GOPAY_ACTIONS = [
    {"name": "generate-qr-code", "method": "GET", "url": "https://api.mt/v2/gopay/tx/qr-code"},
    {"name": "deeplink-redirect", "method": "GET", "url": "https://simulator.mt/gopay/ui?tref=1"},
    {"name": "get-status", "method": "GET", "url": "https://api.mt/v2/tx/status"},
    {"name": "cancel", "method": "POST", "url": "https://api.mt/v2/tx/cancel"},
]

# (request fields, what Midtrans must receive beside the order, its answer's extra fields,
# what the gateway's 201 answer must carry)
CASES = {
    "bca": (
        {"payment_type": "bank_transfer", "bank": "bca", "va_number": "1234567"},
        {"payment_type": "bank_transfer", "bank_transfer": {"bank": "bca", "va_number": "1234567"}},
        {
            "va_numbers": [{"bank": "bca", "va_number": "123451234567"}],
            "expiry_time": DAY_AHEAD,
        },
        {"va_numbers": [{"bank": "bca", "va_number": "123451234567"}]},
    ),
    "bni": (
        {"payment_type": "bank_transfer", "bank": "bni", "va_number": "12345678"},
        {
            "payment_type": "bank_transfer",
            "bank_transfer": {"bank": "bni", "va_number": "12345678"},
        },
        {
            "va_numbers": [{"bank": "bni", "va_number": "9881234512345678"}],
            "expiry_time": DAY_AHEAD,
        },
        {"va_numbers": [{"bank": "bni", "va_number": "9881234512345678"}]},
    ),
    "bri": (
        {"payment_type": "bank_transfer", "bank": "bri"},
        {"payment_type": "bank_transfer", "bank_transfer": {"bank": "bri"}},
        {"va_numbers": [{"bank": "bri", "va_number": "885996891748049"}], "expiry_time": DAY_AHEAD},
        {"va_numbers": [{"bank": "bri", "va_number": "885996891748049"}]},
    ),
    "cimb": (
        {"payment_type": "bank_transfer", "bank": "cimb", "va_number": "123456789012"},
        {
            "payment_type": "bank_transfer",
            "bank_transfer": {"bank": "cimb", "va_number": "123456789012"},
        },
        {
            "va_numbers": [{"bank": "cimb", "va_number": "8277123456789012"}],
            "expiry_time": DAY_AHEAD,
        },
        {"va_numbers": [{"bank": "cimb", "va_number": "8277123456789012"}]},
    ),
    "permata": (
        {"payment_type": "bank_transfer", "bank": "permata"},
        {"payment_type": "bank_transfer", "bank_transfer": {"bank": "permata"}},
        {"permata_va_number": "877812345678", "expiry_time": DAY_AHEAD},
        {"permata_va_number": "877812345678"},
    ),
    "echannel": (
        {"payment_type": "echannel", "bill_info1": "Invoice:", "bill_info2": "Hosting May"},
        {
            "payment_type": "echannel",
            "echannel": {"bill_info1": "Invoice:", "bill_info2": "Hosting May"},
        },
        {"bill_key": "990000000260", "biller_code": "70012", "expiry_time": DAY_AHEAD},
        {"bill_key": "990000000260", "biller_code": "70012"},
    ),
    "echannel default labels": (
        {"payment_type": "echannel"},
        {
            "payment_type": "echannel",
            "echannel": {"bill_info1": "Payment:", "bill_info2": "Online purchase"},
        },
        {"bill_key": "990000000261", "biller_code": "70012"},
        {"bill_key": "990000000261", "biller_code": "70012"},
    ),
    # SPEC's GoPay field: a top-level callback_url is the deeplink return.
    "gopay as SPEC": (
        {"payment_type": "gopay", "callback_url": "posapp://paid"},
        {
            "payment_type": "gopay",
            "gopay": {"enable_callback": True, "callback_url": "posapp://paid"},
        },
        {"actions": GOPAY_ACTIONS, "expiry_time": QUARTER_AHEAD},
        {
            "actions": GOPAY_ACTIONS,
            "qr_url": GOPAY_ACTIONS[0]["url"],
        },
    ),
    "gopay": (
        {"payment_type": "gopay", "gopay": {"callback_url": "posapp://paid"}},
        {
            "payment_type": "gopay",
            "gopay": {"enable_callback": True, "callback_url": "posapp://paid"},
        },
        {"actions": GOPAY_ACTIONS, "expiry_time": QUARTER_AHEAD},
        {
            "actions": GOPAY_ACTIONS,
            "qr_url": GOPAY_ACTIONS[0]["url"],
            "deeplink_url": GOPAY_ACTIONS[1]["url"],
        },
    ),
    "qris": (
        {"payment_type": "qris", "acquirer": "gopay"},
        {"payment_type": "qris", "qris": {"acquirer": "gopay"}},
        {"qr_string": "00020101021226...6304ABCD", "acquirer": "gopay", "actions": QR_ACTIONS},
        {
            "qr_string": "00020101021226...6304ABCD",
            "acquirer": "gopay",
            "qr_url": QR_ACTIONS[0]["url"],
        },
    ),
    "qris without acquirer": (
        {"payment_type": "qris"},
        {"payment_type": "qris"},
        {"qr_string": "00020101021226...6304EF01", "acquirer": "gopay", "actions": QR_ACTIONS},
        {"qr_string": "00020101021226...6304EF01", "acquirer": "gopay"},
    ),
    "card 3ds": (
        {"payment_type": "credit_card", "token_id": "481111-1114-abc", "authentication": True},
        {
            "payment_type": "credit_card",
            "credit_card": {"token_id": "481111-1114-abc", "authentication": True},
        },
        {
            "redirect_url": "https://api.mt/v2/token/rba/redirect/481111-1114-tx",
            "masked_card": "481111-1114",
        },
        {"redirect_url": "https://api.mt/v2/token/rba/redirect/481111-1114-tx"},
    ),
    # Without 3DS Midtrans answers the card's result at once: captured, the fraud check's word.
    "card without 3ds": (
        {"payment_type": "credit_card", "token_id": "481111-1114-def"},
        {"payment_type": "credit_card", "credit_card": {"token_id": "481111-1114-def"}},
        {
            "status_code": "200",
            "transaction_status": "capture",
            "masked_card": "481111-1114",
            "bank": "bni",
            "approval_code": "1700000001",
        },
        {"transaction_status": "capture", "fraud_status": "accept", "outcome": "paid"},
    ),
}
# The cases whose charge Midtrans answers `pending` (the payer still has to pay).
PENDING_CASES = [c for c in CASES if CASES[c][2].get("transaction_status", "pending") == "pending"]


@pytest.fixture
def pos(cli) -> dict[str, str]:
    return make_app(cli, "pos")


def core_ok(midtrans, answer: dict):
    return midtrans.add(responses.POST, CHARGE_URL, json=answer, status=200)


def core_echoes(midtrans, payment_type: str, status: str = "pending", **extra):
    """Midtrans answers every charge about the order id it was sent."""

    def answer(request):
        order_id = json.loads(request.body)["transaction_details"]["order_id"]
        return 200, {}, json.dumps(charge_answer(order_id, payment_type, status, **extra))

    midtrans.remove(responses.POST, CHARGE_URL)
    return midtrans.add_callback(responses.POST, CHARGE_URL, callback=answer)


def post(client, headers, **fields):
    """POST /charge (ORDER for 25,000 unless `fields` say otherwise; Midtrans set up by the
    test); the answer."""
    order_id, amount = fields.pop("order_id", ORDER), fields.pop("amount", 25000)
    return support.charge(client, headers, None, order_id, amount, expect=None, **fields)


def sent(call) -> dict:
    return json.loads(call.request.body)


def row(client) -> Transaction:
    with client.application.app_context():
        txn = db.session.query(Transaction).filter_by(order_id=ORDER).one()
        db.session.expunge(txn)
        return txn


@pytest.mark.parametrize("case", list(CASES))
def test_each_payment_type_reaches_core_charge_and_answers_its_details(client, pos, midtrans, case):
    fields, to_midtrans, extra, shown = CASES[case]
    charged = core_ok(midtrans, charge_answer("pos-POS-1", to_midtrans["payment_type"], **extra))

    resp = post(
        client,
        pos,
        **fields,
        custom_field1="till-4",
        metadata={"cashier": "ani"},
        item_details=[{"id": "K1", "price": 25000, "quantity": 1, "name": "Kopi"}],
    )

    assert resp.status_code == 201, resp.get_data(as_text=True)
    (call,) = charged.calls
    assert call.request.headers["Authorization"] == basic_auth()
    assert "X-Override-Notification" not in call.request.headers
    assert sent(call) == {
        **to_midtrans,
        "transaction_details": {"order_id": "pos-POS-1", "gross_amount": 25000},
        "item_details": [{"id": "K1", "price": 25000, "quantity": 1, "name": "Kopi"}],
        "custom_field1": "till-4",
        "metadata": {"cashier": "ani"},
    }
    body = resp.json
    assert {k: body[k] for k in shown} == shown
    assert body["order_id"] == ORDER and body["id"] == "tx-pos-POS-1"
    assert body["payment_type"] == to_midtrans["payment_type"]
    expected = (shown.get("transaction_status", "pending"), shown.get("outcome", "pending"))
    assert (body["transaction_status"], body["outcome"]) == expected
    assert datetime.fromisoformat(body["expires_at"]) > datetime.now(UTC)
    assert "token" not in body
    assert [c for c in midtrans.calls if c.request.url == SNAP_URL] == []


def queued_callbacks(client) -> list[dict]:
    """The `data` of every callback queued for the order's app, oldest first."""
    with client.application.app_context():
        events = db.session.query(CallbackEvent).order_by(CallbackEvent.id).all()
        return [json.loads(event.payload)["data"] for event in events]


@pytest.mark.parametrize("case", PENDING_CASES)
def test_midtrans_fraud_status_on_a_pending_charge_is_shown_unchanged(
    client, cli, midtrans, loopback_callbacks, case
):
    """Midtrans's pending Core answer says `fraud_status: accept`: the 201 answer, the
    pending callback and `GET /status` say so too (README: Midtrans's word, unchanged), and
    the status call that repeats it is no change (no second callback)."""
    headers = make_app(cli, "pos", "--callback-url", "http://127.0.0.1:9/hook")
    fields, to_midtrans, extra, _ = CASES[case]
    kind = to_midtrans["payment_type"]
    core_ok(midtrans, charge_answer("pos-POS-1", kind, **extra))

    created = post(client, headers, **fields)
    midtrans.add(responses.GET, status_url("pos-POS-1"), json=charge_answer("pos-POS-1", kind))
    status = client.get(f"/status/{ORDER}", headers=headers).json

    for view in (created.json, status):
        assert (view["transaction_status"], view["fraud_status"]) == ("pending", "accept")
        assert view["outcome"] == "pending"
    (pending,) = queued_callbacks(client)
    assert (pending["transaction_status"], pending["fraud_status"]) == ("pending", "accept")
    assert row(client).fraud_status == "accept"


def test_expires_at_is_midtrans_expiry_time_in_utc(client, pos, midtrans):
    core_ok(
        midtrans,
        charge_answer("pos-POS-1", "qris", qr_string="x", expiry_time="2026-11-26 16:15:00"),
    )
    resp = post(client, pos, payment_type="qris")
    assert resp.json["expires_at"] == "2026-11-26T09:15:00+00:00"


def test_custom_expiry_is_passed_on_and_counts_when_midtrans_names_no_time(client, pos, midtrans):
    charged = core_ok(midtrans, charge_answer("pos-POS-1", "qris", qr_string="x"))
    resp = post(
        client, pos, payment_type="qris", custom_expiry={"expiry_duration": 5, "unit": "minute"}
    )
    assert sent(charged.calls[0])["custom_expiry"] == {"expiry_duration": 5, "unit": "minute"}
    left = datetime.fromisoformat(resp.json["expires_at"]) - datetime.now(UTC)
    assert timedelta(minutes=4) < left <= timedelta(minutes=5)


@pytest.mark.parametrize("case", list(CASES))
def test_notification_url_is_sent_on_core_charges_too(env, build_app, midtrans, case):
    env["MIDTRANS_NOTIFICATION_URL"] = "https://pay.example.com/notification"
    flask_app = build_app(env)
    headers = make_app(cli_for(flask_app), "pos")
    fields, to_midtrans, extra, _ = CASES[case]
    charged = core_ok(midtrans, charge_answer("pos-POS-1", to_midtrans["payment_type"], **extra))
    resp = post(flask_app.test_client(), headers, **fields)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    (call,) = charged.calls
    assert call.request.headers["X-Override-Notification"] == (
        "https://pay.example.com/notification"
    )
    assert sent(call)["payment_type"] == to_midtrans["payment_type"]


def test_a_card_paid_at_once_answers_its_result(client, pos, midtrans):
    core_ok(
        midtrans,
        charge_answer("pos-POS-1", "credit_card", "capture", masked_card="481111-1114", bank="bni"),
    )
    resp = post(client, pos, payment_type="credit_card", token_id="tok")
    assert resp.status_code == 201
    assert (resp.json["transaction_status"], resp.json["outcome"]) == ("capture", "paid")
    assert "redirect_url" not in resp.json
    assert row(client).status == "capture"


def test_a_declined_card_is_failed_and_a_new_token_renews_the_order(client, pos, midtrans):
    core_ok(
        midtrans, charge_answer("pos-POS-1", "credit_card", "deny", status_message="Deny by Bank")
    )
    declined = post(client, pos, payment_type="credit_card", token_id="tok-1")
    assert declined.status_code == 201 and declined.json["outcome"] == "failed"
    assert declined.json["status_message"] == "Deny by Bank"

    again = core_echoes(midtrans, "credit_card", "capture")
    retried = post(client, pos, payment_type="credit_card", token_id="tok-2")

    assert retried.status_code == 201 and retried.json["outcome"] == "paid"
    assert sent(again.calls[-1])["transaction_details"]["order_id"].startswith("pos-POS-1~")


def test_an_identical_repeat_replays_without_midtrans(client, pos, midtrans):
    fields, _, extra, shown = CASES["bca"]
    charged = core_ok(midtrans, charge_answer("pos-POS-1", "bank_transfer", **extra))
    first = post(client, pos, **fields)
    again = post(client, pos, **fields)
    other = post(client, pos, **{**fields, "bank": "bni"})

    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json == first.json
    assert other.status_code == 409
    assert len(charged.calls) == 1


def test_status_keeps_serving_the_details_while_pending(client, pos, midtrans):
    fields, _, extra, shown = CASES["qris"]
    core_ok(midtrans, charge_answer("pos-POS-1", "qris", **extra))
    post(client, pos, **fields)
    # The status API does not repeat `actions` (nor, here, the QR string).
    midtrans.add(responses.GET, status_url("pos-POS-1"), json=charge_answer("pos-POS-1", "qris"))

    pending = client.get(f"/status/{ORDER}", headers=pos).json
    record = client.get(f"/transactions/{ORDER}", headers=pos).json

    for view in (pending, record):
        assert {k: view[k] for k in shown} == shown
        assert view["actions"] == QR_ACTIONS
    midtrans.replace(
        responses.GET,
        status_url("pos-POS-1"),
        json=charge_answer("pos-POS-1", "qris", "settlement"),
    )
    paid = client.get(f"/status/{ORDER}", headers=pos).json
    assert paid["outcome"] == "paid" and "qr_url" not in paid and "actions" not in paid


def test_a_dead_pending_core_payment_is_cancelled_before_the_renewal(client, pos, midtrans):
    fields, _, extra, _ = CASES["qris"]
    core_ok(midtrans, charge_answer("pos-POS-1", "qris", **extra))
    post(client, pos, **fields)
    with client.application.app_context():
        txn = db.session.query(Transaction).filter_by(order_id=ORDER).one()
        txn.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        db.session.commit()
    midtrans.add(responses.GET, status_url("pos-POS-1"), json=charge_answer("pos-POS-1", "qris"))
    cancel = midtrans.add(
        responses.POST,
        f"{API_BASE}/v2/pos-POS-1/cancel",
        json=charge_answer("pos-POS-1", "qris", "cancel"),
    )
    core_echoes(midtrans, "qris", qr_string="second")

    resp = post(client, pos, **fields)

    assert resp.status_code == 201 and resp.json["qr_string"] == "second"
    assert cancel.call_count == 1
    urls = [c.request.url for c in midtrans.calls]
    assert urls.index(f"{API_BASE}/v2/pos-POS-1/cancel") < len(urls) - 1
    assert urls[-1] == CHARGE_URL
    assert sent(midtrans.calls[-1])["transaction_details"]["order_id"].startswith("pos-POS-1~")
    assert row(client).midtrans_order_ids[0] == "pos-POS-1"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"payment_type": "shopeepay"}, "payment_type"),
        ({"payment_type": "cstore"}, "payment_type"),
        ({"payment_type": None}, "payment_type"),
        ({"payment_type": ["qris"]}, "payment_type"),
        ({"payment_type": "bank_transfer"}, "bank"),
        ({"payment_type": "bank_transfer", "bank": "mandiri"}, "bank"),
        ({"payment_type": "bank_transfer", "bank": "bca", "va_number": 123}, "va_number"),
        ({"payment_type": "bank_transfer", "bank": "bca", "va_number": "12a"}, "va_number"),
        ({"payment_type": "bank_transfer", "bank": "bca", "va_number": "1" * 19}, "va_number"),
        ({"payment_type": "echannel", "bill_info1": "x" * 11}, "bill_info1"),
        ({"payment_type": "echannel", "bill_info2": "x" * 31}, "bill_info2"),
        ({"payment_type": "echannel", "bill_info1": 5}, "bill_info1"),
        ({"payment_type": "qris", "acquirer": "ovo"}, "acquirer"),
        ({"payment_type": "gopay", "gopay": {"callback_url": 5}}, "gopay.callback_url"),
        ({"payment_type": "gopay", "gopay": {"enable_callback": "yes"}}, "gopay.enable_callback"),
        ({"payment_type": "gopay", "gopay": {"account_id": "x"}}, "gopay.account_id"),
        ({"payment_type": "qris", "gopay": {"callback_url": "a://b"}}, "gopay"),
        ({"payment_type": "credit_card"}, "token_id"),
        ({"payment_type": "credit_card", "token_id": ""}, "token_id"),
        (
            {"payment_type": "credit_card", "token_id": "t", "authentication": "true"},
            "authentication",
        ),
        (
            {"payment_type": "credit_card", "token_id": "t", "credit_card": {"type": "x"}},
            "credit_card.type",
        ),
        ({"payment_type": "qris", "credit_card": {"secure": True}}, "credit_card"),
        (
            {"payment_type": "qris", "custom_expiry": {"expiry_duration": 0, "unit": "minute"}},
            "custom_expiry.expiry_duration",
        ),
        (
            {"payment_type": "qris", "custom_expiry": {"expiry_duration": 5, "unit": "week"}},
            "custom_expiry.unit",
        ),
        ({"payment_type": "qris", "custom_expiry": {"expiry_duration": 5}}, "custom_expiry.unit"),
        ({"payment_type": "qris", "custom_expiry": 5}, "custom_expiry"),
        ({"payment_type": "qris", "expiry": {"duration": 5, "unit": "minute"}}, "expiry"),
        ({"payment_type": "qris", "enabled_payments": ["gopay"]}, "enabled_payments"),
        ({"payment_type": "bank_transfer", "bank": "bca", "bca_va": {"va_number": "1"}}, "bca_va"),
        ({"payment_type": "qris", "amount": "25000"}, "amount"),
    ],
)
def test_invalid_core_fields_are_refused_before_midtrans(client, pos, midtrans, fields, field):
    resp = post(client, pos, **fields)
    assert resp.status_code == 400, resp.get_data(as_text=True)
    assert resp.json["error"]["code"] == "invalid_request"
    assert resp.json["error"]["details"] == {"field": field}
    assert len(midtrans.calls) == 0
    with client.application.app_context():
        assert db.session.query(Transaction).count() == 0


# -- validation boundaries: just at each limit (passed on as sent) and just past it (400) --

VA_BANKS = ("bca", "bni", "bri", "permata", "cimb")


def passed_on(client, pos, midtrans, **fields):
    """POST /charge with `fields`; what Midtrans received, or the gateway's 400 and None."""
    charged = core_ok(midtrans, charge_answer("pos-POS-1", fields["payment_type"]))
    resp = post(client, pos, **fields)
    if resp.status_code == 400:
        assert len(charged.calls) == 0
        return resp, None
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp, sent(charged.calls[0])


@pytest.mark.parametrize("bank", VA_BANKS)
@pytest.mark.parametrize(("number", "fits"), [("7", True), ("9" * 18, True), ("9" * 19, False)])
def test_va_number_lengths_per_bank(client, pos, midtrans, bank, number, fits):
    """Up to 18 digits for every bank (BRI's length, the longest; Midtrans pads a shorter
    number and cuts a longer one to its bank's own length), as sent; 19 is refused."""
    resp, body = passed_on(
        client, pos, midtrans, payment_type="bank_transfer", bank=bank, va_number=number
    )
    if fits:
        assert body["bank_transfer"] == {"bank": bank, "va_number": number}
    else:
        assert resp.json["error"]["details"] == {"field": "va_number"}


@pytest.mark.parametrize(("field", "limit"), [("bill_info1", 10), ("bill_info2", 30)])
@pytest.mark.parametrize("past", [0, 1])
def test_bill_info_at_mandiris_limit_is_sent_and_one_more_is_refused(
    client, pos, midtrans, field, limit, past
):
    """Mandiri shows 10 characters of a label and 30 of its value (Midtrans's E-Channel
    object): at the limit it is sent as is, one more is refused rather than cut there."""
    text = "x" * (limit + past)
    resp, body = passed_on(client, pos, midtrans, payment_type="echannel", **{field: text})
    if past:
        assert body is None and resp.json["error"]["details"] == {"field": field}
    else:
        assert body["echannel"][field] == text


@pytest.mark.parametrize(
    ("unit", "largest"), [("day", 180), ("hour", 180 * 24), ("minute", 180 * 24 * 60)]
)
@pytest.mark.parametrize("past", [0, 1])
def test_custom_expiry_up_to_midtrans_longest_180_days(client, pos, midtrans, unit, largest, past):
    """Midtrans keeps a payment payable 180 days at most: the largest duration in each unit
    is sent as is and counts for expires_at; one more is refused before Midtrans."""
    expiry = {"expiry_duration": largest + past, "unit": unit}
    resp, body = passed_on(client, pos, midtrans, payment_type="qris", custom_expiry=expiry)
    if past:
        assert body is None
        assert resp.json["error"]["details"] == {"field": "custom_expiry.expiry_duration"}
        assert "180 days" in resp.json["error"]["message"]
        return
    assert body["custom_expiry"] == expiry
    left = datetime.fromisoformat(resp.json["expires_at"]) - datetime.now(UTC)
    assert timedelta(days=180) - timedelta(minutes=1) < left <= timedelta(days=180)


def test_the_worker_checks_a_core_order_right_after_its_expiry_time(app, client, pos, midtrans):
    """Reconciliation by expiry_time: a QRIS payment that lives 15 minutes is asked about
    again one minute after Midtrans's expiry_time (not at the hourly offset), and the expiry
    Midtrans then reports is applied."""
    deadline = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=15)
    expiry_time = (deadline + timedelta(hours=7)).strftime("%Y-%m-%d %H:%M:%S")
    extra = {**CASES["qris"][2], "expiry_time": expiry_time}
    core_ok(midtrans, charge_answer("pos-POS-1", "qris", **extra))
    assert post(client, pos, **CASES["qris"][0]).status_code == 201
    started = row(client).attempt_started_at
    pending = charge_answer("pos-POS-1", "qris", expiry_time=expiry_time)
    asked = midtrans.add(responses.GET, status_url("pos-POS-1"), json=pending)

    assert reconcile(app, started + timedelta(minutes=10)) == 1  # the scheduled check
    assert row(client).next_check_at == deadline + timedelta(minutes=1)

    midtrans.replace(
        responses.GET,
        status_url("pos-POS-1"),
        json=charge_answer("pos-POS-1", "qris", "expire", status_code="407"),
    )
    assert reconcile(app, deadline + timedelta(seconds=59)) == 0
    assert reconcile(app, deadline + timedelta(minutes=1)) == 1
    txn = row(client)
    assert (txn.status, txn.next_check_at) == ("expire", None)
    assert client.get(f"/status/{ORDER}", headers=pos).json["outcome"] == "expired"
    assert asked.call_count >= 1


def reconcile(app, at: datetime) -> int:
    """One worker round of reconciliation at `at`: how many orders it asked Midtrans about."""
    with app.app_context():
        return reconcile_due_orders(midtrans=gateway(app).midtrans, now=at)


def test_an_unsupported_payment_type_says_which_are(client, pos, midtrans):
    resp = post(client, pos, payment_type="akulaku")
    message = resp.json["error"]["message"]
    assert "akulaku" in message and "bank_transfer" in message and "qris" in message


@pytest.mark.parametrize(
    ("http", "body", "status", "code"),
    [
        (
            200,
            {
                "status_code": "400",
                "status_message": "One or more parameters in the payload is invalid.",
                "validation_messages": ["bank_transfer.va_number is invalid"],
            },
            400,
            "midtrans_rejected",
        ),
        (
            400,
            {"status_code": "400", "status_message": "bad", "validation_messages": ["x is bad"]},
            400,
            "midtrans_rejected",
        ),
        (
            200,
            {"status_code": "411", "status_message": "Token id is missing, invalid, or timed out"},
            400,
            "midtrans_rejected",
        ),
        (
            200,
            {"status_code": "402", "status_message": "Payment channel is not activated."},
            400,
            "midtrans_rejected",
        ),
        (
            401,
            {"status_code": "401", "status_message": "unauthorized"},
            502,
            "midtrans_auth_failed",
        ),
        (200, {"status_code": "500", "status_message": "internal"}, 502, "midtrans_unavailable"),
        (503, {"status_code": "503"}, 502, "midtrans_unavailable"),
        (
            200,
            {"status_code": "201", "status_message": "no transaction"},
            502,
            "midtrans_unavailable",
        ),
    ],
)
def test_core_errors_are_mapped_like_snaps(client, pos, midtrans, http, body, status, code):
    midtrans.add(responses.POST, CHARGE_URL, json=body, status=http)
    resp = post(client, pos, payment_type="bank_transfer", bank="bca")
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.json["error"]["code"] == code
    if code == "midtrans_rejected":
        assert resp.json["error"]["details"]["midtrans_messages"]


def test_a_taken_order_id_gets_a_fresh_one(client, pos, midtrans):
    """Core's 406 (the order id is taken, e.g. after a restore) is Snap's "already taken"."""
    midtrans.add(
        responses.POST,
        CHARGE_URL,
        json={"status_code": "406", "status_message": "conflict with the current state"},
    )
    midtrans.add(responses.GET, status_url("pos-POS-1"), status=404, json={"status_code": "404"})
    fresh = midtrans.add_callback(
        responses.POST,
        CHARGE_URL,
        callback=lambda request: (
            200,
            {},
            json.dumps(
                charge_answer(
                    json.loads(request.body)["transaction_details"]["order_id"],
                    "qris",
                    qr_string="q",
                )
            ),
        ),
    )
    resp = post(client, pos, payment_type="qris")
    assert resp.status_code == 201 and resp.json["qr_string"] == "q"
    assert sent(fresh.calls[-1])["transaction_details"]["order_id"].startswith("pos-POS-1~")


def test_without_payment_type_the_core_fields_are_ignored_and_snap_is_used(client, pos, midtrans):
    from support import snap_ok

    snap_ok(midtrans, token="t")
    resp = post(client, pos, bank="bca", token_id="x")
    assert resp.status_code == 201 and resp.json["token"] == "t"


def render_details(flask_app, txn) -> str:
    from flask import render_template

    from app.qr import qr_svg

    flask_app.jinja_env.globals.setdefault("qr_svg", qr_svg)
    with flask_app.test_request_context("/admin/"):
        return render_template("admin/_payment_details.html", txn=txn)


@pytest.mark.parametrize("case", ["bca", "permata", "echannel", "qris", "gopay", "card 3ds"])
def test_the_dashboard_partial_shows_what_the_payer_needs(app, client, pos, midtrans, case):
    fields, to_midtrans, extra, shown = CASES[case]
    core_ok(midtrans, charge_answer("pos-POS-1", to_midtrans["payment_type"], **extra))
    assert post(client, pos, **fields).status_code == 201

    page = render_details(app, row(client))

    assert "Payment details" in page and "<img" not in page
    for number in shown.get("va_numbers", []):
        assert f'<code class="va-number">{number["va_number"]}</code>' in page
    if "permata_va_number" in shown:
        assert shown["permata_va_number"] in page
    if "bill_key" in shown:
        assert shown["bill_key"] in page and shown["biller_code"] in page
    if "qr_string" in shown:
        assert "<svg" in page and 'class="segno"' in page
    if case == "gopay":
        assert shown["deeplink_url"] in page and shown["qr_url"] in page
    if case == "card 3ds":
        assert shown["redirect_url"] in page


def test_the_partial_draws_the_qr_of_the_stored_payload(app):
    import segno

    from app.qr import qr_svg

    drawn = qr_svg("00020101021226570014COM.GO-JEK.WWW6304ABCD")
    expected = segno.make(
        "00020101021226570014COM.GO-JEK.WWW6304ABCD", error="m", boost_error=False
    )
    assert str(drawn) == expected.svg_inline(scale=4, dark="#000", light="#fff", title="QR code")
    assert qr_svg("") == "" and qr_svg(None) == ""


def test_the_partial_shows_nothing_for_a_snap_order(app):
    txn = Transaction(order_id="S", amount=1, status="pending", payment_details=None)
    assert render_details(app, txn).strip() == ""


def test_with_gopays_own_return_a_top_level_callback_url_is_the_orders_callback_url(
    client, pos, midtrans
):
    """gopay.callback_url gives the deeplink return: the top-level callback_url is then the
    order's own callback URL, which needs the app's signing secret (this app has none)."""
    charged = core_ok(midtrans, charge_answer("pos-POS-1", "gopay"))

    resp = post(
        client,
        pos,
        payment_type="gopay",
        gopay={"callback_url": "posapp://paid"},
        callback_url="https://pos.example/hooks",
    )

    assert resp.status_code == 400 and resp.json["error"]["details"]["field"] == "callback_url"
    assert "signing secret" in resp.json["error"]["message"]
    assert not charged.calls
