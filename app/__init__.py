"""midtrans-gateway: a self-hosted payment gateway between client apps and Midtrans."""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from .cli import register_commands
from .config import Settings
from .database import configure_engine
from .errors import register_error_handlers
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
    settings = Settings.from_env(env, instance_path=app.instance_path)  # read and checked once
    configure_logging(settings)
    register_config(app, settings)
    # gateway(): settings, Midtrans, callback policy, the API-key cache, the backlog gauges
    Gateway.build(settings, app).install(app)
    register_proxy(app, settings)
    register_database(app, settings)
    init_observability(app, storage=settings.ratelimit_storage_uri)  # request ids, /metrics
    register_browsers(app, settings)  # CSRF (admin only), cookies, security headers, i18n
    register_blueprints(app)
    register_error_handlers(app)  # JSON everywhere outside /admin
    register_commands(app)  # flask --app wsgi apps|admins|worker ...
    return app


def register_config(app: Flask, settings: Settings) -> None:
    """Flask's and its extensions' own keys; the gateway's settings stay in `gateway()`."""
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=engine_options(settings.database_url),
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False


def engine_options(database_url: str) -> dict:
    """SQLite needs SQLAlchemy's defaults. PostgreSQL: a ping before each use finds dead
    connections, and a process keeps one connection per request thread open (the default 5
    made a gunicorn worker's other 3 threads open and close one on every request under load);
    the overflow covers the worker's extra threads and short bursts."""
    if database_url.startswith("sqlite"):
        return {}
    threads = os.environ.get("GUNICORN_THREADS", "")
    threads = int(threads) if threads.isdigit() and int(threads) > 0 else 8  # gunicorn.conf.py's
    return {"pool_pre_ping": True, "pool_size": threads, "max_overflow": 7}


def register_proxy(app: Flask, settings: Settings) -> None:
    """Behind nginx: trust that many proxies for the client address, scheme and host. Never
    set PROXY_FIX_HOPS without a proxy in front, or clients could forge their address."""
    if settings.proxy_hops:
        hops = settings.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)


def register_database(app: Flask, settings: Settings) -> None:
    if settings.database_url.startswith("sqlite:///"):
        Path(settings.database_url.removeprefix("sqlite:///")).parent.mkdir(
            parents=True, exist_ok=True
        )
    db.init_app(app)
    migrate.init_app(
        app, db, directory=str(ROOT / "migrations"), render_as_batch=True, compare_type=True
    )
    with app.app_context():
        configure_engine(db.engine)


def register_browsers(app: Flask, settings: Settings) -> None:
    from .admin import init_admin

    init_admin(
        app,
        production=settings.midtrans.is_production,
        translations=str(ROOT / "translations"),
    )


def register_blueprints(app: Flask) -> None:
    """One blueprint per caller: client apps, Midtrans, probes, the API document, admins."""
    from . import admin, api, health, openapi, webhooks

    for blueprint in (api.bp, webhooks.bp, health.bp, openapi.bp, admin.bp):
        app.register_blueprint(blueprint)
