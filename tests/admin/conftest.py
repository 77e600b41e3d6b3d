"""Dashboard fixtures: an admin account, a logged-in test client, a CSRF-carrying POST."""

from __future__ import annotations

import pytest
from admin.dashboard import PASSWORD, log_in, token_for


@pytest.fixture
def admin_user(cli) -> str:
    cli("admins", "create", "root", "--password", PASSWORD)
    return "root"


@pytest.fixture
def admin_client(client, admin_user):
    resp = log_in(client)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    return client


@pytest.fixture
def post(admin_client):
    """POST a dashboard form with a valid CSRF token taken from `page` (default: the target)."""

    def send(path: str, data: dict | None = None, *, page: str | None = None, **kwargs):
        token = token_for(admin_client, page or "/admin/")
        return admin_client.post(path, data={"csrf_token": token, **(data or {})}, **kwargs)

    return send
