"""Helpers and constants shared by the tests (imported as `support`)."""

from __future__ import annotations

import base64
import copy
import os

import responses
from midtrans_samples import SNAP_NOTIFICATION_SETTLEMENT
from sqlalchemy import text

from app.extensions import db
from app.midtrans import signature_for
from bench.processes import ClientApp

SERVER_KEY = "SB-Mid-server-test"
API_BASE = "https://api.midtrans.test"
SNAP_BASE = "https://app.midtrans.test/snap/v1"
SNAP_URL = SNAP_BASE + "/transactions"
USER_DOC_KEY = "fb93b4e802314a189809f393d913bba6"


def database_url(tmp_path) -> str:
    return os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{tmp_path / 'gateway.db'}"


def reset_database() -> None:
    """Drop and re-create every table (both backends), so each test starts empty."""
    if db.engine.dialect.name == "postgresql":
        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    else:
        db.drop_all()
    db.create_all()


def cli_for(flask_app):
    """`run(*args)`: the gateway's command line (`flask ARGS`) on `flask_app`; asserts that it
    succeeds unless given `expect_ok=False`; the result."""
    runner = flask_app.test_cli_runner()

    def run(*args: str, expect_ok: bool = True):
        result = runner.invoke(args=list(args))
        if expect_ok:
            assert result.exit_code == 0, result.output
        return result

    return run


def user_app(cli) -> dict[str, str]:
    """The user's own app: code `biling`, the key from their document, no prefix; its headers."""
    return make_app(cli, "biling", "--api-key", USER_DOC_KEY, "--order-prefix", "")


def make_app(cli, code: str, *extra: str) -> dict[str, str]:
    """Create an app through the real CLI; its auth headers."""
    result = cli("apps", "create", code, "--name", f"{code} app", *extra)
    key = result.output.strip().splitlines()[-1]
    return {"X-App-Code": code, "X-Api-Key": key}


def hook_app(cli, code: str, url: str, *extra: str, name: str | None = None) -> ClientApp:
    """Create an app (named `name`, else its code) whose callbacks go to `url`: its auth
    headers and its signing secret."""
    result = cli("apps", "create", code, "--name", name or code, "--callback-url", url, *extra)
    lines = result.output.strip().splitlines()
    secret = next(line.split(": ", 1)[1] for line in lines if line.startswith("Signing secret:"))
    return ClientApp({"X-App-Code": code, "X-Api-Key": lines[-1]}, secret)


def basic_auth() -> str:
    return "Basic " + base64.b64encode(f"{SERVER_KEY}:".encode()).decode()


def snap_ok(rsps, token: str = "tok-123") -> None:
    rsps.add(
        responses.POST,
        SNAP_URL,
        json={
            "token": token,
            "redirect_url": f"https://app.sandbox.midtrans.com/snap/v4/redirection/{token}",
        },
        status=201,
    )


def snap_rejects(rsps, status: int, *messages: str) -> None:
    """Snap answers the next create with HTTP `status` and these `error_messages`."""
    rsps.add(responses.POST, SNAP_URL, json={"error_messages": list(messages)}, status=status)


def charge(
    client,
    headers,
    midtrans,
    order_id: str = "C-1",
    amount: int = 7000,
    *,
    expect: int | None = 201,
    **extra,
):
    """POST /charge as a client app with `headers`, Snap (mocked in `midtrans`; None where the
    test set Snap's answers up itself) making a link whose token is `tok-ORDER_ID`; the
    answer, asserted to be `expect` (None: the test looks at it itself)."""
    if midtrans is not None:
        snap_ok(midtrans, token=f"tok-{order_id}")
    body = {"order_id": order_id, "amount": amount, **extra}
    answer = client.post("/charge", json=body, headers=headers)
    if expect is not None:
        assert answer.status_code == expect, answer.get_data(as_text=True)
    return answer


def signed(base: dict | None = None, *, server_key: str = SERVER_KEY, **changes) -> dict:
    """A Midtrans notification: `base` (Midtrans's own settlement sample by default) with
    `changes`, signed again as Midtrans signs (order_id + status_code + gross_amount + the
    server key), so that a test changes one thing and still sends a genuine notification."""
    body = {**copy.deepcopy(base or SNAP_NOTIFICATION_SETTLEMENT), **changes}
    body["signature_key"] = signature_for(
        body["order_id"], body["status_code"], body["gross_amount"], server_key
    )
    return body


# The status_code Midtrans puts in a notification (not the status API's: expire is 407 there).
NOTIFICATION_CODES = {
    "pending": "201",
    "settlement": "200",
    "refund": "200",
    "partial_refund": "200",
    "deny": "202",
    "expire": "202",
    "cancel": "202",
}


def notification_for(
    status: dict, *, server_key: str = SERVER_KEY, without: tuple[str, ...] = (), **changes
) -> dict:
    """What Midtrans posts about the state its status answer `status` shows: the same fields
    (but `without`), the notification's status_code and message, `changes`, signed."""
    body = {k: v for k, v in status.items() if k not in {"signature_key", *without}}
    body["status_code"] = NOTIFICATION_CODES[body["transaction_status"]]
    body["status_message"] = "midtrans payment notification"
    return signed(body, server_key=server_key, **changes)


def status_url(midtrans_order_id: str) -> str:
    return f"{API_BASE}/v2/{midtrans_order_id}/status"


def use_settings(flask_app, **changes) -> None:
    """Change some of a built app's settings (e.g. a rate limit), as if read from its env."""
    from dataclasses import replace

    from app.services import gateway

    services = gateway(flask_app)
    services.settings = replace(services.settings, **changes)


STATUS_API_CODES = {"settlement": "200", "pending": "201", "expire": "407"}


def status_answer(order_id: str, status: str = "settlement", *, amount: int, **extra) -> dict:
    """What Midtrans's status API answers for `order_id` (Midtrans's order id) in `status`:
    a BCA VA payment of `amount` the fraud check accepted, with `extra` on top."""
    return {
        "status_code": STATUS_API_CODES.get(status, "200"),
        "status_message": "Success, transaction is found",
        "transaction_id": f"trx-{order_id}",
        "order_id": order_id,
        "gross_amount": f"{amount}.00",
        "currency": "IDR",
        "payment_type": "bank_transfer",
        "transaction_time": "2026-11-21 10:00:00",
        "transaction_status": status,
        "fraud_status": "accept",
        **extra,
    }


def status_answer_for(notification: dict, **changes) -> dict:
    """What Midtrans's status API answers when it agrees with `notification`: the same fields
    but the signature, the status API's message, and `changes`."""
    answer = {k: v for k, v in notification.items() if k != "signature_key"}
    answer["status_message"] = "Success, transaction is found"
    answer.update(changes)
    return answer
