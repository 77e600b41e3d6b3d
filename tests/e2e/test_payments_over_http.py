"""A client app, a customer and Midtrans (the simulator), all over real HTTP, against the gateway
running under gunicorn with the repository's gunicorn.conf.py.

The customer's side is played with plain `requests`: the payment page's forms are read from its
HTML and submitted the way a browser would.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from urllib.parse import urljoin

import pytest
import requests
from e2e.servers import create_client_app, free_port, post_charge, start_gateway

pytestmark = pytest.mark.timeout(60)

SNAP_CREATE = "/snap/v1/transactions"


def new_order_id(label: str) -> str:
    return f"E2E-{label}-{uuid.uuid4().hex[:10]}"


def charge(
    stack, order_id: str, amount: int = 150000, *, url: str | None = None, headers=None, **extra
):
    extra = {"customer_details": {"first_name": "Budi", "email": "budi@example.com"}, **extra}
    gateway_url, headers = url or stack.gateway_url, headers or stack.headers
    return post_charge(gateway_url, headers, order_id, amount, expect=None, **extra)


def status_of(stack, order_id: str) -> requests.Response:
    return requests.get(f"{stack.gateway_url}/status/{order_id}", headers=stack.headers, timeout=30)


def wait_for_status(stack, order_id: str, wanted: str, timeout: float = 5.0) -> dict:
    """Poll GET /status like a client app would, until it reports `wanted`."""
    deadline = time.monotonic() + timeout
    while True:
        answer = status_of(stack, order_id)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        if body["transaction_status"] == wanted:
            return body
        assert time.monotonic() < deadline, f"status stayed {body['transaction_status']}"
        time.sleep(0.2)


def snap_creates(stack, order_id: str) -> list[dict]:
    """The Snap create requests the simulator received for this order (any Midtrans id)."""
    received = requests.get(f"{stack.simulator_url}/_sim/requests", timeout=5).json()
    return [
        entry
        for entry in received
        if entry["method"] == "POST"
        and entry["path"] == SNAP_CREATE
        and order_id in str((entry.get("json") or {}).get("transaction_details", {}))
    ]


def set_simulator(stack, **settings) -> None:
    requests.post(f"{stack.simulator_url}/_sim/config", json=settings, timeout=5).raise_for_status()


# -- the customer on the payment page ----------------------------------------------------------


class PageButtons(HTMLParser):
    """Every submit button of a page: its label, where it posts and what it sends."""

    def __init__(self):
        super().__init__()
        self.buttons: list[dict] = []
        self._action = None
        self._hidden: dict[str, str] = {}
        self._button: dict | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self._action, self._hidden = attrs.get("action"), {}
        elif tag == "input" and attrs.get("type") == "hidden":
            self._hidden[attrs["name"]] = attrs.get("value", "")
        elif tag == "button":
            fields = dict(self._hidden)
            if attrs.get("name"):
                fields[attrs["name"]] = attrs.get("value", "")
            self._button = {
                "action": attrs.get("formaction") or self._action,
                "fields": fields,
                "label": "",
            }

    def handle_data(self, data):
        if self._button is not None:
            self._button["label"] += data

    def handle_endtag(self, tag):
        if tag == "button" and self._button is not None:
            self._button["label"] = self._button["label"].strip()
            self.buttons.append(self._button)
            self._button = None


class Customer:
    """A customer with a browser-like session on the payment page."""

    def __init__(self, redirect_url: str):
        self.session = requests.Session()
        self.page = self.session.get(redirect_url, timeout=10)
        assert self.page.status_code == 200, self.page.text

    def click(self, label: str) -> None:
        parser = PageButtons()
        parser.feed(self.page.text)
        buttons = {button["label"]: button for button in parser.buttons}
        assert label in buttons, f"no button {label!r} on the page, only {sorted(buttons)}"
        button = buttons[label]
        self.page = self.session.post(
            urljoin(self.page.url, button["action"]), data=button["fields"], timeout=10
        )
        assert self.page.status_code == 200, self.page.text


# -- payments ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "button, final_status",
    [("Pay", "settlement"), ("Fail (deny)", "deny"), ("Expire", "expire"), ("Cancel", "cancel")],
)
def test_customer_outcome_on_payment_page_reaches_status(gateway, button, final_status):
    order_id = new_order_id(final_status)
    created = charge(gateway, order_id, 150000)
    assert created.status_code == 201, created.text
    link = created.json()
    assert link["order_id"] == order_id
    assert link["redirect_url"].startswith(gateway.simulator_url)

    customer = Customer(link["redirect_url"])
    assert "Rp150.000" in customer.page.text
    assert wait_for_status(gateway, order_id, "pending")["live"] is True

    customer.click("BCA Virtual Account")
    assert 'id="va-number"' in customer.page.text
    customer.click(button)

    status = wait_for_status(gateway, order_id, final_status)
    assert status["order_id"] == order_id
    assert status["payment_type"] == "bank_transfer"
    assert status["va_numbers"][0]["bank"] == "bca"
    assert "signature_key" not in status


def test_repeated_charge_answers_the_same_link_without_a_second_snap_call(gateway):
    order_id = new_order_id("replay")
    first = charge(gateway, order_id)
    again = charge(gateway, order_id)

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert len(snap_creates(gateway, order_id)) == 1

    different = charge(gateway, order_id, 99000)
    assert different.status_code == 409
    assert different.json()["error"]["code"] == "order_conflict"


def test_identical_charges_at_once_create_one_snap_transaction(gateway):
    set_simulator(gateway, latency_ms=300)  # a slow Midtrans widens the race
    order_id = new_order_id("race")
    start = threading.Barrier(20)

    def one_client(_):
        start.wait()
        return charge(gateway, order_id)

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(one_client, range(20)))

    created = [a for a in answers if a.status_code == 201]
    busy = [a for a in answers if a.status_code == 409]
    assert len(created) + len(busy) == 20, [a.status_code for a in answers]
    assert created, "no client got a payment link"
    assert len({a.json()["token"] for a in created}) == 1
    assert all(a.json()["error"]["code"] == "charge_in_progress" for a in busy)
    assert len(snap_creates(gateway, order_id)) == 1

    # A client told "in progress" retries and gets the same link.
    retry = charge(gateway, order_id)
    assert retry.status_code == 201
    assert retry.json()["token"] == created[0].json()["token"]


def test_fifty_different_charges_at_once_all_succeed(gateway):
    """A newly created app's first burst: every request also records the app's first use."""
    code = f"burst{uuid.uuid4().hex[:6]}"
    headers = create_client_app(gateway.env, gateway.workdir, code).headers
    order_ids = [new_order_id(f"burst{n}") for n in range(50)]
    start = threading.Barrier(50)

    def one_client(order_id):
        start.wait()
        return charge(gateway, order_id, 10000, headers=headers)

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(one_client, order_ids))

    assert [a.status_code for a in answers] == [201] * 50, [a.text for a in answers]
    assert len({a.json()["token"] for a in answers}) == 50
    log = gateway.gateway.log()
    assert "database is locked" not in log
    assert "Traceback" not in log


# -- Midtrans failing --------------------------------------------------------------------------


def test_midtrans_error_gives_502_then_the_retry_gets_a_working_link(gateway):
    set_simulator(gateway, fault=500, fault_count=1, fault_scope="snap")
    order_id = new_order_id("fault")

    failed = charge(gateway, order_id)
    assert failed.status_code == 502
    assert failed.json()["error"]["code"] == "midtrans_unavailable"

    retried = charge(gateway, order_id)
    assert retried.status_code == 201, retried.text
    customer = Customer(retried.json()["redirect_url"])
    customer.click("BCA Virtual Account")
    customer.click("Pay")
    wait_for_status(gateway, order_id, "settlement")


@pytest.fixture
def impatient_gateway(gateway):
    """A second gunicorn on the same database and simulator with MIDTRANS_TIMEOUT=1."""
    port = free_port()
    env = {
        **gateway.env,
        "MIDTRANS_TIMEOUT": "1",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "1",
    }
    process = start_gateway(env, gateway.workdir, log_dir=gateway.workdir, name="impatient")
    yield f"http://127.0.0.1:{port}"
    process.stop()


def test_midtrans_hanging_gives_504_in_time_then_the_retry_gets_a_working_link(
    gateway, impatient_gateway
):
    set_simulator(gateway, fault="hang", hang_seconds=5, fault_count=1, fault_scope="snap")
    order_id = new_order_id("hang")

    started = time.monotonic()
    timed_out = charge(gateway, order_id, url=impatient_gateway)
    assert timed_out.status_code == 504
    assert timed_out.json()["error"]["code"] == "midtrans_timeout"
    assert time.monotonic() - started < 4, "the client waited for Midtrans past MIDTRANS_TIMEOUT"

    retried = charge(gateway, order_id, url=impatient_gateway)
    assert retried.status_code == 201, retried.text
    customer = Customer(retried.json()["redirect_url"])
    assert order_id in customer.page.text
    customer.click("BCA Virtual Account")
    customer.click("Pay")
    wait_for_status(gateway, order_id, "settlement")


# -- metrics and logs ------------------------------------------------------------------------


def test_access_log_shows_requests_without_keys_or_query_strings(gateway):
    order_id = new_order_id("log")
    assert charge(gateway, order_id).status_code == 201
    answer = requests.get(
        f"{gateway.gateway_url}/status/{order_id}?token=query-secret-123",
        headers={**gateway.headers, "Authorization": "Bearer header-secret-456"},
        timeout=10,
    )
    assert answer.status_code == 200
    time.sleep(0.3)  # gunicorn writes the access line after the answer

    log = gateway.gateway.log()
    assert f'"GET /status/{order_id} HTTP/1.1" 200' in log
    assert '"POST /charge HTTP/1.1" 201' in log
    for secret in (gateway.headers["X-Api-Key"], "query-secret-123", "header-secret-456"):
        assert secret not in log


def charges_counted(metrics: str) -> float:
    found = re.search(
        r'^gateway_http_requests_total\{endpoint="/charge",method="POST",status="201"\} (\S+)$',
        metrics,
        re.MULTILINE,
    )
    return float(found.group(1)) if found else 0.0


def test_metrics_add_up_across_gunicorn_workers(gateway):
    before = charges_counted(requests.get(f"{gateway.gateway_url}/metrics", timeout=10).text)
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda n: charge(gateway, new_order_id(f"m{n}")), range(20)))
    assert [a.status_code for a in answers] == [201] * 20

    # Each scrape opens a new connection, so both workers answer some: all must agree.
    seen = {
        charges_counted(requests.get(f"{gateway.gateway_url}/metrics", timeout=10).text)
        for _ in range(10)
    }
    assert seen == {before + 20}
