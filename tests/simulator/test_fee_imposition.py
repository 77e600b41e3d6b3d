"""Midtrans's fee imposition: the payer pays the order plus a fee fixed when the method is chosen,
and every status, notification and answer states the fee-inclusive gross_amount and the split."""

import hashlib

import pytest

SPLIT = {
    "original_amount": "10000.00",
    "customer_imposed_payment_fee": "4440.00",
    "gross_amount": "14440.00",
}


def is_signed(body: dict, server_key: str) -> bool:
    text = body["order_id"] + body["status_code"] + body["gross_amount"] + server_key
    return body["signature_key"] == hashlib.sha512(text.encode()).hexdigest()


def configure(client, **changes) -> dict:
    answer = client.post("/_sim/config", json=changes)
    assert answer.status_code == 200, answer.json
    return answer.json


def status(client, auth, key: str = "ORDER-1") -> dict:
    return client.get(f"/v2/{key}/status", headers=auth).json


def core_charge(client, auth, payment_type: str) -> dict:
    details = {"order_id": "O-1", "gross_amount": 10000}
    body = {"payment_type": payment_type, "transaction_details": details}
    return client.post("/v2/charge", json=body, headers=auth).json


def settled(receiver) -> dict:
    return receiver.arrived(2)[-1].json()


@pytest.fixture
def notify_here(receiver):
    return {"X-Override-Notification": receiver.url}


def test_a_paid_snap_order_states_the_fee_in_metadata_and_signs_the_fee_inclusive_amount(
    client, auth, server_key, snap_order, receiver, notify_here
):
    configure(client, fee_imposition={"fee": 4440})
    snap_order("ORDER-1", 10000, headers=notify_here)

    client.post("/_sim/transactions/ORDER-1/pay")

    answered, notified = status(client, auth), settled(receiver)
    for body in (answered, notified):
        assert body["transaction_status"] == "settlement"
        assert body["gross_amount"] == "14440.00"
        assert body["metadata"] == {"extra_info": {"gross_amount_info": SPLIT}}
        assert "original_amount" not in body
        assert is_signed(body, server_key)
    assert answered["payment_amounts"][0]["amount"] == "14440.00"


def test_the_top_placement_puts_the_split_beside_gross_amount(
    client, auth, server_key, snap_order, receiver, notify_here
):
    configure(client, fee_imposition={"fee": 4440, "placement": "top"})
    snap_order("ORDER-1", 10000, headers=notify_here)

    client.post("/_sim/transactions/ORDER-1/pay", json={"payment_type": "gopay"})

    for body in (status(client, auth), settled(receiver)):
        assert (body["gross_amount"], body["original_amount"]) == ("14440.00", "10000.00")
        assert body["customer_imposed_payment_fee"] == "4440.00"
        assert "metadata" not in body
        assert is_signed(body, server_key)


def test_the_pending_notification_already_carries_the_fee(
    client, server_key, snap_order, receiver, notify_here
):
    configure(client, fee_imposition={"fee": 4440})
    snap_order("ORDER-1", 10000, headers=notify_here)

    client.post("/_sim/transactions/ORDER-1/choose")

    body = receiver.arrived(1)[0].json()
    assert (body["transaction_status"], body["gross_amount"]) == ("pending", "14440.00")
    assert is_signed(body, server_key)


@pytest.mark.parametrize(
    ("rule", "amount", "gross"),
    [
        ({"percent": 2}, 10000, "10200.00"),
        ({"percent": 2.5}, 10020, "10271.00"),  # 250.5 rounds half up
        ({"percent": 0.7}, 10050, "10120.00"),  # 70.35 rounds down
        ({"fee": 2000, "percent": 2.9}, 10000, "12290.00"),
    ],
)
def test_a_percentage_is_of_the_order_amount_in_whole_rupiah(
    client, auth, snap_order, rule, amount, gross
):
    configure(client, fee_imposition=rule)
    snap_order("ORDER-1", amount)

    body = client.post("/_sim/transactions/ORDER-1/pay").json

    assert body["gross_amount"] == gross
    assert body["metadata"]["extra_info"]["gross_amount_info"]["original_amount"] == (
        f"{amount}.00"
    )


