"""POST /transactions/<order_id>/cancel|expire|refund|approve|deny|capture: a client app runs
its own payments' lifecycle (SPEC "Payment actions and records for client apps"). Midtrans is
mocked with `responses`; the status API's answer is what gets applied."""

from __future__ import annotations

import json
import threading
import time

import pytest
import responses
from support import API_BASE, charge, hook_app, make_app, status_url

from app.extensions import db
from app.models import CallbackEvent, EventSource, Refund, Transaction, TransactionEvent

ORDER = "INV-77"
PAYMENT_ID = "9a1b2c3d-0000-4000-8000-000000000077"
BASE = {
    "status_message": "Success, transaction is found",
    "transaction_id": PAYMENT_ID,
    "order_id": ORDER,
    "gross_amount": "100000.00",
    "currency": "IDR",
    "payment_type": "credit_card",
    "transaction_time": "2026-11-26 09:00:00",
    "merchant_id": "G000000000",
}


def answer(status: str, fraud: str = "accept", code: str = "200", **extra) -> dict:
    return {
        **BASE,
        "status_code": code,
        "transaction_status": status,
        "fraud_status": fraud,
        **extra,
    }


def refunded(total: int) -> dict:
    return answer(
        "refund" if total >= 100000 else "partial_refund",
        refund_amount=f"{total}.00",
        refunds=[{"refund_chargeback_id": 1, "refund_amount": f"{total}.00", "reason": "r"}],
    )


NO_TRANSACTION = {"status_code": "404", "status_message": "Transaction doesn't exist."}


def action_url(name: str) -> str:
    return f"{API_BASE}/v2/{PAYMENT_ID}/{name}"


@pytest.fixture
def biller(cli):
    return make_app(cli, "biller", "--order-prefix", "")


@pytest.fixture
def placed(client, biller, midtrans):
    """An order of `biller` with a Snap link; `state(...)` makes Midtrans hold that status."""
    charge(client, biller, midtrans, order_id=ORDER, amount=100000)

    def state(body: dict | None, *, apply: bool = True):
        """Midtrans's status API says `body` from now on; with `apply`, the gateway reads it."""
        if body is None:  # Midtrans has no transaction: nobody chose a payment method
            midtrans.upsert(responses.GET, status_url(ORDER), json=NO_TRANSACTION, status=404)
            return
        midtrans.upsert(responses.GET, status_url(ORDER), json=body)
        if apply:
            client.get(f"/status/{ORDER}", headers=biller)

    return state


def act(client, headers, name, body=None, order_id=ORDER):
    kwargs = {"json": body} if body is not None else {}
    return client.post(f"/transactions/{order_id}/{name}", headers=headers, **kwargs)


def calls_to(midtrans, url: str) -> int:
    return sum(1 for call in midtrans.calls if call.request.url == url)


def allow_refunds(cli, code="biller"):
    assert "may now refund" in cli("apps", "allow-refunds", code).output


def events(client) -> list[tuple[str | None, str, str]]:
    with client.application.app_context():
        rows = db.session.query(TransactionEvent).order_by(TransactionEvent.id).all()
        return [(e.from_status, e.to_status, e.source) for e in rows]


# -- cancel, expire ------------------------------------------------------------------------


def test_cancel_a_pending_payment(client, biller, midtrans, placed):
    placed(answer("pending", code="201", payment_type="bank_transfer"))
    midtrans.add(responses.POST, action_url("cancel"), json=answer("cancel"))
    placed(answer("cancel", payment_type="bank_transfer"), apply=False)  # Midtrans, after

    got = act(client, biller, "cancel")

    assert got.status_code == 200, got.json
    assert got.json["order_id"] == ORDER
    assert got.json["transaction_status"] == "cancel" and got.json["outcome"] == "cancelled"
    assert calls_to(midtrans, action_url("cancel")) == 1


def test_cancelling_a_link_nobody_opened_is_recorded_and_a_late_payment_is_flagged(
    client, biller, midtrans, placed
):
    placed(None)  # no Midtrans transaction yet: nobody chose a method
    midtrans.add(responses.POST, f"{API_BASE}/v2/{ORDER}/cancel", json=NO_TRANSACTION, status=404)

    got = act(client, biller, "cancel")

    assert got.status_code == 200, got.json
    assert got.json["outcome"] == "cancelled"
    assert events(client)[-1] == ("pending", "cancel", EventSource.CLIENT)
    with client.application.app_context():
        txn = db.session.query(Transaction).filter_by(order_id=ORDER).one()
        assert txn.status_by_gateway and txn.next_check_at is not None
        assert db.session.query(CallbackEvent).count() == 0  # the app has no callback URL

    # The Snap page stayed payable: a payment turns up, and is applied and flagged.
    midtrans.upsert(responses.GET, status_url(ORDER), json=answer("settlement"))
    later = client.get(f"/status/{ORDER}", headers=biller).json
    assert later["outcome"] == "paid"
    with client.application.app_context():
        assert db.session.query(Transaction).filter_by(order_id=ORDER).one().flag


