"""The API reference (`GET /openapi.json`) against the running gateway.

schemathesis generates requests from the document, sends them to the app (WSGI, in process)
as a real app created through the CLI, and runs every check it has on each answer: no server
error, status codes, content types, headers and bodies as documented, valid data accepted,
invalid data rejected, authentication enforced, unsupported methods refused. Midtrans is
mocked with `responses`: a Snap 201 for any create, and a payment for each order whose state
depends on the order id (authorized, challenged, pending or settled: `FIRST_STATES`), so every
payment action (the app may refund) meets orders it can act on (200), orders it cannot (409),
and orders it already acted on (200 again); the mock applies each action as Midtrans would.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import unquote

import pytest
import responses
import schemathesis
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events
from schemathesis.generation.meta import TestPhase
from schemathesis.transport.wsgi import WSGITransport
from support import API_BASE, SNAP_URL, make_app

from app.openapi import build_document, error_codes_by_status
from app.payments.actions import ACTIONS
from app.payments.lifecycle import status_view
from app.schemas import AMOUNT_MAX, ORDER_ID_MAX, charge_request_schema

# What Midtrans's Core charge answers carry for each payment type (the mock's answers).
QR = [{"name": "generate-qr-code", "method": "GET", "url": "https://api.mt/v2/qris/x/qr-code"}]
CORE_DETAILS = {
    "bank_transfer": {"va_numbers": [{"bank": "bca", "va_number": "12345000001"}]},
    "echannel": {"bill_key": "990000000260", "biller_code": "70012"},
    "gopay": {"actions": QR},
    "qris": {"qr_string": "000201", "actions": QR},
    "credit_card": {"redirect_url": "https://api.mt/v2/token/rba/redirect/x"},
}
# Enough examples to reach every documented answer, few enough for a run well under a minute.
MAX_EXAMPLES = 15
STATUS_URL = re.compile(re.escape(API_BASE) + r"/v2/(?P<order>[^/]+)/status$")
ACTION_URL = re.compile(
    re.escape(API_BASE)
    + r"/v2/(?:capture|(?P<ident>[^/]+)/(?P<action>cancel|expire|approve|deny|refund))"
    + r"(?:/online/direct)?$"
)
# A payment's first state at Midtrans (transaction_status, fraud_status, payment_type), chosen
# by the order id: each action has orders it may act on and orders it may not. None: nobody
# chose a payment method on the Snap page yet (Midtrans has no transaction: its 404).
FIRST_STATES = [
    (None, None, None),
    ("authorize", "accept", "credit_card"),
    ("capture", "challenge", "credit_card"),
    ("pending", None, "bank_transfer"),
    ("settlement", "accept", "bank_transfer"),
]
# What Midtrans does to a payment in these states (anything else is its 412).
MOVES = {
    "cancel": ({"pending", "authorize", "capture/challenge"}, ("cancel", None)),
    "expire": ({"pending"}, ("expire", None)),
    "approve": ({"capture/challenge"}, ("capture", "accept")),
    "deny": ({"capture/challenge"}, ("deny", "deny")),
    "capture": ({"authorize"}, ("capture", "accept")),
}
REFUNDABLE = {"settlement", "capture/accept", "partial_refund"}


@pytest.fixture
def env(env):
    # schemathesis sends hundreds of calls as one app: the per-app limit is not under test.
    return {**env, "RATELIMIT_PER_APP": "100000 per minute"}


@pytest.fixture
def api_schema(app):
    return schemathesis.openapi.from_wsgi("/openapi.json", app)


@pytest.fixture
def gateway_app_key(cli):
    # No order prefix, so the documented 50-character order_id limit is this app's limit; it
    # may refund, so that refunds' bodies get past the permission check.
    headers = make_app(cli, "biling", "--order-prefix", "")
    assert "may now refund" in cli("apps", "allow-refunds", "biling").output
    return headers


@dataclass
class Payment:
    """One order's payment as the mock Midtrans holds it."""

    order_id: str
    amount: int
    status: str | None
    fraud_status: str | None
    payment_type: str | None
    refunded: int = 0

    @property
    def state(self) -> str:
        return f"{self.status}/{self.fraud_status}" if self.status == "capture" else self.status

    @property
    def transaction_id(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, self.order_id))


