"""The realistic floor: the least a gateway `/status` request can do, as a plain Flask view.

    GET /real/status/<order_id>   (X-App-Code, X-Api-Key)

1. find the app by its indexed code in the gateway's own `apps` table and compare the SHA-256
   hex of the presented key with its stored `key_hash` (what app/auth.py does),
2. read the order row (`transactions`, by its unique (app_id, order_id) index),
3. ask the upstream (the simulator, as the gateway does) for the status, over a kept-alive
   pooled `urllib3` connection (the fastest client a Python gateway could use),
4. write one row (the order's status and updated_at) in one short write transaction,
5. answer JSON.

Raw SQL with `sqlite3` on the gateway's database file, with the gateway's SQLite settings
(WAL, synchronous NORMAL, a busy timeout, write transactions begun IMMEDIATE). Served by
bench/floor.py's app, so under the same gunicorn settings as the gateway. Configured by
FLOOR_DATABASE (SQLite file), FLOOR_UPSTREAM (base URL) and FLOOR_SERVER_KEY.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import sqlite3
import threading
from datetime import UTC, datetime
from urllib.parse import urlsplit

import urllib3
from flask import Blueprint, jsonify, request

bp = Blueprint("realistic", __name__)

BUSY_TIMEOUT_S = 15.0  # the gateway's SQLITE_BUSY_TIMEOUT_MS
POOL_SIZE = 16
_local = threading.local()
_pool_lock = threading.Lock()
_pool: urllib3.HTTPConnectionPool | None = None


def _db() -> sqlite3.Connection:
    conn = getattr(_local, "db", None)
    if conn is None:
        conn = sqlite3.connect(
            os.environ["FLOOR_DATABASE"], timeout=BUSY_TIMEOUT_S, isolation_level=None
        )
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        _local.db = conn
    return conn


def _upstream() -> urllib3.HTTPConnectionPool:
    """One keep-alive pool per worker process (made after gunicorn forks)."""
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                url = urlsplit(os.environ["FLOOR_UPSTREAM"])
                _pool = urllib3.HTTPConnectionPool(
                    url.hostname,
                    url.port,
                    maxsize=POOL_SIZE,
                    block=True,
                    retries=False,
                    timeout=urllib3.Timeout(connect=2.0, read=10.0),
                )
    return _pool


def _now() -> str:
    """UTC now as SQLAlchemy stores a DateTime in SQLite."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _auth_header() -> str:
    key = os.environ["FLOOR_SERVER_KEY"]
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


@bp.get("/real/status/<path:order_id>")
def real_status(order_id: str):
    db = _db()
    code, key = request.headers.get("X-App-Code", ""), request.headers.get("X-Api-Key", "")
    app_row = db.execute("SELECT id, key_hash, active FROM apps WHERE code = ?", (code,)).fetchone()
    presented = hashlib.sha256(key.encode()).hexdigest()
    if app_row is None or not hmac.compare_digest(app_row[1], presented) or not app_row[2]:
        return jsonify({"error": "authentication failed"}), 401
    order = db.execute(
        "SELECT id, midtrans_order_id, status FROM transactions WHERE app_id = ? AND order_id = ?",
        (app_row[0], order_id),
    ).fetchone()
    if order is None:
        return jsonify({"error": "no such order"}), 404
    answer = _upstream().request(
        "GET",
        f"/v2/{order[1]}/status",
        headers={"Authorization": _auth_header(), "Accept": "application/json"},
    )
    if answer.status != 200:
        return jsonify({"error": f"upstream answered {answer.status}"}), 502
    status = json.loads(answer.data)
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(
            "UPDATE transactions SET status = ?, updated_at = ? WHERE id = ?",
            (status.get("transaction_status", order[2]), _now(), order[0]),
        )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return jsonify(
        {
            "order_id": order_id,
            "status": status.get("transaction_status"),
            "gross_amount": status.get("gross_amount"),
            "payment_type": status.get("payment_type"),
        }
    )
