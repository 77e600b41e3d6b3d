"""The command line of SPEC: apps and admins."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from support import USER_DOC_KEY, cli_for, use_settings

from app.admin.filters import audit_changes
from app.admin.models import AuditEntry
from app.auth import verify_password
from app.extensions import db
from app.models import Admin, App


def test_apps_create_prints_the_key_last_and_defaults_the_prefix(app, cli):
    out = cli("apps", "create", "shop", "--name", "Online Shop").output.strip().splitlines()
    key = out[-1]
    assert len(key) >= 32 and " " not in key
    with app.app_context():
        shop = db.session.query(App).filter_by(code="shop").one()
        assert (shop.name, shop.order_prefix, shop.active) == ("Online Shop", "shop-", True)


def test_apps_create_imports_an_existing_key(app, cli):
    out = cli("apps", "create", "biling", "--name", "B", "--api-key", USER_DOC_KEY)
    assert out.output.strip().splitlines()[-1] == USER_DOC_KEY


def test_apps_create_refuses_bad_input(app, cli):
    assert cli("apps", "create", "bad code", "--name", "x", expect_ok=False).exit_code != 0
    short = cli("apps", "create", "a", "--name", "x", "--api-key", "short", expect_ok=False)
    assert short.exit_code != 0 and "at least 32" in short.output
    cli("apps", "create", "dup", "--name", "x")
    again = cli("apps", "create", "dup", "--name", "y", expect_ok=False)
    assert again.exit_code != 0 and "already exists" in again.output
    slash = cli("apps", "create", "p", "--name", "x", "--order-prefix", "a/b", expect_ok=False)
    assert slash.exit_code != 0
    with app.app_context():
        assert [a.code for a in db.session.query(App)] == ["dup"]


def test_apps_list_shows_apps_without_keys(app, cli):
    key = cli("apps", "create", "shop", "--name", "Shop").output.strip().splitlines()[-1]
    cli("apps", "create", "biling", "--name", "Billing", "--order-prefix", "")
    cli("apps", "disable", "biling")
    listing = cli("apps", "list").output
    assert "shop" in listing and "'shop-'" in listing and "active" in listing
    assert "biling" in listing and "disabled" in listing and "never" in listing
    assert key not in listing


def test_unknown_app_is_a_clear_error(app, cli):
    for command in ("disable", "enable", "rotate-key"):
        result = cli("apps", command, "ghost", expect_ok=False)
        assert result.exit_code != 0 and "no app with code 'ghost'" in result.output


def test_admins_create_hashes_with_argon2id(app, cli):
    cli("admins", "create", "ops", "--password", "a long enough password")
    with app.app_context():
        admin = db.session.query(Admin).filter_by(username="ops").one()
    assert admin.password_hash.startswith("$argon2id$")
    assert "m=65536,t=3,p=4" in admin.password_hash
    assert verify_password(admin.password_hash, "a long enough password")
    assert not verify_password(admin.password_hash, "wrong password!!")


def test_admins_create_prompts_when_password_is_left_out(app):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["admins", "create", "ops"], input="prompted password\nprompted password\n"
    )
    assert result.exit_code == 0, result.output
    assert "prompted password" not in result.output
    with app.app_context():
        admin = db.session.query(Admin).filter_by(username="ops").one()
        assert verify_password(admin.password_hash, "prompted password")


def test_admins_create_refuses_short_passwords_and_duplicates(app, cli):
    assert cli("admins", "create", "ops", "--password", "short", expect_ok=False).exit_code
    cli("admins", "create", "ops", "--password", "long enough pass")
    dup = cli("admins", "create", "ops", "--password", "long enough pass", expect_ok=False)
    assert dup.exit_code != 0 and "already exists" in dup.output


def test_admins_unlock_clears_the_login_throttle(app, cli):
    from admin.dashboard import log_in

    use_settings(app, ratelimit_login="10000 per minute")  # the throttle, not flask-limiter
    cli("admins", "create", "ops", "--password", "a long enough password")
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "192.0.2.77"
    for _ in range(5):
        assert log_in(client, "ops", "wrong password!!").status_code == 401
    assert log_in(client, "ops", "a long enough password").status_code == 429  # must wait
    out = cli("admins", "unlock", "ops").output
    assert "Login throttling of ops cleared (1 address had failed logins on record)" in out
    assert log_in(client, "ops", "a long enough password").status_code == 302
    assert "(0 addresses" in cli("admins", "unlock", "ops").output


def test_admins_unlock_of_an_unknown_admin_is_an_error(app, cli):
    result = cli("admins", "unlock", "ghost", expect_ok=False)
    assert result.exit_code != 0 and "no admin named 'ghost'" in result.output


# -- the apps commands are in the dashboard's audit log -----------------------------------------


@pytest.fixture
def loopback_app(env, build_app):
    """A gateway whose callbacks may go to 127.0.0.1 (the tests' own receivers)."""
    return build_app({**env, "CALLBACK_ALLOWED_HOSTS": "127.0.0.1"})


def entries(flask_app, action: str) -> list[AuditEntry]:
    with flask_app.app_context():
        query = select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
        rows = db.session.execute(query).scalars().all()
        db.session.expunge_all()
        return rows


def the_entry(flask_app, action: str, *secrets: str) -> AuditEntry:
    """The one entry of `action`: by the command line, with no address and none of `secrets`
    anywhere in it."""
    [entry] = entries(flask_app, action)
    assert (entry.username, entry.admin_id, entry.ip) == ("cli", None, None)
    kept = repr((entry.target, entry.before, entry.after, entry.detail))
    for secret in secrets:
        assert secret not in kept
    return entry


def changed(entry: AuditEntry) -> list[tuple[str, str, str]]:
    return audit_changes(entry.before, entry.after)


def last_line(result) -> str:
    return result.output.strip().splitlines()[-1]


def test_apps_create_is_audited_without_the_key_or_secret(loopback_app):
    cli = cli_for(loopback_app)
    out = cli("apps", "create", "shop", "--name", "Shop", "--callback-url", "http://127.0.0.1:9/h")
    secret = next(line for line in out.output.splitlines() if line.startswith("Signing secret: "))
    entry = the_entry(loopback_app, "app_create", last_line(out), secret.split(": ", 1)[1])
    assert entry.target == "app:shop" and entry.before is None
    assert entry.after["name"] == "Shop" and entry.after["callback_url"] == "http://127.0.0.1:9/h"
    assert cli("apps", "create", "shop", "--name", "Again", expect_ok=False).exit_code != 0
    assert len(entries(loopback_app, "app_create")) == 1  # a refused command leaves none


def test_apps_disable_and_enable_are_audited(app, cli):
    cli("apps", "create", "shop", "--name", "Shop")
    cli("apps", "disable", "shop")
    assert changed(the_entry(app, "app_disable")) == [("active", "true", "false")]
    cli("apps", "enable", "shop")
    entry = the_entry(app, "app_enable")
    assert entry.target == "app:shop" and changed(entry) == [("active", "false", "true")]


def test_apps_allow_refunds_on_and_off_are_audited(app, cli):
    cli("apps", "create", "shop", "--name", "Shop")
    cli("apps", "allow-refunds", "shop")
    cli("apps", "allow-refunds", "shop", "--off")
    on, off = entries(app, "app_edit")
    assert (on.username, on.target, on.ip) == ("cli", "app:shop", None)
    assert changed(on) == [("allow_refunds", "false", "true")]
    assert changed(off) == [("allow_refunds", "true", "false")]


def test_apps_rotate_key_is_audited_without_the_new_key(app, cli):
    old = last_line(cli("apps", "create", "shop", "--name", "Shop"))
    new = last_line(cli("apps", "rotate-key", "shop"))
    entry = the_entry(app, "app_rotate_key", old, new)
    [(field, before, after)] = changed(entry)
    assert field == "key_hint"  # a hint like "a5c2…", the start of each key
    assert new.startswith(after.rstrip("…")) and old.startswith(before.rstrip("…"))


def test_apps_set_callback_is_audited_without_the_secret(loopback_app):
    cli = cli_for(loopback_app)
    cli("apps", "create", "shop", "--name", "Shop")
    refused = cli("apps", "set-callback", "shop", "http://10.0.0.1/hook", expect_ok=False)
    assert refused.exit_code != 0 and entries(loopback_app, "app_callback_url") == []
    secret = last_line(cli("apps", "set-callback", "shop", "http://127.0.0.1:9/hook"))
    assert secret.startswith("Signing secret: ")
    entry = the_entry(loopback_app, "app_callback_url", secret.split(": ", 1)[1])
    assert changed(entry) == [("callback_url", "", "http://127.0.0.1:9/hook")]


def test_apps_rotate_secret_is_audited_without_either_secret(loopback_app):
    cli = cli_for(loopback_app)
    out = cli("apps", "create", "shop", "--name", "Shop", "--callback-url", "http://127.0.0.1:9/h")
    old = next(line for line in out.output.splitlines() if line.startswith("Signing secret: "))
    new = last_line(cli("apps", "rotate-secret", "shop"))
    entry = the_entry(
        loopback_app, "app_callback_rotate_secret", old.split(": ")[1], new.split(": ")[1]
    )
    assert entry.target == "app:shop" and entry.detail == "from the command line"


def test_apps_recover_callbacks_is_audited(app, cli):
    cli("apps", "create", "shop", "--name", "Shop")
    assert cli("apps", "recover-callbacks", "shop", "--since", "2026-11-20T00:00:00Z").output == (
        "0 failed callbacks of shop queued again.\n"
    )
    entry = the_entry(app, "callback_recover")
    assert entry.detail == "failed since 2026-11-20 07:00 WIB: 0 queued again"


def test_the_audit_page_shows_a_command_in_english_and_indonesian(admin_client, app, cli):
    cli("apps", "create", "shop", "--name", "Shop")
    cli("apps", "allow-refunds", "shop")
    english = admin_client.get("/admin/audit?action=app_edit").get_data(as_text=True)
    assert "app edited" in english and "from the command line" in english
    assert "<td>cli</td>" in english and "allow_refunds" in english
    indonesian = admin_client.get(
        "/admin/audit?action=app_edit", headers={"Accept-Language": "id"}
    ).get_data(as_text=True)
    assert "aplikasi diubah" in indonesian and "dari baris perintah" in indonesian