def test_a_fee_for_one_order_overrides_the_global_one(client, auth, server_key, snap_order):
    configure(client, fee_imposition={"fee": 4440})
    snap_order("ORDER-1", 10000)
    snap_order("ORDER-2", 10000)

    own = client.post("/_sim/transactions/ORDER-1/pay", json={"fee": 2500}).json
    other = client.post("/_sim/transactions/ORDER-2/pay").json

    assert own["gross_amount"] == "12500.00"
    assert own["metadata"]["extra_info"]["gross_amount_info"]["customer_imposed_payment_fee"] == (
        "2500.00"
    )
    assert is_signed(status(client, auth), server_key)
    assert other["gross_amount"] == "14440.00"


def test_a_per_order_rule_may_choose_its_placement(client, snap_order):
    snap_order("ORDER-1", 10000)

    rule = {"percent": 1, "placement": "top"}
    body = client.post("/_sim/transactions/ORDER-1/choose", json={"fee_imposition": rule}).json

    assert (body["gross_amount"], body["customer_imposed_payment_fee"]) == ("10100.00", "100.00")


def test_a_null_rule_for_one_order_pays_no_fee_while_the_global_one_is_on(client, snap_order):
    configure(client, fee_imposition={"fee": 4440})
    snap_order("ORDER-1", 10000)

    body = client.post("/_sim/transactions/ORDER-1/pay", json={"fee_imposition": None}).json

    assert body["gross_amount"] == "10000.00"
    assert "metadata" not in body


def test_fee_imposition_is_off_by_default(client, auth, snap_order):
    assert client.get("/_sim/config").json["fee_imposition"] is None
    snap_order("ORDER-1", 10000)

    client.post("/_sim/transactions/ORDER-1/pay")

    body = status(client, auth)
    assert body["gross_amount"] == "10000.00"
    assert not {"metadata", "original_amount", "customer_imposed_payment_fee"} & set(body)


def test_the_global_rule_applies_only_to_methods_chosen_after_it_is_set(client, snap_order):
    snap_order("ORDER-1", 10000)
    snap_order("ORDER-2", 10000)
    client.post("/_sim/transactions/ORDER-1/choose")
    configure(client, fee_imposition={"fee": 4440})

    before = client.post("/_sim/transactions/ORDER-1/pay").json
    after = client.post("/_sim/transactions/ORDER-2/pay").json

    assert (before["gross_amount"], after["gross_amount"]) == ("10000.00", "14440.00")


def test_switching_it_off_or_resetting_stops_new_fees(client, snap_order):
    configure(client, fee_imposition={"fee": 4440})
    assert configure(client, fee_imposition=None)["fee_imposition"] is None
    configure(client, fee_imposition={"fee": 4440})
    client.post("/_sim/reset")
    snap_order("ORDER-1", 10000)

    body = client.post("/_sim/transactions/ORDER-1/pay").json

    assert client.get("/_sim/config").json["fee_imposition"] is None
    assert body["gross_amount"] == "10000.00"


def test_payment_types_limit_the_fee_to_those_channels(client, snap_order):
    configure(client, fee_imposition={"percent": 0.7, "payment_types": ["qris"]})
    snap_order("ORDER-1", 10000)
    snap_order("ORDER-2", 10000)

    qris = client.post("/_sim/transactions/ORDER-1/pay", json={"payment_type": "qris"}).json
    bank = client.post("/_sim/transactions/ORDER-2/pay").json

    assert (qris["gross_amount"], bank["gross_amount"]) == ("10070.00", "10000.00")


def test_the_customer_choice_on_the_payment_page_takes_the_order_s_own_fee(
    client, auth, snap_order
):
    order = snap_order("ORDER-1", 10000)
    set_fee = client.post("/_sim/transactions/ORDER-1/fee", json={"fee": 4440})

    client.post(f"{order['redirect_url']}/choose", data={"method": "bank_transfer:bni"})

    assert set_fee.json["fee_imposition"] == {
        "fee": 4440,
        "percent": 0,
        "placement": "metadata",
        "payment_types": None,
    }
    assert status(client, auth)["metadata"]["extra_info"]["gross_amount_info"] == SPLIT
    page = client.get(order["redirect_url"]).get_data(as_text=True)
    assert "Rp14.440" in page
    assert "payment fee Rp4.440" in page


