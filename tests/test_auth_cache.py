"""API keys are checked against the database once per AUTH_CACHE_SECONDS per process, and the
bound holds: a disabled app or a rotated key is refused at once by the process (and every
process on the host) where an admin made the change, and by every other host at most
AUTH_CACHE_SECONDS later. Changes go through the real command line (`app/apps.py`); "another
host" is a second gateway on the same database whose host file is elsewhere."""

from __future__ import annotations

import pytest
from support import cli_for, make_app

from app.auth import AuthCache, ClientApp
from app.services import gateway

BOUND = 5.0


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def host(flask_app, epoch_file, clock: Clock) -> None:
    """Run `flask_app` as a gateway on a host whose processes share `epoch_file`."""
    gateway(flask_app).auth_cache = AuthCache(BOUND, epoch_file, clock=clock)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def gateways(env, build_app, tmp_path, clock):
    """The API's process, another process on its host and a process on another host, one
    database."""
    api = build_app(env)
    neighbour = build_app(env, reset=False)
    remote = build_app(env, reset=False)
    host(api, tmp_path / "host-a", clock)
    host(neighbour, tmp_path / "host-a", clock)
    host(remote, tmp_path / "host-b", clock)
    return api, neighbour, remote


def accepted(flask_app, headers) -> bool:
    status = flask_app.test_client().get("/transactions", headers=headers).status_code
    assert status in (200, 401), status
    return status == 200


def test_a_disabled_app_is_refused_at_once_where_it_was_disabled(gateways):
    api, _, _ = gateways
    cli = cli_for(api)
    shop = make_app(cli, "shop")
    assert accepted(api, shop)
    cli("apps", "disable", "shop")
    assert not accepted(api, shop)
    cli("apps", "enable", "shop")
    assert accepted(api, shop)


def test_a_rotated_key_is_refused_at_once_where_it_was_rotated(gateways):
    api, _, _ = gateways
    cli = cli_for(api)
    shop = make_app(cli, "shop")
    assert accepted(api, shop)
    new_key = cli("apps", "rotate-key", "shop").output.strip().splitlines()[-1]
    assert not accepted(api, shop)
    assert accepted(api, {"X-App-Code": "shop", "X-Api-Key": new_key})


def test_every_process_on_the_host_refuses_at_once(gateways):
    api, neighbour, _ = gateways
    shop = make_app(cli_for(neighbour), "shop")
    assert accepted(api, shop)
    cli_for(neighbour)("apps", "disable", "shop")
    assert not accepted(api, shop)  # the clock has not moved


def test_another_host_refuses_a_disabled_app_within_the_bound(gateways, clock):
    api, _, remote = gateways
    shop = make_app(cli_for(remote), "shop")
    assert accepted(api, shop)  # checked against the database: trusted until BOUND
    clock.now += 1
    cli_for(remote)("apps", "disable", "shop")
    clock.now += BOUND - 1 - 0.01
    assert accepted(api, shop)  # the cached check, not a second look at the database
    clock.now += 0.01
    assert not accepted(api, shop)


def test_another_host_refuses_a_rotated_key_within_the_bound(gateways, clock):
    api, _, remote = gateways
    shop = make_app(cli_for(remote), "shop")
    assert accepted(api, shop)
    new_key = cli_for(remote)("apps", "rotate-key", "shop").output.strip().splitlines()[-1]
    fresh = {"X-App-Code": "shop", "X-Api-Key": new_key}
    assert accepted(api, fresh)  # a new key works everywhere at once
    clock.now += BOUND
    assert not accepted(api, shop)
    assert accepted(api, fresh)


def test_the_bound_counts_from_before_the_database_was_read(clock):
    """An answer read before a change (and stored after it) is never trusted past the change:
    here, dropped at once since the change happened in this process."""
    cache = AuthCache(BOUND, None, clock=clock)
    shop = ClientApp(id=1, code="shop", order_prefix="shop-", allow_refunds=False, can_sign=False)
    begun = cache.begin()
    clock.now += 3  # a slow read...
    cache.clear()  # ...while an admin disabled the app in this process
    cache.put("shop", "h", shop, begun)
    assert cache.get("shop", "h") is None
    begun = cache.begin()
    clock.now += 3
    cache.put("shop", "h", shop, begun)
    assert cache.get("shop", "h") == shop
    clock.now += BOUND - 3
    assert cache.get("shop", "h") is None  # BOUND after the read began, not after the put


def test_no_cache_with_zero_seconds(env, build_app, tmp_path):
    api = build_app({**env, "AUTH_CACHE_SECONDS": "0"})
    remote = build_app(env, reset=False)
    host(remote, tmp_path / "elsewhere", Clock())
    shop = make_app(cli_for(remote), "shop")
    assert accepted(api, shop)
    cli_for(remote)("apps", "disable", "shop")
    assert not accepted(api, shop)


def test_the_cache_keeps_no_key_and_no_secret(env, build_app, loopback_callbacks):
    api = build_app(env)
    shop = make_app(cli_for(api), "shop", "--callback-url", "http://127.0.0.1:9/hook")
    assert accepted(api, shop)
    cache = gateway(api).auth_cache
    kept = repr(vars(cache))
    assert shop["X-Api-Key"] not in kept
    assert "whsec_" not in kept and "signing_secret" not in kept


def test_refunds_turned_off_apply_at_once_where_turned_off(gateways):
    api, _, _ = gateways
    cli = cli_for(api)
    shop = make_app(cli, "shop")
    cli("apps", "allow-refunds", "shop")
    assert accepted(api, shop)
    cli("apps", "allow-refunds", "shop", "--off")
    with api.test_request_context():
        from app.auth import authenticate_app

        assert authenticate_app("shop", shop["X-Api-Key"]).allow_refunds is False
