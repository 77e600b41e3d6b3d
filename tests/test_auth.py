"""X-App-Code + X-Api-Key: every failure looks the same; keys are stored only as hashes."""

from __future__ import annotations

import pytest
from support import USER_DOC_KEY, snap_ok

from app.extensions import db
from app.models import App

BODY = {"order_id": "A-1", "amount": 1000}


@pytest.fixture
def disabled_key(cli):
    from support import make_app

    headers = make_app(cli, "gone")
    cli("apps", "disable", "gone")
    return headers


def failing_headers(app_key, shop_key, disabled_key):
    return {
        "no headers": {},
        "no key": {"X-App-Code": "biling"},
        "no code": {"X-Api-Key": USER_DOC_KEY},
        "empty key": {"X-App-Code": "biling", "X-Api-Key": ""},
        "unknown code": {"X-App-Code": "nobody", "X-Api-Key": USER_DOC_KEY},
        "wrong key": {"X-App-Code": "biling", "X-Api-Key": USER_DOC_KEY[:-1] + "0"},
        "another app's key": {"X-App-Code": "biling", "X-Api-Key": shop_key["X-Api-Key"]},
        "disabled app": disabled_key,
        "very long code": {"X-App-Code": "x" * 5000, "X-Api-Key": USER_DOC_KEY},
    }


@pytest.mark.parametrize("path", ["/charge", "/status/A-1"])
def test_every_auth_failure_gets_the_same_401(
    client, app_key, shop_key, disabled_key, midtrans, path
):
    bodies = set()
    for case, headers in failing_headers(app_key, shop_key, disabled_key).items():
        if path == "/charge":
            resp = client.post(path, json=BODY, headers=headers)
        else:
            resp = client.get(path, headers=headers)
        assert resp.status_code == 401, case
        bodies.add(resp.get_data(as_text=True))
    assert len(bodies) == 1
    assert '"code":"unauthorized"' in bodies.pop().replace(" ", "")
    assert len(midtrans.calls) == 0


def test_the_right_headers_are_accepted_and_use_is_recorded(client, app_key, midtrans):
    snap_ok(midtrans)
    assert client.post("/charge", json=BODY, headers=app_key).status_code == 201
    with client.application.app_context():
        assert db.session.query(App).filter_by(code="biling").one().last_used_at is not None


def test_keys_are_stored_only_as_hashes(client, app_key, shop_key):
    with client.application.app_context():
        for app in db.session.query(App):
            stored = " ".join(str(v) for v in vars(app).values())
            assert USER_DOC_KEY not in stored
            assert shop_key["X-Api-Key"] not in stored
            assert len(app.key_hash) == 64


def test_generated_keys_have_at_least_128_random_bits(shop_key):
    key = shop_key["X-Api-Key"]
    assert len(key) >= 32
    int(key, 16)  # hex: 4 bits a character, so >= 128 bits


def test_rotate_key_kills_the_old_key_at_once(client, cli, shop_key, midtrans):
    result = cli("apps", "rotate-key", "shop")
    new_key = result.output.strip().splitlines()[-1]
    assert new_key != shop_key["X-Api-Key"]
    snap_ok(midtrans)
    assert client.post("/charge", json=BODY, headers=shop_key).status_code == 401
    fresh = {"X-App-Code": "shop", "X-Api-Key": new_key}
    assert client.post("/charge", json=BODY, headers=fresh).status_code == 201


def test_a_disabled_app_can_be_enabled_again(client, cli, disabled_key, midtrans):
    cli("apps", "enable", "gone")
    snap_ok(midtrans)
    assert client.post("/charge", json=BODY, headers=disabled_key).status_code == 201