def first_payment(order_id: str, amount: int, *, chosen: bool = False) -> Payment:
    """The payment of a new order; `chosen`: the payer has chosen a method (a Core charge)."""
    digest = hashlib.sha256(order_id.encode("utf-8", "surrogatepass")).digest()
    states = FIRST_STATES[1:] if chosen else FIRST_STATES
    status, fraud, kind = states[digest[0] % len(states)]
    return Payment(order_id, amount, status, fraud, kind)


@pytest.fixture
def midtrans_mock():
    """Midtrans answering every Snap create and Core charge, every status call for an order it
    created (the payment's state), and every action on a payment as Midtrans would: done
    when the state allows it, else its 412."""
    payments: dict[str, Payment] = {}  # by order id and by transaction id
    plans: dict[str, tuple] = {}  # order id: its first state, chosen by the test

    def created(order_id: str, amount: int, *, chosen: bool = False) -> None:
        payment = first_payment(order_id, amount, chosen=chosen)
        if order_id in plans:
            payment.status, payment.fraud_status, payment.payment_type = plans.pop(order_id)
        payments[order_id] = payments[payment.transaction_id] = payment

    def no_transaction():
        answer = {"status_code": "404", "status_message": "Transaction doesn't exist."}
        return 404, {}, json.dumps(answer)

    def snap(request):
        details = json.loads(request.body)["transaction_details"]
        created(details["order_id"], details["gross_amount"])
        token = uuid.uuid4().hex
        redirect = f"https://app.sandbox.midtrans.com/snap/v4/redirection/{token}"
        return 201, {}, json.dumps({"token": token, "redirect_url": redirect})

    def status(request):
        order_id = unquote(STATUS_URL.match(request.url)["order"])
        payment = payments.get(order_id) or first_payment(order_id, 1)
        if payment.status is None:
            return no_transaction()
        answer = {
            "status_code": "201" if payment.status == "pending" else "200",
            "status_message": "Success, transaction is found",
            "transaction_id": payment.transaction_id,
            "order_id": payment.order_id,
            "gross_amount": f"{payment.amount}.00",
            "currency": "IDR",
            "payment_type": payment.payment_type,
            "transaction_time": "2025-01-02 10:00:00",
            "transaction_status": payment.status,
            "va_numbers": [{"bank": "bca", "va_number": "12345678901"}],
            "signature_key": "not-for-clients",
            "merchant_id": "G000000000",
        }
        if payment.fraud_status:
            answer["fraud_status"] = payment.fraud_status
        if payment.refunded:
            answer["refund_amount"] = f"{payment.refunded}.00"
        return 200, {}, json.dumps(answer)

    def core_charge(request):
        body = json.loads(request.body)
        details = body["transaction_details"]
        created(details["order_id"], details["gross_amount"], chosen=True)
        kind = body["payment_type"]
        answer = {
            "status_code": "201",
            "status_message": "Success, transaction is created",
            "transaction_id": str(uuid.uuid5(uuid.NAMESPACE_URL, details["order_id"])),
            "order_id": details["order_id"],
            "gross_amount": f"{details['gross_amount']}.00",
            "currency": "IDR",
            "payment_type": kind,
            "transaction_time": "2025-01-02 10:00:00",
            "transaction_status": "pending",
            "fraud_status": "accept",
            "expiry_time": "2099-01-02 10:15:00",
            **CORE_DETAILS[kind],
        }
        return 200, {}, json.dumps(answer)

    def action(request):
        # Midtrans does it or refuses; the status API (above) says what became of it.
        found = ACTION_URL.match(request.url)
        body = json.loads(request.body or b"{}")
        name = found["action"] or "capture"
        ident = unquote(found["ident"]) if found["ident"] else body.get("transaction_id")
        payment = payments.get(ident)
        if payment is None or payment.status is None:
            return no_transaction()
        if name == "refund" and payment.state in REFUNDABLE:
            left = payment.amount - payment.refunded
            if not 1 <= body["amount"] <= left:
                refused = {"status_code": "412", "status_message": "Refund amount is invalid."}
                return 412, {}, json.dumps(refused)
            payment.refunded += body["amount"]
            payment.status = "refund" if payment.refunded == payment.amount else "partial_refund"
        elif name in MOVES and payment.state in MOVES[name][0]:
            payment.status, payment.fraud_status = MOVES[name][1]
            if name == "capture":
                payment.amount = body["gross_amount"]
        else:
            refused = {"status_code": "412", "status_message": "Cannot modify the status."}
            return 412, {}, json.dumps(refused)
        return 200, {}, json.dumps({"status_code": "200", "status_message": "Success"})

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add_callback(responses.POST, SNAP_URL, callback=snap)
        rsps.add_callback(responses.POST, API_BASE + "/v2/charge", callback=core_charge)
        rsps.add_callback(responses.GET, STATUS_URL, callback=status)
        rsps.add_callback(responses.POST, ACTION_URL, callback=action)
        yield plans


