"""Start-up with a bad setting or an unmigrated database: one line naming the problem, no
traceback, a non-zero exit, from the command line, the worker and gunicorn alike (what
systemd's journal shows an operator). Run as real processes, as systemd runs them."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from e2e.servers import REPO, clean_env, free_port, reset_postgres

from app.config import ConfigError, Settings, secret_key_weakness
from bench import processes
from bench.processes import FLASK

STRONG_KEY = "5f0c9e1d7a3b48e2c6f19d0a7b4e3c82"
PRODUCTION = {"MIDTRANS_IS_PRODUCTION": "true", "MIDTRANS_SERVER_KEY": "Mid-server-live-key"}
PASSWORD = "hunter2-db-password"
MAKE_ONE = 'python3 -c "import secrets; print(secrets.token_hex(32))"'


# -- SECRET_KEY: random, not just long --------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "aaaaaaaaaaaaaaaa",  # the example
        "change-me",  # the user's document's placeholder
        "a" * 64,
        "ab" * 20,
        "passwordpasswordpasswordpassword",
        "0123456789abcdef" * 2,
        "change-me-change-me-change-me-please",
        "Xk9#mQ2$" + "z" * 8 + "pL7&vR4!wN6*",  # 32 characters, a long run
    ],
)
def test_production_refuses_a_made_up_secret_key_and_says_how_to_make_one(key):
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({**PRODUCTION, "SECRET_KEY": key})
    message = str(refused.value)
    assert message.startswith("SECRET_KEY ") and MAKE_ONE in message
    assert key not in message and "\n" not in message


def test_generated_keys_are_always_accepted():
    for _ in range(3000):
        for key in (secrets.token_hex(32), secrets.token_hex(16), secrets.token_urlsafe(32)):
            assert secret_key_weakness(key) is None, key
    Settings.from_env({**PRODUCTION, "SECRET_KEY": STRONG_KEY})


def test_a_weak_key_is_fine_outside_production():
    assert Settings.from_env({"SECRET_KEY": "aaaaaaaaaaaaaaaa"}).secret_key == "aaaaaaaaaaaaaaaa"


@pytest.mark.parametrize(
    "url",
    [
        "nonsense",
        f"mysql://gateway:{PASSWORD}@127.0.0.1/gateway",
        f"postgresql+psycopg2://gateway:{PASSWORD}@127.0.0.1/gateway",
        f"postgresql://gateway:{PASSWORD}@127.0.0.1:port/gateway",
    ],
)
def test_a_database_url_the_gateway_cannot_use_is_refused_at_once(url):
    with pytest.raises(ConfigError, match="^DATABASE_URL ") as refused:
        Settings.from_env({"DATABASE_URL": url})
    assert PASSWORD not in str(refused.value)


# -- each program, each bad setting -------------------------------------------------------------

PROGRAMS = {
    "cli": ["-m", "flask", "--app", "wsgi", "apps", "list"],
    "worker": ["-m", "flask", "--app", "wsgi", "worker", "--once"],
    "gunicorn": ["-m", "gunicorn", "-c", str(REPO / "gunicorn.conf.py")],
}
BAD_SETTINGS = {
    "weak SECRET_KEY in production": (
        {**PRODUCTION, "SECRET_KEY": "aaaaaaaaaaaaaaaa"},
        "SECRET_KEY",
    ),
    "no SECRET_KEY in production": (PRODUCTION, "SECRET_KEY"),
    "SB- key in production": (
        {**PRODUCTION, "SECRET_KEY": STRONG_KEY, "MIDTRANS_SERVER_KEY": "SB-Mid-server-abc"},
        "MIDTRANS_SERVER_KEY",
    ),
    "LOG_FILE in a missing folder": ({"LOG_FILE": "{tmp}/no-such-folder/app.log"}, "LOG_FILE"),
    "LOG_FILE that cannot be created": ({"LOG_FILE": "/proc/app.log"}, "LOG_FILE"),
    "DATABASE_URL that is no URL": ({"DATABASE_URL": "nonsense"}, "DATABASE_URL"),
    "DATABASE_URL of an unsupported database": (
        {"DATABASE_URL": f"mysql://gateway:{PASSWORD}@127.0.0.1/gateway"},
        "DATABASE_URL",
    ),
    "MIDTRANS_TIMEOUT": ({"MIDTRANS_TIMEOUT": "soon"}, "MIDTRANS_TIMEOUT"),
    "LOG_LEVEL": ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
    "MIDTRANS_IS_PRODUCTION": ({"MIDTRANS_IS_PRODUCTION": "maybe"}, "MIDTRANS_IS_PRODUCTION"),
}


def run(program: list[str], tmp_path: Path, settings: dict[str, str], *, dotenv=False):
    """`program` started in `tmp_path` with `settings` (in the environment, or in `.env`)."""
    env = {
        **clean_env(),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'gateway.db'}",
        "GUNICORN_BIND": f"127.0.0.1:{free_port()}",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    settings = {k: v.replace("{tmp}", str(tmp_path)) for k, v in settings.items()}
    if dotenv:
        (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        env = {k: v for k, v in env.items() if k not in settings}
    else:
        env.update(settings)
    return processes.run([sys.executable, *program], env=env, cwd=tmp_path)


def assert_one_line(done: subprocess.CompletedProcess, *words: str) -> str:
    output = done.stdout + done.stderr
    lines = [line for line in output.splitlines() if line.strip()]
    assert done.returncode != 0, output
    assert "Traceback" not in output
    assert len(lines) == 1, output
    for word in words:
        assert word in lines[0], output
    return lines[0]


@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize("bad", BAD_SETTINGS)
def test_a_bad_setting_is_one_line_naming_it(program, bad, tmp_path):
    settings, name = BAD_SETTINGS[bad]
    line = assert_one_line(run(PROGRAMS[program], tmp_path, settings), name)
    assert "aaaaaaaaaaaaaaaa" not in line and PASSWORD not in line
    assert not (tmp_path / "gateway.db").exists()


@pytest.mark.parametrize("program", PROGRAMS)
def test_a_bad_setting_in_dotenv_is_one_line_too(program, tmp_path):
    settings = {**PRODUCTION, "SECRET_KEY": "aaaaaaaaaaaaaaaa"}
    line = assert_one_line(run(PROGRAMS[program], tmp_path, settings, dotenv=True), "SECRET_KEY")
    assert MAKE_ONE in line


def test_gunicorn_sizes_are_checked_the_same_way(tmp_path):
    done = run(PROGRAMS["gunicorn"], tmp_path, {"GUNICORN_WORKERS": "many"})
    assert_one_line(done, "GUNICORN_WORKERS")


# -- a database that was never migrated -------------------------------------------------------

UPGRADE = "run `flask --app wsgi db upgrade`"


def flask(tmp_path: Path, database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**clean_env(), "DATABASE_URL": database_url}
    return processes.run([*FLASK, *args], env=env, cwd=tmp_path)


@pytest.mark.parametrize(
    "command",
    [
        ("apps", "create", "shop", "--name", "Shop"),
        ("apps", "list"),
        ("admins", "create", "ops", "--password", "long enough password"),
        ("worker", "--once"),
    ],
)
def test_a_command_on_a_database_never_made_says_to_migrate(command, tmp_path):
    database = tmp_path / "instance" / "gateway.db"
    assert_one_line(flask(tmp_path, f"sqlite:///{database}", *command), UPGRADE)
    assert not database.exists()  # no empty database left behind


def test_a_command_on_an_empty_database_says_to_migrate(tmp_path):
    database = tmp_path / "gateway.db"
    database.touch()
    done = flask(tmp_path, f"sqlite:///{database}", "apps", "create", "shop", "--name", "Shop")
    assert_one_line(done, "no tables", UPGRADE)


def test_a_command_on_a_database_missing_migrations_says_to_migrate(tmp_path):
    url = os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{tmp_path / 'gateway.db'}"
    if url.startswith("postgresql"):
        reset_postgres(url)
    assert flask(tmp_path, url, "db", "upgrade", "0001").returncode == 0
    done = flask(tmp_path, url, "apps", "create", "shop", "--name", "Shop")
    assert_one_line(done, "migrations", UPGRADE)
    assert flask(tmp_path, url, "db", "upgrade").returncode == 0
    done = flask(tmp_path, url, "apps", "create", "shop", "--name", "Shop")
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_empty_postgresql_database_says_to_migrate(tmp_path):
    url = os.environ.get("TEST_DATABASE_URL", "")
    if not url.startswith("postgresql"):
        pytest.skip("TEST_DATABASE_URL is not PostgreSQL")
    reset_postgres(url)
    assert_one_line(flask(tmp_path, url, "apps", "list"), "no tables", UPGRADE)


def test_a_database_that_does_not_answer_is_one_line(tmp_path):
    url = f"postgresql://gateway:{PASSWORD}@127.0.0.1:{free_port()}/gateway"
    line = assert_one_line(flask(tmp_path, url, "apps", "list"), "DATABASE_URL")
    assert PASSWORD not in line
