"""Command line: `flask --app wsgi apps ...` and `flask --app wsgi admins ...`.

The last line `apps create` and `apps rotate-key` print is the API key, so a script can take it
with `tail -n 1`. Keys are shown only then: the database keeps a hash.
"""

from __future__ import annotations

import re

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import select

from .auth import check_imported_key, generate_api_key, hash_api_key, hash_password, key_hint
from .extensions import db
from .models import Admin, App

APP_CODE_RE = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
PREFIX_RE = re.compile(r"^[A-Za-z0-9\-_~.]{0,40}$")
MIN_PASSWORD = 12

apps_cli = AppGroup("apps", help="Manage client apps and their API keys.")
admins_cli = AppGroup("admins", help="Manage dashboard administrators.")


def _get_app_or_fail(code: str) -> App:
    app = db.session.execute(select(App).where(App.code == code)).scalar_one_or_none()
    if app is None:
        raise click.ClickException(f"no app with code {code!r}")
    return app


@apps_cli.command("create")
@click.argument("code")
@click.option("--name", required=True, help="Human-readable name, e.g. 'WHMCS billing'.")
@click.option("--api-key", help="Import a key already used by a client (>= 32 characters).")
@click.option(
    "--order-prefix",
    help="Prepended to this app's order ids at Midtrans (default '<code>-'; '' for none).",
)
def create_app_command(code: str, name: str, api_key: str | None, order_prefix: str | None):
    """Create a client app; prints its API key last, once."""
    if not APP_CODE_RE.match(code):
        raise click.ClickException("CODE may only contain letters, digits, - and _ (max 64)")
    prefix = f"{code}-" if order_prefix is None else order_prefix
    if not PREFIX_RE.match(prefix):
        raise click.ClickException(
            "--order-prefix may only contain letters, digits and - _ ~ . (max 40)"
        )
    if db.session.execute(select(App.id).where(App.code == code)).first():
        raise click.ClickException(f"an app with code {code!r} already exists")
    if api_key is not None:
        try:
            check_imported_key(api_key)
        except ValueError as err:
            raise click.ClickException(str(err)) from None
    key = api_key or generate_api_key()
    db.session.add(
        App(
            code=code,
            name=name,
            key_hash=hash_api_key(key),
            key_hint=key_hint(key),
            order_prefix=prefix,
        )
    )
    db.session.commit()
    click.echo(f"Created app {code} ({name}); Midtrans order prefix: {prefix!r}")
    click.echo("API key (shown only now; send it as X-Api-Key):")
    click.echo(key)


@apps_cli.command("list")
def list_apps():
    """List apps: code, name, prefix, state, created, last used."""
    apps = db.session.execute(select(App).order_by(App.code)).scalars().all()
    if not apps:
        click.echo("no apps yet: flask --app wsgi apps create CODE --name NAME")
        return
    click.echo(f"{'CODE':20} {'NAME':28} {'PREFIX':14} {'STATE':9} {'CREATED':17} LAST USED")
    for app in apps:
        last = app.last_used_at.strftime("%Y-%m-%d %H:%M") if app.last_used_at else "never"
        click.echo(
            f"{app.code:20} {app.name[:28]:28} {app.order_prefix!r:14} "
            f"{'active' if app.active else 'disabled':9} "
            f"{app.created_at.strftime('%Y-%m-%d %H:%M'):17} {last}"
        )


@apps_cli.command("disable")
@click.argument("code")
def disable_app(code: str):
    """Refuse every request of this app (its orders are kept)."""
    app = _get_app_or_fail(code)
    app.active = False
    db.session.commit()
    click.echo(f"App {code} disabled: its requests now get 401.")


@apps_cli.command("enable")
@click.argument("code")
def enable_app(code: str):
    """Accept this app's requests again."""
    app = _get_app_or_fail(code)
    app.active = True
    db.session.commit()
    click.echo(f"App {code} enabled.")


@apps_cli.command("rotate-key")
@click.argument("code")
def rotate_key(code: str):
    """Replace the app's API key; the old one stops working at once. Prints the new key last."""
    app = _get_app_or_fail(code)
    key = generate_api_key()
    app.key_hash, app.key_hint = hash_api_key(key), key_hint(key)
    db.session.commit()
    click.echo(f"New API key for {code} (the old one no longer works; shown only now):")
    click.echo(key)


@admins_cli.command("create")
@click.argument("username")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="Prompted for when left out.",
)
def create_admin(username: str, password: str):
    """Create a dashboard administrator."""
    if not re.match(r"^[A-Za-z0-9_.@\-]{1,80}$", username):
        raise click.ClickException("USERNAME may only contain letters, digits and _ . @ -")
    if len(password) < MIN_PASSWORD:
        raise click.ClickException(f"the password must be at least {MIN_PASSWORD} characters")
    if db.session.execute(select(Admin.id).where(Admin.username == username)).first():
        raise click.ClickException(f"an admin named {username!r} already exists")
    db.session.add(Admin(username=username, password_hash=hash_password(password)))
    db.session.commit()
    click.echo(f"Admin {username} created.")


@click.command("worker")
@click.option("--interval", default=5.0, show_default=True, help="Seconds to wait when idle.")
@click.option("--once", is_flag=True, help="Run every job once, then exit (for cron or tests).")
@with_appcontext
def worker_command(interval: float, once: bool):
    """Reconcile pending orders and confirm notifications until SIGTERM."""
    from .worker import run_worker

    run_worker(current_app._get_current_object(), interval=interval, once=once)


def register_commands(app: Flask) -> None:
    app.cli.add_command(apps_cli)
    app.cli.add_command(admins_cli)
    app.cli.add_command(worker_command)
