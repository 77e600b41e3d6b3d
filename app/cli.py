"""Command line: `flask --app wsgi apps ...` and `flask --app wsgi admins ...`.

The last line `apps create` and `apps rotate-key` print is the API key, so a script can take it
with `tail -n 1`. Keys are shown only then: the database keeps a hash.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import SQLAlchemyError

from . import admin_mfa, admins, apps
from .database import lock_row, reading, writing
from .errors import GatewayError
from .extensions import db
from .models import App
from .payments import recover_failed
from .payments.reconcile import STATUS_CALLS_PER_MINUTE
from .services import gateway

# Times are shown as the dashboard shows them: Jakarta time (UTC+7, no daylight saving).
WIB = timezone(timedelta(hours=7), "WIB")
UPGRADE = "run `flask --app wsgi db upgrade`"


def require_migrated_database() -> None:
    """Stop with one line when the database does not exist yet, is unreachable or lacks
    migrations, instead of an SQL traceback from the middle of a command (and without leaving
    an empty SQLite file behind)."""
    url = db.engine.url
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        if not Path(url.database).exists():
            raise click.ClickException(f"the database {url.database} does not exist: {UPGRADE}")
    try:
        with db.engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
            versions = set()
            if "alembic_version" in tables:
                query = text("SELECT version_num FROM alembic_version")
                versions = set(connection.execute(query).scalars())
    except SQLAlchemyError as err:
        reason = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
        raise click.ClickException(f"cannot use the database (DATABASE_URL): {reason}") from None
    if App.__tablename__ not in tables:
        raise click.ClickException(f"the database has no tables yet: {UPGRADE}")
    if versions:  # (a database made without migrations, as the tests do, has no version)
        from alembic.script import ScriptDirectory

        script = ScriptDirectory(current_app.extensions["migrate"].directory)
        if versions != set(script.get_heads()):
            known = {revision.revision for revision in script.walk_revisions()}
            if not versions <= known:
                raise click.ClickException(
                    "the database was migrated by a newer version of the gateway than this one"
                )
            raise click.ClickException(f"the database lacks migrations of this version: {UPGRADE}")


apps_cli = AppGroup(
    "apps",
    help="Manage client apps and their API keys.",
    callback=with_appcontext(require_migrated_database),
)
admins_cli = AppGroup(
    "admins",
    help="Manage dashboard administrators.",
    callback=with_appcontext(require_migrated_database),
)


def _get_app_or_fail(code: str) -> App:
    with reading():  # inside a writing() unit, part of it
        client_app = db.session.execute(select(App).where(App.code == code)).scalar_one_or_none()
    if client_app is None:
        raise click.ClickException(f"no app with code {code!r}")
    return client_app


@apps_cli.command("create")
@click.argument("code")
@click.option("--name", required=True, help="Human-readable name, e.g. 'WHMCS billing'.")
@click.option("--api-key", help="Import a key already used by a client (>= 32 characters).")
@click.option(
    "--order-prefix",
    help="Prepended to this app's order ids at Midtrans (default '<code>-'; '' for none).",
)
@click.option("--callback-url", help="Where payment updates are POSTed (signed webhooks).")
def create_app_command(
    code: str, name: str, api_key: str | None, order_prefix: str | None, callback_url: str | None
):
    """Create a client app; prints its API key last, once."""
    from .admin import audit

    settings = gateway().settings
    with writing():
        new = _run(
            apps.create_client_app,
            code=code,
            name=name,
            order_prefix=order_prefix,
            api_key=api_key,
            callback_url=callback_url,
            policy=gateway().callback_policy,
            production=settings.midtrans.is_production,
        )
        _audit("app_create", new.client_app, after=audit.app_snapshot(new.client_app))
    click.echo(
        f"Created app {code} ({name}); Midtrans order prefix: {new.client_app.order_prefix!r}"
    )
    if new.signing_secret:
        click.echo(f"Callbacks go to {callback_url}; verify them with this secret:")
        click.echo(f"Signing secret: {new.signing_secret}")
    click.echo("API key (shown only now; send it as X-Api-Key):")
    click.echo(new.key)


def _run(operation, *args, **kwargs):
    """Call a rule of `app.apps` or `app.admins`; its refusal (which undoes its unit of work)
    becomes a one-line command-line error."""
    try:
        return operation(*args, **kwargs)
    except GatewayError as err:
        raise click.ClickException(err.message) from None


def _audit(action: str, client_app: App, **entry) -> None:
    """An entry in the dashboard's audit log, written in the unit of work of the change it
    records: by the command line (`cli`, no address)."""
    from .admin import audit

    entry.setdefault("detail", audit.FROM_COMMAND_LINE)
    audit.record(action, target=audit.app_target(client_app), username=audit.COMMAND_LINE, **entry)


@contextmanager
def _changing(code: str, action: str) -> Iterator[App]:
    """The app `code`, locked, for a change in the block; the change and its audit entry (the
    app before and after, never a key or secret) are one unit of work."""
    from .admin import audit

    with writing():
        client_app = lock_row(App, _get_app_or_fail(code).id)
        before = audit.app_snapshot(client_app)
        yield client_app
        _audit(action, client_app, before=before, after=audit.app_snapshot(client_app))


@apps_cli.command("list")
def list_apps():
    """List apps: code, name, prefix, state, created, last used."""
    with reading():
        client_apps = db.session.execute(select(App).order_by(App.code)).scalars().all()
    if not client_apps:
        click.echo("no apps yet: flask --app wsgi apps create CODE --name NAME")
        return
    click.echo(f"{'CODE':20} {'NAME':28} {'PREFIX':14} {'STATE':9} {'CREATED':20} LAST USED")
    for client_app in client_apps:
        last = _wib(client_app.last_used_at) if client_app.last_used_at else "never"
        click.echo(
            f"{client_app.code:20} {client_app.name[:28]:28} {client_app.order_prefix!r:14} "
            f"{'active' if client_app.active else 'disabled':9} "
            f"{_wib(client_app.created_at):20} {last}"
        )


def _wib(moment: datetime) -> str:
    return moment.astimezone(WIB).strftime("%Y-%m-%d %H:%M WIB")


@apps_cli.command("disable")
@click.argument("code")
def disable_app(code: str):
    """Refuse every request of this app (its orders are kept)."""
    _set_active(code, False)
    click.echo(f"App {code} disabled: its requests now get 401.")


@apps_cli.command("enable")
@click.argument("code")
def enable_app(code: str):
    """Accept this app's requests again."""
    _set_active(code, True)
    click.echo(f"App {code} enabled.")


