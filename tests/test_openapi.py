"""The API reference (`GET /openapi.json`) against the running gateway.

schemathesis generates requests from the document, sends them to the app (WSGI, in process)
as a real app created through the CLI, and runs every check it has on each answer: no server
error, status codes, content types, headers and bodies as documented, valid data accepted,
invalid data rejected, authentication enforced, unsupported methods refused. Midtrans is
mocked with `responses`: a Snap 201 for any create, a settled status for any status call.
"""

from __future__ import annotations

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
from schemathesis.transport.wsgi import WSGITransport
from support import API_BASE, SNAP_URL, make_app

from app.openapi import build_document, error_codes_by_status
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
    re.escape(API_BASE) + r"/v2/(capture|[^/]+/(cancel|expire|approve|deny|refund))"
)


@pytest.fixture
def env(env):
    # schemathesis sends hundreds of calls as one app: the per-app limit is not under test.
    return {**env, "RATELIMIT_PER_APP": "100000 per minute"}


@pytest.fixture
def api_schema(app):
    return schemathesis.openapi.from_wsgi("/openapi.json", app)


@pytest.fixture
def gateway_app_key(cli):
    # No order prefix, so the documented 50-character order_id limit is this app's limit.
    return make_app(cli, "biling", "--order-prefix", "")


@pytest.fixture
def midtrans_mock():
    """Midtrans answering every Snap create, and every status call for an order it created."""
    amounts: dict[str, int] = {}

    def snap(request):
        details = json.loads(request.body)["transaction_details"]
        amounts[details["order_id"]] = details["gross_amount"]
        token = uuid.uuid4().hex
        redirect = f"https://app.sandbox.midtrans.com/snap/v4/redirection/{token}"
        return 201, {}, json.dumps({"token": token, "redirect_url": redirect})

    def status(request):
        order_id = unquote(STATUS_URL.match(request.url)["order"])
        answer = {
            "status_code": "200",
            "status_message": "Success, transaction is found",
            "transaction_id": str(uuid.uuid5(uuid.NAMESPACE_URL, order_id)),
            "order_id": order_id,
            "gross_amount": f"{amounts.get(order_id, 1)}.00",
            "currency": "IDR",
            "payment_type": "bank_transfer",
            "transaction_time": "2025-01-02 10:00:00",
            "transaction_status": "settlement",
            "fraud_status": "accept",
            "va_numbers": [{"bank": "bca", "va_number": "12345678901"}],
            "signature_key": "not-for-clients",
            "merchant_id": "G000000000",
        }
        return 200, {}, json.dumps(answer)

    def core_charge(request):
        body = json.loads(request.body)
        details = body["transaction_details"]
        amounts[details["order_id"]] = details["gross_amount"]
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

    def action(_request):
        # Midtrans accepts the action; the status API (above) says what became of it.
        return 200, {}, json.dumps({"status_code": "200", "status_message": "Success"})

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add_callback(responses.POST, SNAP_URL, callback=snap)
        rsps.add_callback(responses.POST, API_BASE + "/v2/charge", callback=core_charge)
        rsps.add_callback(responses.GET, STATUS_URL, callback=status)
        rsps.add_callback(responses.POST, ACTION_URL, callback=action)
        yield rsps


def _json_integers(value):
    """8527.0 as 8527: JSON Schema counts it an integer, the gateway wants no decimal point."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_json_integers(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_integers(v) for k, v in value.items()}
    return value


def map_case(ctx, case):
    """Make valid examples valid in the two ways JSON Schema cannot say: whole numbers are
    sent without a decimal point (SPEC: "no decimals"), and the items add up to the amount
    (the amount becomes the items' total, or the items go when no valid amount is)."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or not isinstance(case.body, dict):
        return case
    case.body = body = _json_integers(case.body)
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


@dataclass
class Run:
    seed: int
    examples: int = 0
    checks: int = 0
    server_errors: int = 0
    statuses: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    phases: dict = field(default_factory=dict)


def run_schemathesis(app, headers: dict[str, str], *, max_examples: int) -> Run:
    """Every phase (examples, coverage, fuzzing, stateful) with every check, as the CLI would."""
    load_all_checks()
    run = Run(seed=random.randrange(2**32))
    config = SchemathesisConfig(seed=run.seed)
    project = config.projects.override
    project.update(headers=headers)
    project.generation.update(max_examples=max_examples, database="none")
    project.checks.update(included_check_names=CHECKS.get_all_names())
    api = schemathesis.openapi.from_wsgi("/openapi.json", app, config=config)
    api.hook(map_case)
    for event in schemathesis.engine.from_schema(api).execute():
        if isinstance(event, events.PhaseStarted):
            started = time.monotonic()
        elif isinstance(event, events.PhaseFinished):
            run.phases[event.phase.name.value] = f"{time.monotonic() - started:.1f} s"
        elif isinstance(event, events.ScenarioFinished):
            for interaction in event.recorder.interactions.values():
                run.examples += 1
                status = interaction.response.status_code if interaction.response else None
                run.statuses[f"{interaction.request.method} {status}"] += 1
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
    run = run_schemathesis(app, gateway_app_key, max_examples=MAX_EXAMPLES)
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
