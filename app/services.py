"""The gateway's services, built once in `create_app` and reached through `gateway()`.

One typed place instead of string lookups in `current_app.extensions`: the checked settings,
the one client of Midtrans, and the address policy for callback URLs. Settings are read from
here, never copied into `app.config` (Flask's own keys aside)."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app

from .callback_sender import AddressPolicy
from .config import Settings
from .midtrans import Midtrans

_KEY = "midtrans_gateway"


@dataclass(slots=True)
class Gateway:
    settings: Settings
    midtrans: Midtrans
    callback_policy: AddressPolicy

    @classmethod
    def build(cls, settings: Settings) -> Gateway:
        return cls(
            settings=settings,
            midtrans=Midtrans(settings.midtrans),
            callback_policy=AddressPolicy.parse(settings.callback_allowed_hosts),
        )

    def install(self, app: Flask) -> None:
        app.extensions[_KEY] = self


def gateway(app: Flask | None = None) -> Gateway:
    """This app's services (the current app's when none is given)."""
    return (app or current_app).extensions[_KEY]