def test_a_fee_for_an_order_whose_method_is_chosen_is_409(client, snap_order):
    snap_order("ORDER-1", 10000)
    client.post("/_sim/transactions/ORDER-1/choose")

    late = client.post("/_sim/transactions/ORDER-1/fee", json={"fee": 4440})
    paid = client.post("/_sim/transactions/ORDER-1/pay", json={"fee": 4440})

    assert (late.status_code, paid.status_code) == (409, 409)
    assert "fixed when the payment method is chosen" in late.json["error"]


def test_a_core_charge_takes_the_fee_at_charge_time(client, auth, server_key):
    configure(client, fee_imposition={"fee": 4440})

    charged = core_charge(client, auth, "qris")

    assert charged["gross_amount"] == "14440.00"
    assert charged["metadata"]["extra_info"]["gross_amount_info"]["original_amount"] == "10000.00"
    assert "540514440" in charged["qr_string"]  # QRIS tag 54, the amount to pay
    answered = status(client, auth, "O-1")
    assert answered["gross_amount"] == "14440.00"
    assert is_signed(answered, server_key)


def test_action_answers_state_the_fee_inclusive_amount_and_the_split(client, auth):
    configure(client, fee_imposition={"fee": 4440, "placement": "top"})
    core_charge(client, auth, "gopay")

    cancelled = client.post("/v2/O-1/cancel", headers=auth).json

    assert (cancelled["transaction_status"], cancelled["gross_amount"]) == ("cancel", "14440.00")
    assert cancelled["original_amount"] == "10000.00"


def test_refunds_are_bounded_by_the_fee_inclusive_amount_paid(client, auth, snap_order):
    configure(client, fee_imposition={"fee": 4440})
    snap_order("ORDER-1", 10000)
    client.post("/_sim/transactions/ORDER-1/pay", json={"payment_type": "gopay"})

    too_much = client.post("/v2/ORDER-1/refund", json={"amount": 14441}, headers=auth).json
    part = client.post("/v2/ORDER-1/refund", json={"amount": 10000}, headers=auth).json
    rest = client.post("/v2/ORDER-1/refund", json={"refund_key": "rest"}, headers=auth).json

    assert too_much["status_code"] == "412"
    assert part["transaction_status"] == "partial_refund"
    assert (rest["transaction_status"], rest["refund_amount"]) == ("refund", "4440.00")
    assert rest["metadata"]["extra_info"]["gross_amount_info"] == SPLIT


@pytest.mark.parametrize(
    "rule",
    [
        "4440",
        {},
        {"fee": -1},
        {"fee": 1.5},
        {"fee": True},
        {"percent": 101},
        {"fee": 1, "placement": "body"},
        {"fee": 1, "payment_types": ["cash"]},
        {"fee": 1, "surcharge": 2},
    ],
)
def test_a_malformed_rule_is_400_and_changes_nothing(client, rule):
    answer = client.post("/_sim/config", json={"fee_imposition": rule})

    assert answer.status_code == 400
    assert "fee_imposition" in answer.json["error"]
    assert client.get("/_sim/config").json["fee_imposition"] is None


def test_a_malformed_per_order_fee_is_400(client, snap_order):
    snap_order("ORDER-1", 10000)

    both = client.post("/_sim/transactions/ORDER-1/pay", json={"fee": 1, "fee_imposition": None})
    negative = client.post("/_sim/transactions/ORDER-1/pay", json={"fee": -5})
    empty = client.post("/_sim/transactions/ORDER-1/fee", json={})

    assert (both.status_code, negative.status_code, empty.status_code) == (400, 400, 400)
    assert client.get("/_sim/transactions").json[0]["transaction_status"] is None
