"""Shared fixtures. Midtrans is mocked at the HTTP layer with `responses`, so every test also
exercises how the gateway builds its requests (body, Basic auth, headers).

The database is SQLite in a temporary folder, or PostgreSQL where TEST_DATABASE_URL is set.
"""

from __future__ import annotations

import pytest
import responses
from admin.dashboard import PASSWORD, log_in
from kit.endpoints import LocalServer, SocketServer
from support import (
    API_BASE,
    SERVER_KEY,
    SNAP_BASE,
    cli_for,
    database_url,
    make_app,
    reset_database,
    user_app,
)

from app import create_app
from app.extensions import db


@pytest.fixture
def env(tmp_path, request) -> dict[str, str]:
    settings = {
        "DATABASE_URL": database_url(tmp_path),
        "SECRET_KEY": "test-secret-key-0123456789abcdef",
        "MIDTRANS_SERVER_KEY": SERVER_KEY,
        "MIDTRANS_API_BASE_URL": API_BASE,
        "MIDTRANS_SNAP_BASE_URL": SNAP_BASE,
        "MIDTRANS_TIMEOUT": "2",
    }
    if "loopback_callbacks" in request.fixturenames:
        settings["CALLBACK_ALLOWED_HOSTS"] = "127.0.0.1"
    return settings


@pytest.fixture
def loopback_callbacks() -> None:
    """A test that uses it (a module: `pytestmark = pytest.mark.usefixtures(
    "loopback_callbacks")`) gets an `env` whose callbacks may go to 127.0.0.1, where the
    tests' receivers listen (CALLBACK_ALLOWED_HOSTS; the default allows no private address)."""


@pytest.fixture
def build_app():
    """Make gateway apps from an env dict; their connections are closed at teardown."""
    built = []

    def build(env: dict[str, str], *, reset: bool = True):
        flask_app = create_app(env)
        built.append(flask_app)
        if reset:
            with flask_app.app_context():
                reset_database()
        return flask_app

    yield build
    for flask_app in built:
        with flask_app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(env, build_app):
    return build_app(env)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def cli(app):
    return cli_for(app)


@pytest.fixture
def app_key(cli) -> dict[str, str]:
    """Headers of the user's own app: code `biling`, the key from their document, no prefix."""
    return user_app(cli)


@pytest.fixture
def shop_key(cli) -> dict[str, str]:
    """A second app with the default prefix `shop-`."""
    return make_app(cli, "shop")


@pytest.fixture
def admin_user(cli) -> str:
    """An admin account `root` with the dashboard tests' password."""
    cli("admins", "create", "root", "--password", PASSWORD)
    return "root"


@pytest.fixture
def admin_client(client, admin_user):
    """The test client, logged in to the dashboard as `root`."""
    resp = log_in(client)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    return client


@pytest.fixture
def midtrans():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add_passthru("http://127.0.0.1")
        rsps.add_passthru("http://localhost")
        yield rsps


@pytest.fixture
def served():
    """`served(server)` keeps a `kit.endpoints` server (a `CallbackReceiver`, a `LocalServer`,
    a `SocketServer`) for the test and closes it at teardown; it returns the server."""
    running: list[LocalServer | SocketServer] = []

    def keep(server):
        running.append(server)
        return server

    yield keep
    for server in running:
        server.close()
