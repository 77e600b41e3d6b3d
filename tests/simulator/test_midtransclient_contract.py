"""Contract: Midtrans's official Python client, unmodified, against the running simulator;
and the payment page used over real HTTP the way a customer's browser uses it."""

import re

import midtransclient
import pytest
import requests

CHARGES = {  # body extras, status after charge, the instruction field Midtrans answers
    "bca": (
        {"payment_type": "bank_transfer", "bank_transfer": {"bank": "bca"}},
        "pending",
        "va_numbers",
    ),
    "permata": (
        {"payment_type": "bank_transfer", "bank_transfer": {"bank": "permata"}},
        "pending",
        "permata_va_number",
    ),
    "echannel": (
        {"payment_type": "echannel", "echannel": {"bill_info1": "Pay"}},
        "pending",
        "bill_key",
    ),
    "gopay": ({"payment_type": "gopay"}, "pending", "actions"),
    "qris": ({"payment_type": "qris"}, "pending", "qr_string"),
    "card": (  # the token is issued by GET /v2/token for each charge (payment_body)
        {"payment_type": "credit_card", "credit_card": {}},
        "capture",
        "masked_card",
    ),
}
PAGE_FORM = re.compile(r'<form method="post" action="([^"]+/choose)"')


def payment_body(core, method):
    """CHARGES[method]'s body; a card gets a fresh token from GET /v2/token."""
    payment = CHARGES[method][0]
    if method == "card":
        token = card_token(core, "4811111111111114")
        payment = {**payment, "credit_card": {"token_id": token}}
    return payment


def point_at(client, simulator_url):
    client.api_config.SNAP_SANDBOX_BASE_URL = f"{simulator_url}/snap/v1"
    client.api_config.CORE_SANDBOX_BASE_URL = simulator_url
    return client


@pytest.fixture
def snap(simulator_url, server_key):
    client = midtransclient.Snap(
        is_production=False, server_key=server_key, custom_headers={}, proxies={}
    )
    return point_at(client, simulator_url)


@pytest.fixture
def core(simulator_url, server_key):
    client = midtransclient.CoreApi(
        is_production=False, server_key=server_key, custom_headers={}, proxies={}
    )
    return point_at(client, simulator_url)


def order(order_id, amount=150000, **extra):
    return {"transaction_details": {"order_id": order_id, "gross_amount": amount}, **extra}


def pay(simulator_url, order_id, **body):
    answer = requests.post(
        f"{simulator_url}/_sim/transactions/{order_id}/pay", json=body, timeout=5
    )
    answer.raise_for_status()


def test_snap_create_transaction(snap, simulator_url):
    created = snap.create_transaction(order("INV-2025-001"))

    assert re.fullmatch(r"[0-9a-f-]{36}", created["token"])
    assert created["redirect_url"] == f"{simulator_url}/snap/v4/redirection/{created['token']}"


def test_status_before_a_method_is_chosen_raises_with_404(snap, simulator_url):
    snap.create_transaction(order("ORDER-1"))

    with pytest.raises(midtransclient.error_midtrans.MidtransAPIError) as raised:
        snap.transactions.status("ORDER-1")
    legacy = {"core_errors_as_http": False}
    requests.post(f"{simulator_url}/_sim/config", json=legacy, timeout=5).raise_for_status()
    with pytest.raises(midtransclient.error_midtrans.MidtransAPIError) as raised_in_the_body:
        snap.transactions.status("ORDER-1")

    assert raised.value.api_response_dict["status_code"] == "404"
    assert raised.value.http_status_code == 404
    assert raised_in_the_body.value.api_response_dict["status_code"] == "404"
    assert raised_in_the_body.value.http_status_code == 200