def _json_integers(value):
    """8527.0 as 8527: JSON Schema counts it an integer, the gateway wants no decimal point."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_json_integers(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_integers(v) for k, v in value.items()}
    return value


ACTION_PATH = re.compile(r"/transactions/\{order_id\}/(?P<action>\w+)")


@dataclass
class FreshOrders:
    """Orders for the payment actions' valid cases: a random order id is almost never an
    order, so each such case gets a new order of the test app (through /charge and /status),
    its payment in the next of FIRST_STATES for that action: every action meets orders it may
    act on (200) and orders it may not (409)."""

    client: object
    headers: dict[str, str]
    plans: dict[str, tuple]
    turns: Counter = field(default_factory=Counter)
    amount: int = 500_000

    def __call__(self, action: str) -> str:
        turn = self.turns[action]
        self.turns[action] += 1
        order_id = f"act-{action}-{turn}"
        self.plans[order_id] = FIRST_STATES[turn % len(FIRST_STATES)]
        body = {"order_id": order_id, "amount": self.amount}
        made = self.client.post("/charge", json=body, headers=self.headers)
        assert made.status_code == 201, made.get_data(as_text=True)
        self.client.get(f"/status/{order_id}", headers=self.headers)  # the gateway learns it
        return order_id


def mapping(fresh_orders: FreshOrders | None):
    def map_case(ctx, case):
        """Make valid examples valid in the ways JSON Schema cannot say: whole numbers are
        sent without a decimal point (SPEC: "no decimals"), the items add up to the amount
        (the amount becomes the items' total, or the items go when no valid amount is), and
        a payment action's amount is within the order's (of a fresh order, or left out on
        an order a link names)."""
        meta = case.meta
        if meta is None or not meta.generation.mode.is_positive:
            return case
        action = ACTION_PATH.fullmatch(case.operation.path)
        fresh = (
            action is not None
            and fresh_orders is not None
            and meta.phase.name != TestPhase.STATEFUL
        )
        if fresh:
            case.path_parameters = {
                **(case.path_parameters or {}),
                "order_id": fresh_orders(action["action"]),
            }
        if not isinstance(case.body, dict):
            return case
        case.body = body = _json_integers(case.body)
        if action is not None and isinstance(body.get("amount"), int):
            if fresh:
                body["amount"] = min(body["amount"], fresh_orders.amount)
            else:
                body.pop("amount")
        # An order's own callback URL must reach an address the callback policy allows (a DNS
        # lookup), for an app with a signing secret: nothing a schema can say.
        body.pop("callback_url", None)
        items = body.get("item_details")
        if isinstance(items, list) and items:
            total = sum(item["price"] * item["quantity"] for item in items)
            if 1 <= total <= AMOUNT_MAX:
                body["amount"] = total
            else:
                body.pop("item_details")
        return case

    return map_case


@dataclass
class Run:
    seed: int
    examples: int = 0
    checks: int = 0
    server_errors: int = 0
    statuses: Counter = field(default_factory=Counter)
    routes: Counter = field(default_factory=Counter)  # ("POST /charge", 201): answers
    problems: list[str] = field(default_factory=list)
    phases: dict = field(default_factory=dict)


def run_schemathesis(
    app, headers: dict[str, str], *, max_examples: int, plans: dict[str, tuple] | None = None
) -> Run:
    """Every phase (examples, coverage, fuzzing, stateful) with every check, as the CLI would.
    With the mock's `plans`, the payment actions' valid cases act on fresh orders."""
    load_all_checks()
    run = Run(seed=random.randrange(2**32))
    config = SchemathesisConfig(seed=run.seed)
    project = config.projects.override
    project.update(headers=headers)
    project.generation.update(max_examples=max_examples, database="none")
    project.checks.update(included_check_names=CHECKS.get_all_names())
    api = schemathesis.openapi.from_wsgi("/openapi.json", app, config=config)
    fresh = FreshOrders(app.test_client(), headers, plans) if plans is not None else None
    api.hook(mapping(fresh))
    for event in schemathesis.engine.from_schema(api).execute():
        if isinstance(event, events.PhaseStarted):
            started = time.monotonic()
        elif isinstance(event, events.PhaseFinished):
            run.phases[event.phase.name.value] = f"{time.monotonic() - started:.1f} s"
        elif isinstance(event, events.ScenarioFinished):
            for case_id, interaction in event.recorder.interactions.items():
                run.examples += 1
                status = interaction.response.status_code if interaction.response else None
                run.statuses[f"{interaction.request.method} {status}"] += 1
                case = event.recorder.cases.get(case_id)
                if case is not None and interaction.request.method == case.value.method.upper():
                    run.routes[(case.value.operation.label, status)] += 1
                if status is not None and status >= 500:
                    run.server_errors += 1
            for case_id, nodes in event.recorder.checks.items():
                for node in nodes:
                    run.checks += 1
                    if node.failure_info is not None:
                        failure = node.failure_info.failure
                        interaction = event.recorder.interactions.get(case_id)
                        answer = interaction.response if interaction else None
                        run.problems.append(
                            f"{event.recorder.label}: {node.name}: {failure.title}\n"
                            f"{failure.message}\n{node.failure_info.code_sample}\n"
                            f"-> {answer.status_code if answer else None} "
                            f"{answer.content[:500] if answer else b''}"
                        )
        elif isinstance(event, events.NonFatalError | events.FatalError):
            where = getattr(event, "label", "") or ""
            run.problems.append(f"error: {where} {event.info.title}: {event.info.message}")
        elif isinstance(event, events.EngineFinished):
            run.problems.extend(f"after run: {f.title}: {f.message}" for f in event.failures)
    return run


@pytest.fixture
def wsgi_probes(monkeypatch):
    """schemathesis 4.32.5 sends the ignored_auth check's probes to a WSGI app with the
    network-only option `max_redirects`, which werkzeug's test client refuses; drop it."""
    send = WSGITransport.send

    def send_in_process(self, case, *, session=None, **kwargs):
        if session is None:
            for name in ("max_redirects", "verify", "cert", "proxies"):
                kwargs.pop(name, None)
        return send(self, case, session=session, **kwargs)

    monkeypatch.setattr(WSGITransport, "send", send_in_process)


def test_api_behaves_as_documented(app, gateway_app_key, midtrans_mock, wsgi_probes):
    started = time.monotonic()
    run = run_schemathesis(app, gateway_app_key, max_examples=MAX_EXAMPLES, plans=midtrans_mock)
    summary = (
        f"schemathesis seed {run.seed}: {run.examples} requests, {run.checks} checks, "
        f"phases {run.phases}, {time.monotonic() - started:.1f} s, "
        f"answers {dict(sorted(run.statuses.items()))}"
    )
    print(summary)
    assert not run.problems, summary + "\n\n" + "\n\n".join(dict.fromkeys(run.problems))
    assert run.server_errors == 0, summary
    # It did reach the documented successes, not just the errors.
    assert run.statuses["POST 201"] and run.statuses["GET 200"], summary
    # Every payment action acted (200) and was refused for the order's state (409).
    actions = {
        label: {status: n for (at, status), n in run.routes.items() if at == label}
        for label in (f"POST /transactions/{{order_id}}/{name}" for name in ACTIONS)
    }
    print("payment actions' answers:", actions)
    for label, answers in actions.items():
        assert answers.get(200) and answers.get(409), f"{label}: {answers}\n{summary}"


def test_document_is_valid_openapi_3_1(api_schema):
    # Loading validates the document against the OpenAPI 3.1 meta-schema.
    assert api_schema.raw_schema["openapi"] == "3.1.0"
    api_schema.validate()


def test_every_public_route_is_documented(app):
    documented = {re.sub(r"\{(\w+)\}", r"<\1>", path) for path in build_document()["paths"]}
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"<\1>", rule.rule)
        if path.startswith(("/admin", "/static", "/_")):
            continue
        assert path in documented, f"{rule.rule} is not in /openapi.json"
        operation = build_document()["paths"][re.sub(r"<(\w+)>", r"{\1}", path)]
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in operation, f"{method} {rule.rule} is not documented"


