"""The /_sim/ control API: driving orders, faults, latency, logs and reset."""

import time

import pytest

ORDER = {"transaction_details": {"order_id": "ORDER-1", "gross_amount": 10000}}


def configure(client, **changes):
    answer = client.post("/_sim/config", json=changes)
    assert answer.status_code == 200, answer.json
    return answer.json


def create(client, auth, body=ORDER):
    return client.post("/snap/v1/transactions", json=body, headers=auth)


def test_pay_chooses_bank_transfer_bca_when_no_method_was_chosen(client, snap_order):
    snap_order("ORDER-1")

    status = client.post("/_sim/transactions/ORDER-1/pay").json

    assert (status["payment_type"], status["transaction_status"]) == ("bank_transfer", "settlement")
    assert status["va_numbers"][0]["bank"] == "bca"
    assert status["status_code"] == "200"


def test_pay_with_a_method_chooses_it(client, snap_order):
    snap_order("ORDER-1")

    status = client.post("/_sim/transactions/ORDER-1/pay", json={"payment_type": "qris"}).json

    assert (status["payment_type"], status["transaction_status"]) == ("qris", "settlement")


def test_pay_keeps_the_method_the_customer_chose(client, snap_order):
    snap_order("ORDER-1")
    client.post("/_sim/transactions/ORDER-1/choose", json={"payment_type": "echannel"})

    status = client.post("/_sim/transactions/ORDER-1/pay").json

    assert (status["payment_type"], status["transaction_status"]) == ("echannel", "settlement")


def test_asking_for_another_method_than_the_chosen_one_is_409(client, snap_order):
    snap_order("ORDER-1")
    client.post("/_sim/transactions/ORDER-1/choose", json={"payment_type": "echannel"})

    answer = client.post("/_sim/transactions/ORDER-1/pay", json={"payment_type": "gopay"})

    assert answer.status_code == 409
    assert "echannel" in answer.json["error"]


def test_choosing_twice_is_409(client, snap_order):
    snap_order("ORDER-1")
    client.post("/_sim/transactions/ORDER-1/choose")

    assert client.post("/_sim/transactions/ORDER-1/choose").status_code == 409


def test_a_transition_the_status_does_not_allow_is_409(client, snap_order):
    snap_order("ORDER-1")
    client.post("/_sim/transactions/ORDER-1/expire")

    answer = client.post("/_sim/transactions/ORDER-1/pay")

    assert answer.status_code == 409
    assert answer.json == {"error": "Merchant cannot modify the status of the transaction"}


def test_actions_on_an_unknown_order_are_404(client):
    assert client.post("/_sim/transactions/NOPE/pay").status_code == 404


def test_an_unknown_payment_type_is_400(client, snap_order):
    snap_order("ORDER-1")

    answer = client.post("/_sim/transactions/ORDER-1/pay", json={"payment_type": "cash"})

    assert answer.status_code == 400


def test_transactions_are_listed(client, snap_order):
    snap_order("ORDER-1")
    snap_order("ORDER-2")
    client.post("/_sim/transactions/ORDER-2/pay", json={"payment_type": "gopay"})

    listed = {tx["order_id"]: tx for tx in client.get("/_sim/transactions").json}

    assert listed["ORDER-1"]["transaction_status"] is None
    assert listed["ORDER-2"]["transaction_status"] == "settlement"


@pytest.mark.parametrize(
    "changes",
    [{"fault": 418}, {"fault_scope": "page"}, {"latency_ms": -1}, {"duplicate": "yes"}]
    + [{"fault_count": 0}, {"server_key": "x"}, {"nonsense": 1}],
)
def test_invalid_config_is_400_and_changes_nothing(client, changes):
    before = client.get("/_sim/config").json

    answer = client.post("/_sim/config", json={"latency_ms": 5, **changes})

    assert answer.status_code == 400
    assert client.get("/_sim/config").json == before


def test_the_config_never_shows_the_server_key(client, server_key):
    assert server_key not in client.get("/_sim/config").get_data(as_text=True)


def test_a_500_fault_on_snap_for_one_request(client, auth):
    configure(client, fault=500, fault_scope="snap", fault_count=1)

    failed = create(client, auth)
    core = client.get("/v2/ORDER-1/status", headers=auth)
    retried = create(client, auth)

    assert failed.status_code == 500
    assert failed.json == {
        "error_messages": ["Sorry, we encountered internal server error. We will fix this soon."]
    }
    # Core is not in the fault's scope: it answers that the order has no payment (yet)
    assert (core.status_code, core.json["status_code"]) == (404, "404")
    assert retried.status_code == 201  # the failed request reserved nothing


def test_a_503_fault_on_core_until_switched_off(client, auth):
    configure(client, fault=503, fault_scope="core")

    answers = [client.get("/v2/ORDER-1/status", headers=auth) for _ in range(3)]
    configure(client, fault=None)

    assert [answer.status_code for answer in answers] == [503, 503, 503]
    assert answers[0].json["status_code"] == "503"
    assert create(client, auth).status_code == 201
    answer = client.get("/v2/ORDER-1/status", headers=auth)  # answered again: no payment yet
    assert (answer.status_code, answer.json["status_code"]) == (404, "404")


def test_a_non_json_fault_answers_an_html_page(client, auth):
    configure(client, fault="non_json", fault_count=1)

    answer = create(client, auth)

    assert answer.status_code == 502
    assert answer.mimetype == "text/html"
    assert answer.get_data(as_text=True).startswith("<html>")


def test_a_hang_fault_delays_then_the_request_takes_effect(client, auth):
    configure(client, fault="hang", hang_seconds=0.3, fault_count=1)

    started = time.monotonic()
    answer = create(client, auth)

    assert time.monotonic() - started >= 0.3
    assert answer.status_code == 201
    kept = client.get("/_sim/transactions").json
    assert [(tx["order_id"], tx["token"]) for tx in kept] == [("ORDER-1", answer.json["token"])]


def test_latency_delays_api_requests(client, auth):
    configure(client, latency_ms=200)

    started = time.monotonic()
    create(client, auth)

    assert time.monotonic() - started >= 0.2


def test_requests_are_logged_without_the_authorization_header(client, auth):
    create(client, auth)
    client.get("/v2/ORDER-1/status", headers=auth)

    logged = client.get("/_sim/requests").json

    assert [(entry["method"], entry["path"]) for entry in logged] == [
        ("POST", "/snap/v1/transactions"),
        ("GET", "/v2/ORDER-1/status"),
    ]
    assert logged[0]["json"] == ORDER
    assert all(name.lower() != "authorization" for name in logged[0]["headers"])
    assert auth["Authorization"] not in str(logged)


def test_reset_forgets_orders_logs_and_settings(client, auth):
    configure(client, latency_ms=10, duplicate=True)
    create(client, auth)

    client.post("/_sim/reset")

    assert client.get("/_sim/transactions").json == []
    assert client.get("/_sim/requests").json == []
    assert client.get("/_sim/config").json["latency_ms"] == 0
    assert client.get("/_sim/config").json["duplicate"] is False
    assert create(client, auth).status_code == 201
