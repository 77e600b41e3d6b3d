"""The command line of SPEC: apps and admins."""

from __future__ import annotations

from support import USER_DOC_KEY, use_settings

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