def test_client_api_documents_its_auth_and_every_error(client):
    doc = client.get("/openapi.json").get_json()
    schemes = doc["components"]["securitySchemes"]
    assert {(s["in"], s["name"]) for s in schemes.values()} == {
        ("header", "X-App-Code"),
        ("header", "X-Api-Key"),
    }
    charge = doc["paths"]["/charge"]["post"]
    status = doc["paths"]["/status/{order_id}"]["get"]
    assert charge["security"] == status["security"] == [{"appCode": [], "apiKey": []}]
    assert set(charge["responses"]) == {"201", "400", "401", "409", "413", "429", "502", "504"}
    assert set(status["responses"]) == {"200", "401", "404", "429"}
    assert set(doc["paths"]["/readyz"]["get"]["responses"]) == {"200", "503"}
    assert {"400", "403", "413", "503"} <= set(doc["paths"]["/notification"]["post"]["responses"])
    assert charge["responses"]["429"]["headers"]["Retry-After"]["required"] is True
    conflict = charge["responses"]["409"]["content"]["application/json"]["schema"]
    assert conflict["allOf"][1]["properties"]["error"]["properties"]["code"]["enum"] == [
        "charge_in_progress",
        "order_conflict",
    ]
    # The error codes come from the exception classes, including Midtrans's.
    assert error_codes_by_status()[502] == ["midtrans_auth_failed", "midtrans_unavailable"]
    assert error_codes_by_status()[504] == ["midtrans_timeout"]


