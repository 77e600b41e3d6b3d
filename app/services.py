"""The gateway's services, built once in `create_app` and reached through `gateway()`.

One typed place instead of string lookups in `current_app.extensions`: the checked settings,
the one client of Midtrans, the address policy for callback URLs, the cache of checked API keys
and the registry of the backlog gauges `/metrics` adds. Settings are read from here, never
copied into `app.config` (Flask's own keys aside)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from flask import Flask, current_app

from .callback_sender import AddressPolicy
from .config import Settings
from .midtrans import Midtrans

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from .auth import AuthCache

_KEY = "midtrans_gateway"


@dataclass(slots=True)
class Gateway:
    settings: Settings
    midtrans: Midtrans
    callback_policy: AddressPolicy
    auth_cache: AuthCache  # API keys checked once per AUTH_CACHE_SECONDS (tests swap it)
    backlog: CollectorRegistry  # the database backlogs, read at each scrape of /metrics

    @classmethod
    def build(cls, settings: Settings, app: Flask) -> Gateway:
        # Imported here: both modules reach their settings through `gateway()`.
        from .auth import AuthCache
        from .observability import backlog_registry

        return cls(
            settings=settings,
            midtrans=Midtrans(settings.midtrans),
            callback_policy=AddressPolicy.parse(settings.callback_allowed_hosts),
            auth_cache=AuthCache(
                settings.auth_cache_seconds, Path(app.instance_path) / "auth-epoch"
            ),
            backlog=backlog_registry(app),
        )

    def install(self, app: Flask) -> None:
        app.extensions[_KEY] = self


def gateway(app: Flask | None = None) -> Gateway:
    """This app's services (the current app's when none is given)."""
    return (app or current_app).extensions[_KEY]