def test_a_paid_order_cannot_be_cancelled_or_expired(client, biller, midtrans, placed):
    placed(answer("settlement"))
    for name in ("cancel", "expire"):
        got = act(client, biller, name)
        assert got.status_code == 409
        assert got.json["error"]["code"] == "invalid_state"
        assert "paid" in got.json["error"]["message"]
    assert not [c for c in midtrans.calls if c.request.method == "POST" and "/v2/" in c.request.url]


def test_midtrans_412_is_invalid_state_not_a_gateway_error(client, biller, midtrans, placed):
    placed(answer("pending", code="201"))
    refused = {"status_code": "412", "status_message": "Transaction status cannot be updated."}
    midtrans.add(responses.POST, action_url("expire"), json=refused)

    got = act(client, biller, "expire")

    assert got.status_code == 409
    assert got.json["error"]["code"] == "invalid_state"
    assert "cannot be updated" in got.json["error"]["message"]


# -- approve, deny, capture ----------------------------------------------------------------


def test_approving_a_challenge_makes_it_paid(client, biller, midtrans, placed):
    placed(answer("capture", fraud="challenge", code="201"))
    midtrans.add(responses.POST, action_url("approve"), json=answer("capture"))
    placed(answer("capture"), apply=False)

    got = act(client, biller, "approve")

    assert got.status_code == 200
    assert got.json["outcome"] == "paid" and got.json["paid"] is True


def test_denying_a_challenge_fails_it(client, biller, midtrans, placed):
    placed(answer("capture", fraud="challenge", code="201"))
    midtrans.add(responses.POST, action_url("deny"), json=answer("deny", fraud="deny"))
    placed(answer("deny", fraud="deny", code="202"), apply=False)

    got = act(client, biller, "deny")

    assert got.status_code == 200 and got.json["outcome"] == "failed"


def test_only_a_challenge_can_be_approved_or_denied(client, biller, midtrans, placed):
    placed(answer("pending", code="201"))
    for name in ("approve", "deny"):
        got = act(client, biller, name)
        assert got.status_code == 409 and got.json["error"]["code"] == "invalid_state"


def test_capture_an_authorized_card_in_full_or_in_part(client, biller, midtrans, placed):
    placed(answer("authorize"))
    capture = midtrans.add(responses.POST, f"{API_BASE}/v2/capture", json=answer("capture"))
    placed(answer("capture", gross_amount="60000.00"), apply=False)

    too_much = act(client, biller, "capture", {"amount": 100001})
    assert too_much.status_code == 400 and too_much.json["error"]["details"]["field"] == "amount"
    got = act(client, biller, "capture", {"amount": 60000})

    assert got.status_code == 200 and got.json["outcome"] == "paid"
    assert capture.call_count == 1
    sent = json.loads(capture.calls[0].request.body)
    assert sent == {"transaction_id": PAYMENT_ID, "gross_amount": 60000}
    with client.application.app_context():  # what was captured is the order's amount now
        assert db.session.query(Transaction).filter_by(order_id=ORDER).one().amount == 60000


def test_a_capture_midtrans_refuses_leaves_the_authorized_amount(client, biller, midtrans, placed):
    placed(answer("authorize"))
    refused = {"status_code": "412", "status_message": "Transaction status cannot be updated."}
    midtrans.add(responses.POST, f"{API_BASE}/v2/capture", json=refused)

    got = act(client, biller, "capture", {"amount": 60000})

    assert got.status_code == 409 and got.json["error"]["code"] == "invalid_state"
    with client.application.app_context():
        assert db.session.query(Transaction).filter_by(order_id=ORDER).one().amount == 100000


def test_only_an_authorized_card_can_be_captured(client, biller, midtrans, placed):
    placed(answer("settlement"))
    got = act(client, biller, "capture")
    assert got.status_code == 409 and got.json["error"]["code"] == "invalid_state"


# -- repeats: every action but refund is idempotent --------------------------------------