def test_charge_schema_is_the_parsers(client):
    body = client.get("/openapi.json").get_json()["components"]["schemas"]["ChargeRequest"]
    assert body == json.loads(json.dumps(charge_request_schema()))
    order_id = body["properties"]["order_id"]
    assert order_id["maxLength"] == ORDER_ID_MAX
    assert "prefix" in order_id["description"]
    assert body["properties"]["amount"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": AMOUNT_MAX,
        "description": body["properties"]["amount"]["description"],
    }


def test_status_schema_requires_what_every_status_answer_has(app):
    from app.models import Transaction

    txn = Transaction(order_id="INV-1", amount=1000, status="pending")
    documented = build_document()["components"]["schemas"]["Status"]
    keys = set(status_view(txn, live=False))
    assert set(documented["required"]) <= keys
    assert keys <= set(documented["properties"])


def test_docs_page_is_served_locally(client):
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<script>" not in html and "http" not in html.replace("http-equiv", "")
    for asset in re.findall(r'(?:src|href)="([^"]+)"', html):
        with client.get(asset) as served:
            assert served.status_code == 200, asset
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]


def test_payment_actions_document_their_own_conflicts_and_repeats(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    for name in ACTIONS:
        operation = paths[f"/transactions/{{order_id}}/{name}"]["post"]
        conflict = operation["responses"]["409"]
        codes = conflict["content"]["application/json"]["schema"]["allOf"][1]["properties"]
        codes = codes["error"]["properties"]["code"]["enum"]
        refunds = name == "refund"
        expected = (
            ["invalid_state", "order_conflict", "refund_in_progress"]
            if refunds
            else ["invalid_state"]
        )
        assert codes == expected, name
        for code in codes:
            assert f"`{code}`" in conflict["description"], name
        assert "charge_in_progress" not in conflict["description"]
        assert ("Retry-After" in conflict.get("headers", {})) is refunds, name
        assert "Idempotent" in operation["description"], name
        assert "midtrans_rejected" in operation["description"], name
    # Each repeat the documentation promises is one the code answers with 200.
    from app.openapi import DONE_WORDS
    from app.payments.actions import RULES

    assert set(DONE_WORDS) == {name for name, rule in RULES.items() if rule.done}
