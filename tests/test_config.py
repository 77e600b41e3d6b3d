"""Settings from the environment: SPEC names, safe defaults, no insecure fallback."""

from __future__ import annotations

import pytest

from app.config import (
    PRODUCTION_API,
    PRODUCTION_SNAP,
    SANDBOX_API,
    SANDBOX_SNAP,
    ConfigError,
    Settings,
)
from app.services import gateway

# A random key: production refuses a made-up one such as "x" * 40 (tests/test_start_up.py).
STRONG_KEY = "5f0c9e1d7a3b48e2c6f19d0a7b4e3c82"


def test_defaults_are_sandbox_sqlite_and_ten_second_timeout(tmp_path):
    settings = Settings.from_env({}, instance_path=str(tmp_path))
    m = settings.midtrans
    assert (m.api_base_url, m.snap_base_url) == (SANDBOX_API, SANDBOX_SNAP)
    assert m.timeout == 10 and m.is_production is False and m.notification_url == ""
    assert settings.database_url == f"sqlite:///{tmp_path / 'gateway.db'}"
    assert settings.secret_key_is_ephemeral and len(settings.secret_key) == 64


def test_production_flag_picks_production_hosts():
    s = Settings.from_env(
        {"MIDTRANS_IS_PRODUCTION": "true", "SECRET_KEY": STRONG_KEY, "MIDTRANS_SERVER_KEY": "Mid-a"}
    )
    assert (s.midtrans.api_base_url, s.midtrans.snap_base_url) == (PRODUCTION_API, PRODUCTION_SNAP)


def test_every_spec_name_is_read():
    s = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://u@h/db",
            "SECRET_KEY": "k" * 32,
            "MIDTRANS_SERVER_KEY": "SB-Mid-server-abc",
            "MIDTRANS_CLIENT_KEY": "SB-Mid-client-abc",
            "MIDTRANS_MERCHANT_ID": "G123",
            "MIDTRANS_IS_PRODUCTION": "false",
            "MIDTRANS_API_BASE_URL": "http://127.0.0.1:5001/",
            "MIDTRANS_SNAP_BASE_URL": "http://127.0.0.1:5001/snap/v1",
            "MIDTRANS_TIMEOUT": "2.5",
            "MIDTRANS_NOTIFICATION_URL": "https://gw.example.com/notification",
            "LOG_LEVEL": "debug",
            "LOG_FILE": "app.log",
            "LOG_FORMAT": "json",
        }
    )
    assert s.database_url == "postgresql+psycopg://u@h/db"
    assert s.midtrans.api_base_url == "http://127.0.0.1:5001"
    assert s.midtrans.snap_base_url == "http://127.0.0.1:5001/snap/v1"
    assert s.midtrans.timeout == 2.5
    assert s.midtrans.client_key == "SB-Mid-client-abc" and s.midtrans.merchant_id == "G123"
    assert s.midtrans.notification_url == "https://gw.example.com/notification"
    assert (s.log_level, s.log_file, s.log_format) == ("DEBUG", "app.log", "json")


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"MIDTRANS_IS_PRODUCTION": "true"}, "SECRET_KEY"),
        ({"MIDTRANS_IS_PRODUCTION": "true", "SECRET_KEY": "change-me"}, "SECRET_KEY"),
        (
            {
                "MIDTRANS_IS_PRODUCTION": "true",
                "SECRET_KEY": STRONG_KEY,
                "MIDTRANS_SERVER_KEY": "SB-Mid-server-x",
            },
            "sandbox key",
        ),
        ({"MIDTRANS_IS_PRODUCTION": "maybe"}, "MIDTRANS_IS_PRODUCTION"),
        ({"MIDTRANS_TIMEOUT": "soon"}, "MIDTRANS_TIMEOUT"),
        ({"MIDTRANS_TIMEOUT": "0"}, "MIDTRANS_TIMEOUT"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
    ],
)
def test_bad_settings_stop_start_up_naming_the_setting(env, names):
    with pytest.raises(ConfigError, match=names):
        Settings.from_env(env)


def test_secrets_are_not_in_the_settings_repr():
    s = Settings.from_env({"SECRET_KEY": "topsecretvalue123", "MIDTRANS_SERVER_KEY": "SB-Mid-x"})
    assert "topsecretvalue123" not in repr(s) and "SB-Mid-x" not in repr(s)


def test_real_environment_wins_over_dotenv(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("MIDTRANS_TIMEOUT=3\nMIDTRANS_MERCHANT_ID=FROM-FILE\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MIDTRANS_TIMEOUT", "7")
    monkeypatch.delenv("MIDTRANS_MERCHANT_ID", raising=False)
    s = Settings.from_env(instance_path=str(tmp_path))
    assert s.midtrans.timeout == 7
    assert s.midtrans.merchant_id == "FROM-FILE"
    monkeypatch.delenv("MIDTRANS_MERCHANT_ID", raising=False)


def test_the_abuse_limits_are_read_from_the_environment(env, build_app):
    flask_app = build_app(
        {
            **env,
            "RATELIMIT_FAILED_AUTH": "7 per minute",
            "RATELIMIT_REJECTED_NOTIFICATIONS": "9 per hour",
        },
        reset=False,
    )
    assert gateway(flask_app).settings.ratelimit_failed_auth == "7 per minute"
    assert gateway(flask_app).settings.ratelimit_rejected_notifications == "9 per hour"


@pytest.mark.parametrize("name", ["MIDTRANS_TIMEOUT", "CALLBACK_TIMEOUT"])
@pytest.mark.parametrize("value", ["51", "nan", "inf", "0", "-1"])
def test_call_timeouts_stay_within_the_workers_stop_bound(env, name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({**env, name: value})
