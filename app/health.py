"""Blueprint "health": liveness and readiness probes for systemd, nginx and load balancers."""

from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text

from . import alerts
from .database import reading
from .extensions import db
from .services import gateway

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    # Probed every few seconds: at most once a minute per process, is the worker alive? (An
    # alert, never a change of this answer: the web serves payments without the worker.)
    alerts.check_worker_from_web()
    checks = {"database": "ok", "midtrans_server_key": "ok"}
    try:
        with reading():
            db.session.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        checks["database"] = "unreachable"
    if not gateway().settings.midtrans.configured:
        checks["midtrans_server_key"] = "missing"
    ready = all(v == "ok" for v in checks.values())
    return jsonify({"status": "ready" if ready else "not ready", "checks": checks}), (
        200 if ready else 503
    )