def test_status_cancel_and_expire_through_the_client(snap, simulator_url):
    snap.create_transaction(order("ORDER-1"))
    snap.create_transaction(order("ORDER-2"))
    requests.post(f"{simulator_url}/_sim/transactions/ORDER-1/choose", timeout=5)
    requests.post(f"{simulator_url}/_sim/transactions/ORDER-2/choose", timeout=5)

    pending = snap.transactions.status("ORDER-1")
    canceled = snap.transactions.cancel("ORDER-1")
    expired = snap.transactions.expire("ORDER-2")  # status_code "407": the client does not raise

    assert (pending["transaction_status"], pending["status_code"]) == ("pending", "201")
    assert canceled["transaction_status"] == "cancel"
    assert (expired["transaction_status"], expired["status_code"]) == ("expire", "407")


def test_refund_through_the_client(snap, simulator_url):
    snap.create_transaction(order("ORDER-1"))
    pay(simulator_url, "ORDER-1", payment_type="gopay")

    refunded = snap.transactions.refund(
        "ORDER-1", {"refund_key": "rf-1", "amount": 50000, "reason": "customer asked"}
    )
    status = snap.transactions.status("ORDER-1")

    assert refunded["transaction_status"] == "partial_refund"
    assert status["refunds"][0]["reason"] == "customer asked"


def test_cancel_of_a_settled_transaction_raises_412(snap, simulator_url):
    snap.create_transaction(order("ORDER-1"))
    pay(simulator_url, "ORDER-1")

    with pytest.raises(midtransclient.error_midtrans.MidtransAPIError) as raised:
        snap.transactions.cancel("ORDER-1")

    assert raised.value.api_response_dict["status_code"] == "412"


@pytest.mark.parametrize("method", CHARGES)
def test_core_charge_for_each_method(core, method):
    _, status, instruction = CHARGES[method]
    charged = core.charge({**order("ORDER-1"), **payment_body(core, method)})

    assert charged["transaction_status"] == status
    assert instruction in charged
    assert core.transactions.status(charged["transaction_id"])["order_id"] == "ORDER-1"


def test_a_wrong_server_key_raises_401(snap, core):
    for client in (snap, core):
        client.api_config.server_key = "SB-Mid-server-wrong"

    with pytest.raises(midtransclient.error_midtrans.MidtransAPIError) as snap_error:
        snap.create_transaction(order("ORDER-1"))
    with pytest.raises(midtransclient.error_midtrans.MidtransAPIError) as core_error:
        core.charge({**order("ORDER-2"), "payment_type": "gopay"})

    assert snap_error.value.http_status_code == 401
    assert core_error.value.http_status_code == 401


def test_notification_url_headers_pass_through_the_client(simulator_url, server_key, receiver):
    snap = midtransclient.Snap(
        is_production=False,
        server_key=server_key,
        custom_headers={"X-Override-Notification": receiver.at("/via-client")},
        proxies={},
    )
    point_at(snap, simulator_url)
    snap.create_transaction(order("ORDER-1"))

    pay(simulator_url, "ORDER-1")

    assert [r.path for r in receiver.arrived(2)] == ["/via-client", "/via-client"]


def test_the_payment_page_over_http(snap, simulator_url):
    created = snap.create_transaction(order("ORDER-PAGE", 275000))

    with requests.Session() as browser:
        page = browser.get(created["redirect_url"], timeout=5)
        choose_url = PAGE_FORM.search(page.text).group(1)
        chosen = browser.post(
            f"{simulator_url}{choose_url}", data={"method": "bank_transfer:permata"}, timeout=5
        )
        va_number = re.search(r'id="va-number">(\d+)<', chosen.text).group(1)
        paid = browser.post(f"{created['redirect_url']}/pay", timeout=5)

    assert "Rp275.000" in page.text
    assert chosen.url == created["redirect_url"]  # redirected back to the page after choosing
    assert paid.status_code == 200
    status = snap.transactions.status("ORDER-PAGE")
    assert status["transaction_status"] == "settlement"
    assert status["permata_va_number"] == va_number


CLIENT_KEY = "SB-Mid-client-simulator"


