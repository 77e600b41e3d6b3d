"""Every error outside /admin is JSON in one shape; health probes."""

from __future__ import annotations

import pytest


def assert_error(resp, status: int, code: str):
    assert resp.status_code == status
    assert resp.mimetype == "application/json"
    assert resp.json["error"]["code"] == code
    assert resp.json["error"]["message"]


def test_unknown_route_is_json_404(client):
    assert_error(client.get("/nope"), 404, "not_found")
    assert_error(client.post("/charge/extra"), 404, "not_found")


@pytest.mark.parametrize(("method", "path"), [("get", "/charge"), ("post", "/status/A-1")])
def test_wrong_method_is_json_405_with_allow(client, method, path):
    resp = getattr(client, method)(path)
    assert_error(resp, 405, "method_not_allowed")
    assert resp.headers["Allow"]


def test_body_over_64_kib_is_json_413_before_authentication(client, app_key, midtrans):
    big = b'{"order_id": "A", "amount": 1, "pad": "' + b"x" * (64 * 1024) + b'"}'
    resp = client.post("/charge", data=big, headers={**app_key, "Content-Type": "application/json"})
    assert_error(resp, 413, "payload_too_large")
    assert len(midtrans.calls) == 0


def test_admin_paths_get_html_errors(client):
    resp = client.get("/admin/nothing-here")
    assert resp.status_code == 404
    assert resp.mimetype == "text/html"


def test_healthz_answers_while_the_process_serves(client):
    assert client.get("/healthz").json == {"status": "ok"}


def test_readyz_checks_database_and_configuration(client, env):
    resp = client.get("/readyz")
    assert resp.status_code == 200
    assert resp.json["checks"] == {"database": "ok", "midtrans_server_key": "ok"}


def test_readyz_is_503_without_a_server_key(env, build_app):
    env.pop("MIDTRANS_SERVER_KEY")
    resp = build_app(env).test_client().get("/readyz")
    assert resp.status_code == 503
    assert resp.json["checks"]["midtrans_server_key"] == "missing"


def test_readyz_is_503_when_the_database_is_unreachable(env, build_app):
    env["DATABASE_URL"] = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1"
    resp = build_app(env, reset=False).test_client().get("/readyz")
    assert resp.status_code == 503
    assert resp.json["checks"]["database"] == "unreachable"
