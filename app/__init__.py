"""midtrans-gateway: a self-hosted payment gateway between client apps and Midtrans."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from .config import Settings
from .database import configure_engine
from .extensions import db, migrate
from .logs import configure_logging
from .observability import init_observability
from .services import Gateway

ROOT = Path(__file__).resolve().parent.parent
MAX_BODY_BYTES = 64 * 1024


def create_app(env: dict[str, str] | None = None) -> Flask:
    """Build the gateway. `env` replaces the process environment (tests pass their own)."""
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=str(ROOT / "instance"),
    )

    # Configuration: read and checked once.
    settings = Settings.from_env(env, instance_path=app.instance_path)
    configure_logging(settings)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        # A ping before each use finds dead PostgreSQL connections; SQLite has none to find.
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": not settings.database_url.startswith("sqlite")},
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False
    if settings.database_url.startswith("sqlite:///"):
        Path(settings.database_url.removeprefix("sqlite:///")).parent.mkdir(
            parents=True, exist_ok=True
        )
    Gateway.build(settings).install(app)

    if settings.proxy_hops:
        # Behind nginx: trust that many proxies for the client address, scheme and host.
        # Never set it without a proxy in front, or clients could forge their address.
        hops = settings.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    # Extensions.
    db.init_app(app)
    migrate.init_app(
        app, db, directory=str(ROOT / "migrations"), render_as_batch=True, compare_type=True
    )
    with app.app_context():
        configure_engine(db.engine)

    # Operations: request ids in every log line, /metrics, rate limits.
    init_observability(app, storage=settings.ratelimit_storage_uri)

    # Browsers: CSRF (admin only), cookie flags, security headers on every response, i18n.
    from .admin import init_admin

    init_admin(
        app,
        production=settings.midtrans.is_production,
        translations=str(ROOT / "translations"),
    )

    # Blueprints: one per caller.
    from . import admin, api, health, openapi, webhooks

    app.register_blueprint(api.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(admin.bp)

    # Errors: JSON everywhere outside /admin.
    from .errors import register_error_handlers

    register_error_handlers(app)

    # Command line: flask --app wsgi apps|admins ...
    from .cli import register_commands

    register_commands(app)
    return app
