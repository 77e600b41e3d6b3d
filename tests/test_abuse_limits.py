"""Limits that strangers cannot turn against a real client app or against the database.

- API rate limits are counted per *authenticated* app; calls without the app's key (its code
  is not secret) are counted per address and answered 429 once over RATELIMIT_FAILED_AUTH.
- Rejected (forged, malformed) notifications are stored as a bounded excerpt with their
  reason, and counted per address (RATELIMIT_REJECTED_NOTIFICATIONS); verified ones never.
"""

from __future__ import annotations

import json

import pytest
import responses
from support import (
    USER_DOC_KEY,
    cli_for,
    make_app,
    signed,
    snap_ok,
    status_url,
    use_settings,
    user_app,
)

from app.services import gateway

FLOODER = {"REMOTE_ADDR": "203.0.113.7"}
CLIENT = {"REMOTE_ADDR": "198.51.100.20"}
SETTLED = {
    "status_code": "200",
    "transaction_id": "11111111-2222-3333-4444-555555555555",
    "order_id": "INV-1",
    "gross_amount": "1000.00",
    "currency": "IDR",
    "payment_type": "bank_transfer",
    "transaction_time": "2026-11-21 10:00:00",
    "transaction_status": "settlement",
    "fraud_status": "accept",
}


def metric(client, name: str, **labels: str) -> float:
    """The value of one sample in /metrics (0 when absent): counters are per process, so
    tests compare before and after."""
    text = client.get("/metrics").get_data(as_text=True)
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample == (f"{name}{{{wanted}}}" if labels else name):
            return float(value)
    return 0.0


@pytest.fixture
def limited_app(env, build_app):
    env["RATELIMIT_PER_APP"] = "5 per minute"
    app = build_app(env)
    use_settings(app, ratelimit_failed_auth="20 per minute")
    return app


def _status(client, headers, order_id="INV-1", **kw):
    return client.get(f"/status/{order_id}", headers=headers, **kw)


