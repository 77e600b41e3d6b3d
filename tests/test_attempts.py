"""Every attempt at a Snap link is accounted for, and a crashed one does not block retries."""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import UTC, datetime

import requests
import responses
from support import SNAP_URL, snap_ok

from app.extensions import db
from app.models import LinkState, Transaction
from app.payments.charges import owner_gone, process_identity


def row(app, order_id):
    with app.app_context():
        txn = db.session.query(Transaction).filter_by(order_id=order_id).one()
        db.session.commit()
        return txn


def test_every_midtrans_order_id_an_order_used_is_kept(client, app, app_key, midtrans):
    midtrans.add(responses.POST, SNAP_URL, body=requests.Timeout("slow"))
    body = {"order_id": "AT-1", "amount": 1000}
    assert client.post("/charge", json=body, headers=app_key).status_code == 504
    snap_ok(midtrans)
    midtrans.replace(
        responses.POST, SNAP_URL, json={"token": "t", "redirect_url": "https://x/t"}, status=201
    )
    assert client.post("/charge", json=body, headers=app_key).status_code == 201

    txn = row(app, "AT-1")
    assert txn.midtrans_order_ids[0] == "AT-1"
    assert txn.midtrans_order_ids[1].startswith("AT-1~")
    assert txn.midtrans_order_ids[-1] == txn.midtrans_order_id and len(txn.midtrans_order_ids) == 2


def _stuck_attempt(app, order_id, owner):
    with app.app_context():
        txn = db.session.query(Transaction).filter_by(order_id=order_id).one()
        txn.link_state, txn.attempt_started_at = LinkState.CREATING, datetime.now(UTC)
        txn.attempt_owner = owner
        db.session.commit()


def _dead_process_identity() -> str:
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)"], stdout=subprocess.DEVNULL
    )
    with open(f"/proc/{child.pid}/stat") as stat:
        started = stat.read().rsplit(")", 1)[1].split()[19]
    child.kill()
    child.wait()
    return f"{socket.gethostname()}:{child.pid}:{started}"


def test_an_attempt_whose_process_died_is_retried_at_once(client, app, app_key, midtrans):
    snap_ok(midtrans)
    body = {"order_id": "AT-2", "amount": 1000}
    client.post("/charge", json=body, headers=app_key)
    _stuck_attempt(app, "AT-2", _dead_process_identity())

    resp = client.post("/charge", json=body, headers=app_key)

    assert resp.status_code == 201
    txn = row(app, "AT-2")
    assert txn.midtrans_order_id.startswith("AT-2~")  # the dead call may have made one
    assert txn.midtrans_order_ids[0] == "AT-2"


def test_an_attempt_in_flight_elsewhere_still_waits(client, app, app_key, midtrans):
    snap_ok(midtrans)
    body = {"order_id": "AT-3", "amount": 1000}
    client.post("/charge", json=body, headers=app_key)
    for owner in (process_identity(), "another-host:1:12345"):
        _stuck_attempt(app, "AT-3", owner)
        resp = client.post("/charge", json=body, headers=app_key)
        assert resp.status_code == 409 and resp.headers["Retry-After"] == "2"


def test_owner_gone_only_judges_this_hosts_processes():
    assert owner_gone(_dead_process_identity())
    assert not owner_gone(process_identity())
    assert not owner_gone("another-host:1:1")
    assert not owner_gone(None) and not owner_gone("garbage")
