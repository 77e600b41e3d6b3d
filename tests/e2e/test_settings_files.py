"""The files an operator edits or deploys with: `.env.example` and `gunicorn.conf.py`."""

from __future__ import annotations

import re
import sys

import pytest
from dotenv import dotenv_values
from e2e.servers import REPO, clean_env

from app.config import Settings
from bench.processes import run

# SPEC.md's configuration table, and the callback setting.
SPEC_SETTINGS = {
    "SECRET_KEY",
    "DATABASE_URL",
    "MIDTRANS_SERVER_KEY",
    "MIDTRANS_CLIENT_KEY",
    "MIDTRANS_MERCHANT_ID",
    "MIDTRANS_IS_PRODUCTION",
    "MIDTRANS_API_BASE_URL",
    "MIDTRANS_SNAP_BASE_URL",
    "MIDTRANS_TIMEOUT",
    "MIDTRANS_NOTIFICATION_URL",
    "LOG_LEVEL",
    "LOG_FILE",
    "LOG_FORMAT",
    "CALLBACK_ALLOWED_HOSTS",
}
REAL_LOOKING_KEY = re.compile(r"(SB-)?Mid-(server|client)-(?!REDACTED\b)\S+")


def settings_read_by_the_gateway() -> set[str]:
    """Setting names the gateway's code reads from its environment."""
    pattern = re.compile(r'(?:env\.get\(|_\w+\(env, |environ\.get\(|environ\[)\s*"([A-Z][A-Z_]+)"')
    found = set()
    for path in (REPO / "app").rglob("*.py"):
        found |= set(pattern.findall(path.read_text()))
    return found


def example_lines() -> str:
    return (REPO / ".env.example").read_text()


@pytest.mark.parametrize("name", sorted(SPEC_SETTINGS | settings_read_by_the_gateway()))
def test_env_example_documents_every_setting(name):
    assert re.search(rf"^#? ?{name}=", example_lines(), re.MULTILINE), f"{name} missing"


def test_env_example_holds_no_real_looking_key():
    assert not REAL_LOOKING_KEY.search(example_lines())


def test_env_example_copied_as_is_gives_a_gateway_that_starts(tmp_path):
    values = {k: v for k, v in dotenv_values(REPO / ".env.example").items() if v is not None}
    settings = Settings.from_env(values, instance_path=str(tmp_path))
    assert not settings.midtrans.is_production
    assert settings.database_url.startswith("sqlite:///")


def effective_gunicorn_config(**env: str) -> dict[str, str]:
    done = run(
        [sys.executable, "-m", "gunicorn", "-c", str(REPO / "gunicorn.conf.py"), "--print-config"],
        cwd=REPO,
        # A folder given, so that printing the configuration makes no temporary one.
        env={**clean_env(), "PROMETHEUS_MULTIPROC_DIR": "/nonexistent/metrics", **env},
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return dict(
        (name.strip(), value.strip())
        for name, _, value in (line.partition("=") for line in done.stdout.splitlines())
    )


def test_gunicorn_uses_threads_and_outlasts_a_slow_midtrans():
    config = effective_gunicorn_config(MIDTRANS_TIMEOUT="25")
    assert config["worker_class"] == "gthread"
    assert int(config["timeout"]) > 25 and int(config["graceful_timeout"]) > 25
    assert config["bind"] == "['127.0.0.1:5000']"
    assert int(config["threads"]) >= 2
    assert 1 <= int(config["workers"]) <= 8
    assert config["wsgi_app"] == "wsgi:app"


def test_gunicorn_takes_its_sizes_from_the_environment():
    config = effective_gunicorn_config(
        GUNICORN_BIND="0.0.0.0:8080", GUNICORN_WORKERS="3", GUNICORN_THREADS="4"
    )
    assert config["bind"] == "['0.0.0.0:8080']"
    assert (config["workers"], config["threads"]) == ("3", "4")


def test_gunicorn_access_log_leaves_out_query_strings_and_headers():
    log_format = effective_gunicorn_config()["access_log_format"]
    # %(r)s and %(q)s carry the query string, %(u)s the Basic-auth user, %({name}i)s headers,
    # %(f)s the referer (which may hold a payment token).
    for atom in ("%(r)s", "%(q)s", "%(u)s", "%(f)s", "i)s"):
        assert atom not in log_format
    assert "%(U)s" in log_format and "%(s)s" in log_format