def card_token(core, number):
    return core.card_token(
        {
            "card_number": number,
            "card_exp_month": "12",
            "card_exp_year": "2099",
            "card_cvv": "123",
            "client_key": CLIENT_KEY,
        }
    )["token_id"]


def card_order(order_id, token_id, amount=150000, **card):
    return {
        **order(order_id, amount),
        "payment_type": "credit_card",
        "credit_card": {"token_id": token_id, **card},
    }


def test_card_token_and_charge_through_the_client(core):
    token_id = card_token(core, "4811 1111 1111 1114")

    charged = core.charge(card_order("ORDER-1", token_id))

    assert token_id.startswith("481111-1114-")
    assert (charged["status_code"], charged["transaction_status"]) == ("200", "capture")
    with pytest.raises(midtransclient.error_midtrans.MidtransAPIError) as reused:
        core.charge(card_order("ORDER-2", token_id))
    assert reused.value.api_response_dict["status_code"] == "411"


def test_a_3ds_charge_through_the_client_answers_a_redirect_url(core, simulator_url):
    token_id = card_token(core, "4811111111111114")

    charged = core.charge(card_order("ORDER-1", token_id, authentication=True))
    page = requests.get(charged["redirect_url"], timeout=5)
    done = requests.post(
        charged["redirect_url"], data={"otp": "112233", "action": "authenticate"}, timeout=5
    )

    assert (charged["status_code"], charged["transaction_status"]) == ("201", "pending")
    assert charged["redirect_url"].startswith(f"{simulator_url}/v2/token/rba/redirect/")
    assert page.status_code == done.status_code == 200
    assert core.transactions.status("ORDER-1")["transaction_status"] == "capture"


def test_authorize_and_capture_through_the_client(core):
    charged = core.charge(
        card_order("ORDER-1", card_token(core, "4811111111111114"), 200000, type="authorize")
    )

    captured = core.capture({"transaction_id": charged["transaction_id"], "gross_amount": 120000})

    assert charged["transaction_status"] == "authorize"
    assert (captured["transaction_status"], captured["gross_amount"]) == ("capture", "120000.00")
    with pytest.raises(midtransclient.error_midtrans.MidtransAPIError) as again:
        core.capture({"transaction_id": charged["transaction_id"], "gross_amount": 1000})
    assert again.value.api_response_dict["status_code"] == "412"


def test_approve_and_deny_a_challenge_through_the_client(core):
    core.charge(card_order("ORDER-1", card_token(core, "4511111111111117")))
    core.charge(card_order("ORDER-2", card_token(core, "5510111111111115")))

    held = core.transactions.status("ORDER-1")
    approved = core.transactions.approve("ORDER-1")
    denied = core.transactions.deny("ORDER-2")

    assert (held["status_code"], held["fraud_status"]) == ("201", "challenge")
    assert (approved["transaction_status"], approved["fraud_status"]) == ("capture", "accept")
    assert (denied["status_code"], denied["transaction_status"]) == ("202", "deny")
    with pytest.raises(midtransclient.error_midtrans.MidtransAPIError) as decided:
        core.transactions.approve("ORDER-1")
    assert decided.value.api_response_dict["status_code"] == "412"


def test_refunds_through_the_core_client(core, simulator_url):
    core.charge({**order("CARD"), **payment_body(core, "card")})
    core.charge({**order("VA"), **CHARGES["bca"][0]})
    pay(simulator_url, "VA")

    refunded = core.transactions.refund("CARD", {"refund_key": "r1", "amount": 50000})
    direct = core.transactions.refundDirect("CARD", {"refund_key": "r2", "amount": 100000})
    with pytest.raises(midtransclient.error_midtrans.MidtransAPIError) as refused:
        core.transactions.refund("VA", {"refund_key": "r3", "amount": 1000})

    assert (refunded["status_code"], refunded["transaction_status"]) == ("200", "partial_refund")
    assert (direct["refund_amount"], direct["transaction_status"]) == ("100000.00", "refund")
    assert refused.value.api_response_dict["status_code"] == "412"