PENDING = answer("pending", code="201", payment_type="bank_transfer")
CHALLENGED = answer("capture", fraud="challenge", code="201")
# Each action: the order before it, and what Midtrans's status API says after it.
END_STATES = {
    "cancel": (PENDING, answer("cancel", payment_type="bank_transfer")),
    "expire": (PENDING, answer("expire", code="407", payment_type="bank_transfer")),
    "approve": (CHALLENGED, answer("capture")),
    "deny": (CHALLENGED, answer("deny", fraud="deny", code="202")),
    "capture": (answer("authorize"), answer("capture")),
}


def midtrans_url(name: str) -> str:
    return f"{API_BASE}/v2/capture" if name == "capture" else action_url(name)


@pytest.fixture
def hooked(cli, loopback_callbacks):
    """An app with a callback URL: each change of its orders writes a callback to send."""
    return hook_app(cli, "hooked", "http://127.0.0.1:9/callbacks", "--order-prefix", "").headers


def callbacks_written(client) -> int:
    with client.application.app_context():
        return db.session.query(CallbackEvent).count()


@pytest.mark.parametrize("name", list(END_STATES))
def test_repeating_an_action_that_is_done_answers_the_order_and_asks_midtrans_once(
    client, hooked, midtrans, name
):
    before, after = END_STATES[name]
    charge(client, hooked, midtrans, order_id=ORDER, amount=100000)
    midtrans.upsert(responses.GET, status_url(ORDER), json=before)
    client.get(f"/status/{ORDER}", headers=hooked)
    done = midtrans.add(responses.POST, midtrans_url(name), json=after)
    midtrans.upsert(responses.GET, status_url(ORDER), json=after)

    first = act(client, hooked, name)
    assert first.status_code == 200, first.json
    asked, written = len(midtrans.calls), callbacks_written(client)
    assert written >= 1  # the change itself was reported

    again = [act(client, hooked, name) for _ in range(2)]

    assert [a.status_code for a in again] == [200, 200]
    assert again[0].json == again[1].json == first.json
    assert done.call_count == 1
    assert len(midtrans.calls) == asked  # no action, and no status call either
    assert callbacks_written(client) == written


@pytest.mark.parametrize(
    ("name", "state", "word"),
    [
        ("cancel", answer("expire", code="407"), "expired"),
        ("expire", answer("cancel"), "cancelled"),
        ("approve", answer("deny", fraud="deny", code="202"), "failed"),
        ("deny", answer("capture"), "paid"),
        ("capture", answer("cancel"), "cancelled"),
        ("approve", answer("failure", code="202"), "failed"),
        ("deny", answer("failure", code="202"), "failed"),  # failed, but never denied
        ("capture", answer("settlement", payment_type="bank_transfer"), "paid"),
    ],
)
def test_an_action_on_an_order_another_action_ended_is_still_409(
    client, biller, midtrans, placed, name, state, word
):
    placed(state)

    got = act(client, biller, name)

    assert got.status_code == 409 and got.json["error"]["code"] == "invalid_state"
    assert word in got.json["error"]["message"]
    assert not [c for c in midtrans.calls if c.request.method == "POST" and "/v2/" in c.request.url]


def test_a_capture_repeated_with_another_amount_is_409(client, biller, midtrans, placed):
    placed(answer("authorize"))
    capture = midtrans.add(responses.POST, f"{API_BASE}/v2/capture", json=answer("capture"))
    placed(answer("capture", gross_amount="60000.00"), apply=False)
    assert act(client, biller, "capture", {"amount": 60000}).status_code == 200

    same, other = (act(client, biller, "capture", {"amount": n}) for n in (60000, 70000))

    assert same.status_code == 200 and same.json["gross_amount"] == "60000.00"
    assert (
        other.status_code == 409 and "already captured, for 60000" in other.json["error"]["message"]
    )
    assert capture.call_count == 1


def test_a_retry_racing_the_first_is_200_when_midtrans_already_did_it(
    client, biller, midtrans, placed
):
    # The first cancel reached Midtrans, but its answer was lost; the retry finds the order
    # still pending here, and Midtrans answers 412 (it is cancelled already).
    placed(answer("pending", code="201"))
    refused = {"status_code": "412", "status_message": "Transaction status cannot be updated."}
    midtrans.add(responses.POST, action_url("cancel"), json=refused)
    placed(answer("cancel"), apply=False)

    got = act(client, biller, "cancel")

    assert got.status_code == 200 and got.json["outcome"] == "cancelled"


# -- refunds -------------------------------------------------------------------------------