def _set_active(code: str, active: bool) -> None:
    with _changing(code, "app_enable" if active else "app_disable") as client_app:
        _run(apps.set_active, client_app.id, active)


@apps_cli.command("allow-refunds")
@click.argument("code")
@click.option("--off", is_flag=True, help="Stop the app's refunds through the API.")
def allow_refunds(code: str, off: bool):
    """Let the app refund its paid orders through the API (off for every app until allowed)."""
    with _changing(code, "app_edit") as client_app:
        _run(apps.set_refunds_allowed, client_app.id, not off)
    if off:
        click.echo(f"App {code} may no longer refund through the API (403 forbidden).")
    else:
        click.echo(f"App {code} may now refund its paid orders through the API.")


@apps_cli.command("rotate-key")
@click.argument("code")
def rotate_key(code: str):
    """Replace the app's API key; the old one stops working at once. Prints the new key last."""
    with _changing(code, "app_rotate_key") as client_app:
        new = _run(apps.rotate_key, client_app.id)
    click.echo(f"New API key for {code} (the old one no longer works; shown only now):")
    click.echo(new.key)


@apps_cli.command("set-callback")
@click.argument("code")
@click.argument("url")
def set_callback(code: str, url: str):
    """Send this app's payment updates to URL ('' stops them); re-enables a disabled one."""
    with _changing(code, "app_callback_url") as client_app:
        secret = _run(
            apps.set_callback_url,
            client_app,
            url,
            policy=gateway().callback_policy,
            production=gateway().settings.midtrans.is_production,
        )
    if not url:
        click.echo(f"Callbacks of {code} stopped.")
        return
    click.echo(f"Callbacks of {code} go to {url}.")
    if secret:
        click.echo(f"Signing secret: {secret}")


