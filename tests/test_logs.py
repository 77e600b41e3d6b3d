"""Secrets never reach a log line, whatever goes wrong."""

from __future__ import annotations

import logging

import requests
import responses
from support import SERVER_KEY, SNAP_URL, USER_DOC_KEY, basic_auth, snap_ok, status_url

from app.logs import redactor


def test_no_secret_in_logs_across_success_and_every_failure(
    client, app_key, midtrans, caplog, capfd
):
    caplog.set_level(logging.DEBUG)
    snap_ok(midtrans)
    client.post("/charge", json={"order_id": "L-1", "amount": 10}, headers=app_key)
    for failure in (
        {"status": 401, "json": {"error_messages": ["Access denied"]}},
        {"status": 500, "body": f"echo {SERVER_KEY}"},
        {"body": requests.ReadTimeout(f"timeout talking with {SERVER_KEY}")},
    ):
        midtrans.upsert(responses.POST, SNAP_URL, **failure)
        client.post("/charge", json={"order_id": "L-2", "amount": 10}, headers=app_key)
    midtrans.add(responses.GET, status_url("L-1"), body=requests.ConnectionError(SERVER_KEY))
    client.get("/status/L-1", headers=app_key)
    client.post(
        "/charge",
        json={"order_id": "L-3", "amount": 10},
        headers={"X-App-Code": "biling", "X-Api-Key": "wrong-" + USER_DOC_KEY},
    )

    logging.getLogger("test").error("leak attempt %s Authorization: %s", SERVER_KEY, basic_auth())
    try:
        raise RuntimeError(f"boom with {SERVER_KEY}")
    except RuntimeError:
        logging.getLogger("test").exception("failure")

    out, err = capfd.readouterr()
    captured = caplog.text + out + err
    assert "midtrans snap_create" in captured  # the calls were logged...
    for secret in (SERVER_KEY, USER_DOC_KEY, basic_auth().split()[1]):
        assert secret not in captured  # ...but never a secret


def test_redaction_masks_card_numbers_and_escapes_line_breaks():
    line = redactor.redact("card 4811111111111114 paid\nFAKE 200 OK")
    assert "4811111111111114" not in line and "481111******1114" in line
    assert "\n" not in line