def test_refunds_need_an_admins_permission(client, cli, biller, midtrans, placed):
    placed(answer("settlement"))
    refused = act(client, biller, "refund", {"amount": 1000, "reason": "x"})
    assert refused.status_code == 403 and refused.json["error"]["code"] == "forbidden"
    assert "allow-refunds biller" in refused.json["error"]["message"]

    allow_refunds(cli)
    cli("apps", "allow-refunds", "biller", "--off")
    assert act(client, biller, "refund", {"amount": 1000}).status_code == 403


def test_a_partial_then_a_full_refund(client, cli, biller, midtrans, placed):
    allow_refunds(cli)
    placed(answer("settlement"))
    refund = midtrans.add(responses.POST, action_url("refund"), json={"status_code": "200"})

    placed(refunded(40000), apply=False)
    first = act(client, biller, "refund", {"amount": 40000, "reason": "one item returned"})
    assert first.status_code == 200, first.json
    assert first.json["outcome"] == "partially_refunded" and first.json["paid"] is True
    assert first.json["refunded_amount"] == 40000

    placed(refunded(100000), apply=False)
    rest = act(client, biller, "refund", {"reason": "the rest"})  # no amount: what is left
    assert rest.status_code == 200 and rest.json["outcome"] == "refunded"
    sent = [json.loads(call.request.body) for call in refund.calls]
    assert [(b["amount"], b["reason"]) for b in sent] == [
        (40000, "one item returned"),
        (60000, "the rest"),
    ]
    assert sent[0]["refund_key"] != sent[1]["refund_key"]  # a key made for each

    nothing_left = act(client, biller, "refund", {"amount": 1})
    assert nothing_left.status_code == 409