@apps_cli.command("rotate-secret")
@click.argument("code")
def rotate_secret(code: str):
    """New signing secret; the old one keeps signing for 24 hours. Prints the new one last."""
    with _changing(code, "app_callback_rotate_secret") as client_app:
        secret = apps.rotate_callback_secret(client_app)
    click.echo(f"New signing secret for {code} (the old one signs too for 24 hours):")
    click.echo(f"Signing secret: {secret}")


@apps_cli.command("recover-callbacks")
@click.argument("code")
@click.option("--since", required=True, help="ISO date-time, e.g. 2026-11-20T00:00:00Z.")
def recover_callbacks(code: str, since: str):
    """Send again every failed callback of the app created since a time."""
    client_app = _get_app_or_fail(code)
    try:
        moment = datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        raise click.ClickException("--since must be an ISO date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        shown = _wib(moment)  # the audit entry's wording is the dashboard's
    except OverflowError:  # the last hours of year 9999 have no WIB time
        shown = moment.isoformat()
    with writing():
        count = recover_failed(client_app.id, moment)
        _audit("callback_recover", client_app, detail=f"failed since {shown}: {count} queued again")
    click.echo(f"{count} failed callbacks of {code} queued again.")


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
    _run(admins.create_admin, username=username, password=password)
    click.echo(f"Admin {username} created.")


@admins_cli.command("unlock")
@click.argument("username")
def unlock_admin(username: str):
    """Clear the login throttling of an admin: every address may try this account at once."""
    cleared = _run(admins.unlock, username)
    click.echo(
        f"Login throttling of {username} cleared "
        f"({cleared} address{'' if cleared == 1 else 'es'} had failed logins on record)."
    )


@admins_cli.command("reset-mfa")
@click.argument("username")
def reset_mfa(username: str):
    """Remove an admin's two-factor sign-in and recovery codes (a lost phone): the next login
    needs the password only (or setting MFA up again, when every admin must use it)."""
    from .admin import audit

    with writing():
        was_on = _run(admin_mfa.reset, username)
        audit.record(
            "mfa_reset",
            target=f"admin:{username}",
            username=audit.COMMAND_LINE,
            detail=audit.FROM_COMMAND_LINE,
        )
    if was_on:
        click.echo(f"Two-factor sign-in of {username} removed, with its recovery codes.")
    else:
        click.echo(f"{username} had no two-factor sign-in; nothing to remove.")


@click.command("worker")
@click.option("--interval", default=5.0, show_default=True, help="Seconds to wait when idle.")
@click.option("--once", is_flag=True, help="Run every job once, then exit (for cron or tests).")
@click.option(
    "--max-status-calls",
    type=click.IntRange(min=1),
    default=STATUS_CALLS_PER_MINUTE,
    show_default=True,
    help="Status calls to Midtrans per minute, at most, when reconciling orders.",
)
@with_appcontext
def worker_command(interval: float, once: bool, max_status_calls: int):
    """Reconcile pending orders and confirm notifications until SIGTERM."""
    from .worker import run_worker

    require_migrated_database()
    run_worker(
        current_app._get_current_object(),
        interval=interval,
        once=once,
        status_calls_per_minute=max_status_calls,
    )


def register_commands(app: Flask) -> None:
    app.cli.add_command(apps_cli)
    app.cli.add_command(admins_cli)
    app.cli.add_command(worker_command)