def test_a_flood_without_the_key_never_locks_the_real_app_out(limited_app, midtrans):
    client = limited_app.test_client()
    real = user_app(cli_for(limited_app))
    failures_before = metric(client, "gateway_auth_failures_total", limited="yes")
    passed_before = metric(client, "gateway_auth_failures_total", limited="no")
    limited_before = metric(client, "gateway_rate_limited_total", limit="failed_auth")

    # 300 calls naming the real app, with no key or a wrong one, from one address.
    answers = []
    for n in range(300):
        headers = {"X-App-Code": "biling"}
        if n % 2:
            headers["X-Api-Key"] = USER_DOC_KEY[:-1] + "0"
        if n % 3:
            answers.append(_status(client, headers, environ_base=FLOODER))
        else:
            body = {"order_id": f"F-{n}", "amount": 1000}
            answers.append(client.post("/charge", json=body, headers=headers, environ_base=FLOODER))
    assert [a.status_code for a in answers[:20]] == [401] * 20
    assert {a.status_code for a in answers[20:]} == {429}
    refused = answers[-1]
    assert refused.json["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert len(midtrans.calls) == 0

    # The real app, from another address and from the flooder's own, gets its full allowance
    # (RATELIMIT_PER_APP = 5), then the usual 429 of its own limit.
    snap_ok(midtrans)
    midtrans.add(responses.GET, status_url("INV-1"), json=SETTLED)
    charged = client.post(
        "/charge", json={"order_id": "INV-1", "amount": 1000}, headers=real, environ_base=CLIENT
    )
    assert charged.status_code == 201
    statuses = [_status(client, real, environ_base=CLIENT) for _ in range(2)]
    statuses += [_status(client, real, environ_base=FLOODER) for _ in range(2)]
    assert [s.status_code for s in statuses] == [200] * 4
    assert statuses[0].json["transaction_status"] == "settlement"
    own_limit = _status(client, real, environ_base=CLIENT)
    assert own_limit.status_code == 429
    assert own_limit.json["error"]["code"] == "rate_limited"
    assert int(own_limit.headers["Retry-After"]) >= 1

    # Counted in /metrics.
    assert metric(client, "gateway_auth_failures_total", limited="no") - passed_before == 20
    assert metric(client, "gateway_auth_failures_total", limited="yes") - failures_before == 280
    limited = metric(client, "gateway_rate_limited_total", limit="failed_auth")
    assert limited - limited_before == 280
    assert metric(client, "gateway_rate_limited_total", limit="client_app") >= 1


def test_failed_auth_is_limited_per_address(limited_app, midtrans):
    client = limited_app.test_client()
    wrong = {"X-App-Code": "biling", "X-Api-Key": "nope"}
    for _ in range(20):
        assert _status(client, wrong, environ_base=FLOODER).status_code == 401
    assert _status(client, wrong, environ_base=FLOODER).status_code == 429
    # Someone else with a stale key still hears 401, not the flooder's 429.
    assert _status(client, wrong, environ_base=CLIENT).status_code == 401


def test_behind_nginx_the_forwarded_address_is_the_one_counted(env, build_app, midtrans):
    env["PROXY_FIX_HOPS"] = "1"
    app = build_app(env)
    use_settings(app, ratelimit_failed_auth="3 per minute")
    client = app.test_client()
    wrong = {"X-App-Code": "biling", "X-Api-Key": "nope"}
    nginx = {"REMOTE_ADDR": "127.0.0.1"}

    def call(forwarded_for):
        headers = {**wrong, "X-Forwarded-For": forwarded_for}
        return _status(client, headers, environ_base=nginx).status_code

    assert [call("203.0.113.7") for _ in range(4)] == [401, 401, 401, 429]
    assert call("198.51.100.20") == 401


def test_the_failed_auth_limit_has_a_default(app):
    assert gateway(app).settings.ratelimit_failed_auth == "60 per minute"
    assert gateway(app).settings.ratelimit_rejected_notifications == "60 per hour"


def test_a_failing_limit_storage_still_answers_401_and_lets_the_real_app_in(
    env, build_app, midtrans
):
    env["RATELIMIT_STORAGE_URI"] = "redis://127.0.0.1:9/0"  # nothing listens there
    app = build_app(env)
    headers = make_app(cli_for(app), "shop")
    client = app.test_client()
    wrong = {"X-App-Code": "shop", "X-Api-Key": "nope"}
    assert {_status(client, wrong).status_code for _ in range(3)} == {401}
    snap_ok(midtrans)
    resp = client.post("/charge", json={"order_id": "S-1", "amount": 5}, headers=headers)
    assert resp.status_code == 201


# -- rejected notifications -----------------------------------------------------------------

PAD = "x" * (60 * 1024)


def forged(n: int) -> bytes:
    """~60 KiB: a notification with a wrong signature, or not JSON at all (every third)."""
    if n % 3 == 0:
        return b"{not json " + PAD.encode()
    body = {
        "order_id": "INV-1",
        "status_code": "200",
        "gross_amount": "1000.00",
        "transaction_status": "settlement",
        "signature_key": f"{n:0128x}",
        "pad": PAD,
    }
    return json.dumps(body).encode()


def notify(client, raw: bytes, addr=FLOODER):
    return client.post(
        "/notification", data=raw, content_type="application/json", environ_base=addr
    )


def stored_notifications(app) -> list[tuple[str, str | None, str]]:
    """(outcome, reason, body) of every stored notification."""
    from app.extensions import db
    from app.models import Notification

    with app.app_context():
        rows = db.session.query(Notification.outcome, Notification.reason, Notification.body)
        found = [(str(o), r, b) for o, r, b in rows.order_by(Notification.id)]
        db.session.commit()
    return found


def test_forged_notifications_are_stored_as_bounded_excerpts_with_their_reason(
    env, build_app, midtrans
):
    app = build_app(env)
    use_settings(app, ratelimit_rejected_notifications="2000 per hour")
    client = app.test_client()
    answers = [notify(client, forged(n)).status_code for n in range(1000)]
    assert answers.count(400) == 334 and answers.count(403) == 666

    notes = stored_notifications(app)
    assert len(notes) == 1000
    stored_bytes = sum(len(body.encode()) for _, _, body in notes)
    assert stored_bytes <= 1000 * 4096  # was 1000 x 60 KiB, ~60 MB
    for outcome, reason, body in notes:
        assert outcome == "rejected"
        assert reason.startswith(("signature_key does not match", "body is not JSON"))
        assert reason.endswith("bytes kept)") and len(body) <= 4096


def test_a_flood_of_forged_notifications_is_limited_per_address_and_verified_ones_never(
    env, build_app, midtrans
):
    app = build_app(env)  # the default limit: 60 rejected notifications an hour per address
    client = app.test_client()
    limited_before = metric(client, "gateway_rate_limited_total", limit="rejected_notification")

    answers = [notify(client, forged(n)) for n in range(1000)]
    codes = [a.status_code for a in answers]
    assert set(codes[:60]) <= {400, 403} and set(codes[60:]) == {429}
    assert answers[-1].json["error"]["code"] == "rate_limited"
    assert int(answers[-1].headers["Retry-After"]) >= 1
    notes = stored_notifications(app)
    assert len(notes) == 60  # beyond the limit: counted, not stored
    assert sum(len(body.encode()) for _, _, body in notes) <= 60 * 4096
    limited = metric(client, "gateway_rate_limited_total", limit="rejected_notification")
    assert limited - limited_before == 940

    # A real notification from the same address, right after: accepted and applied.
    headers = user_app(cli_for(app))
    snap_ok(midtrans)
    order = {"order_id": "INV-1", "amount": 1000}
    assert client.post("/charge", json=order, headers=headers).status_code == 201
    midtrans.add(responses.GET, status_url("INV-1"), json=SETTLED)
    real = {k: SETTLED[k] for k in ("order_id", "status_code", "gross_amount")}
    real = signed(real, transaction_status="settlement", fraud_status="accept")
    answer = notify(client, json.dumps(real).encode())
    assert answer.status_code == 200, answer.json
    assert answer.json["outcome"] == "applied"
    assert _status(client, headers).json["transaction_status"] == "settlement"

    # Another address's forgery is still stored (the limit is per address).
    assert notify(client, forged(1), addr=CLIENT).status_code == 403
    assert len(stored_notifications(app)) == 62