def test_the_same_refund_key_refunds_once_and_answers_the_same(
    client, cli, biller, midtrans, placed
):
    allow_refunds(cli)
    placed(answer("settlement"))
    refund = midtrans.add(responses.POST, action_url("refund"), json={"status_code": "200"})
    placed(refunded(30000), apply=False)
    body = {"amount": 30000, "reason": "r", "refund_key": "credit-note-7"}

    answers = [act(client, biller, "refund", body) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert refund.call_count == 1
    assert {a.json["refunded_amount"] for a in answers} == {30000}
    other = act(client, biller, "refund", {**body, "amount": 20000})
    assert other.status_code == 409 and other.json["error"]["code"] == "order_conflict"
    assert refund.call_count == 1


def test_ten_identical_refunds_at_once_make_one_midtrans_refund(
    client, cli, biller, midtrans, placed
):
    allow_refunds(cli)
    placed(answer("settlement"))
    placed(refunded(25000), apply=False)

    def slow_refund(_request):
        time.sleep(0.3)  # the others arrive while the first is at Midtrans
        return 200, {}, '{"status_code": "200"}'

    def slow_status(_request):
        time.sleep(0.3)  # the others are waiting while the first reads the refunded order
        return 200, {}, json.dumps(refunded(25000))

    refund = midtrans.add_callback(responses.POST, action_url("refund"), callback=slow_refund)
    midtrans.remove(responses.GET, status_url(ORDER))
    midtrans.add_callback(responses.GET, status_url(ORDER), callback=slow_status)
    body = {"amount": 25000, "reason": "r", "refund_key": "rk-concurrent"}
    results: list = []

    def one():
        answer_ = client.application.test_client().post(
            f"/transactions/{ORDER}/refund", json=body, headers=biller
        )
        results.append((answer_.status_code, answer_.json.get("refunded_amount")))

    threads = [threading.Thread(target=one) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert refund.call_count == 1
    assert results == [(200, 25000)] * 10
    with client.application.app_context():
        assert db.session.query(Refund).count() == 1


def test_a_refund_midtrans_refused_is_refused_again_without_asking(
    client, cli, biller, midtrans, placed
):
    allow_refunds(cli)
    placed(answer("settlement", payment_type="bank_transfer"))
    refused = {"status_code": "412", "status_message": "Transaction status cannot be updated."}
    refund = midtrans.add(responses.POST, action_url("refund"), json=refused)
    body = {"amount": 1000, "refund_key": "rk-refused"}

    first, again = act(client, biller, "refund", body), act(client, biller, "refund", body)

    assert first.status_code == again.status_code == 409
    assert first.json == again.json and first.json["error"]["code"] == "invalid_state"
    assert refund.call_count == 1


@pytest.mark.parametrize("code", [400, 404, 406])
def test_a_refund_midtrans_rejects_is_400_and_a_corrected_retry_may_use_the_same_key(
    client, cli, biller, midtrans, placed, code
):
    allow_refunds(cli)
    placed(answer("settlement"))
    message = "Refund amount is greater than the amount left to refund."
    rejected = {"status_code": str(code), "status_message": message}
    refund = midtrans.add(responses.POST, action_url("refund"), json=rejected, status=code)
    body = {"amount": 90000, "reason": "r", "refund_key": "rk-corrected"}

    first, again = act(client, biller, "refund", body), act(client, biller, "refund", body)

    assert first.status_code == 400, first.json
    assert first.json["error"]["code"] == "midtrans_rejected"
    assert first.json["error"]["details"]["midtrans_messages"] == [message]
    assert again.json == first.json and refund.call_count == 1  # the same request: the same

    midtrans.replace(responses.POST, action_url("refund"), json={"status_code": "200"})
    placed(refunded(40000), apply=False)
    corrected = act(client, biller, "refund", {**body, "amount": 40000})

    assert corrected.status_code == 200, corrected.json
    assert corrected.json["refunded_amount"] == 40000
    sent = json.loads(midtrans.calls[-2].request.body)  # the refund, then the status read
    assert sent["refund_key"] == "rk-corrected" and sent["amount"] == 40000
    # Done under that key now: the same request again answers it, Midtrans not asked.
    asked = len(midtrans.calls)
    assert act(client, biller, "refund", {**body, "amount": 40000}).status_code == 200
    assert len(midtrans.calls) == asked


@pytest.mark.parametrize(("name", "code"), [("cancel", 406), ("approve", 400), ("capture", 400)])
def test_other_actions_midtrans_rejects_are_400_not_502(
    client, biller, midtrans, placed, name, code
):
    placed({"cancel": PENDING, "approve": CHALLENGED, "capture": answer("authorize")}[name])
    rejected = {"status_code": str(code), "status_message": "Bad request."}
    midtrans.add(responses.POST, midtrans_url(name), json=rejected, status=code)

    got = act(client, biller, name)

    assert got.status_code == 400 and got.json["error"]["code"] == "midtrans_rejected"
    assert got.json["error"]["details"]["midtrans_status_code"] == str(code)


def test_a_direct_refund_uses_midtrans_direct_refund(client, cli, biller, midtrans, placed):
    allow_refunds(cli)
    placed(answer("settlement"))
    direct = midtrans.add(
        responses.POST, action_url("refund/online/direct"), json={"status_code": "200"}
    )
    placed(refunded(100000), apply=False)

    got = act(client, biller, "refund", {"direct": True, "reason": "r"})

    assert got.status_code == 200 and direct.call_count == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount": "1000"}, "amount"),
        ({"amount": 0}, "amount"),
        ({"amount": 100001}, "amount"),
        ({"reason": "x" * 256}, "reason"),
        ({"reason": 5}, "reason"),
        ({"reason": "asked\x00"}, "reason"),
        ({"refund_key": "a b"}, "refund_key"),
        ({"refund_key": "k" * 51}, "refund_key"),
        ({"refund_key": "a\x00b"}, "refund_key"),
        ({"direct": "yes"}, "direct"),
    ],
)
def test_a_bad_refund_is_400_and_reaches_nobody(client, cli, biller, midtrans, placed, body, field):
    allow_refunds(cli)
    placed(answer("settlement"))
    got = act(client, biller, "refund", body)
    assert got.status_code == 400 and got.json["error"]["details"]["field"] == field
    assert not [c for c in midtrans.calls if c.request.method == "POST" and "/v2/" in c.request.url]
    with client.application.app_context():
        assert db.session.query(Refund).count() == 0


# -- isolation and input -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cancel", "expire", "refund", "approve", "deny", "capture"])
def test_another_apps_order_is_404_for_every_action(client, cli, biller, midtrans, placed, name):
    other = make_app(cli, "shop")
    allow_refunds(cli, "shop")
    placed(answer("settlement"))
    got = act(client, other, name, {})
    assert got.status_code == 404 and got.json["error"]["code"] == "not_found"
    assert act(client, biller, name, {}, order_id="NOPE").status_code == 404


def test_actions_need_the_apps_key(client, biller, placed):
    assert client.post(f"/transactions/{ORDER}/cancel").status_code == 401
    wrong = {**biller, "X-Api-Key": "0" * 32}
    assert client.post(f"/transactions/{ORDER}/cancel", headers=wrong).status_code == 401


def test_a_body_that_is_not_json_is_400(client, cli, biller, midtrans, placed):
    allow_refunds(cli)
    placed(answer("settlement"))
    got = client.post(
        f"/transactions/{ORDER}/refund", data="amount=5", headers=biller, content_type="text/plain"
    )
    assert got.status_code == 400
