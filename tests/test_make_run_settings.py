"""scripts/run.py (`make run`) and `.env`: its simulator settings go into a block of its own at
the end, so `flask --app wsgi ...` in the same folder uses the database the running gateway
uses; the user's lines are never touched, and its own decisions ignore the block."""

from __future__ import annotations

import importlib.util
import io
import os
import sys

import pytest
from dotenv import dotenv_values
from e2e.servers import REPO


@pytest.fixture
def run(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("make_run", REPO / "scripts" / "run.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "REPO", tmp_path)
    monkeypatch.setattr(module, "ENV_FILE", tmp_path / ".env")
    monkeypatch.setattr(module, "SIMULATOR_DATABASE", tmp_path / "instance" / "simulator.db")
    for name in list(os.environ):
        if name.startswith(("MIDTRANS_", "DATABASE_URL", "CALLBACK_", "LOG_", "SECRET_KEY")):
            monkeypatch.delenv(name)
    return module


def read(env_file) -> dict[str, str]:
    return dotenv_values(stream=io.StringIO(env_file.read_text()))


def test_the_simulator_settings_reach_the_command_line_through_env(run, tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("# mine\nLOG_LEVEL=WARNING\nSECRET_KEY=abc")
    settings = run.read_settings()
    run.write_env_block(run.wiring(run.gateway_env(settings, 5000, "http://127.0.0.1:5001")))
    text = env_file.read_text()
    assert text.startswith("# mine\nLOG_LEVEL=WARNING\nSECRET_KEY=abc\n\n")
    values = read(env_file)  # what the gateway and `flask --app wsgi` read
    assert set(values) == {  # nothing else of make run's environment (PATH...)
        *("LOG_LEVEL", "SECRET_KEY", "DATABASE_URL", "CALLBACK_ALLOWED_HOSTS"),
        *("MIDTRANS_SERVER_KEY", "MIDTRANS_CLIENT_KEY", "MIDTRANS_IS_PRODUCTION"),
        "MIDTRANS_NOTIFICATION_URL",
        *("MIDTRANS_API_BASE_URL", "MIDTRANS_SNAP_BASE_URL"),
    }
    assert values["DATABASE_URL"] == f"sqlite:///{tmp_path / 'instance' / 'simulator.db'}"
    assert values["MIDTRANS_API_BASE_URL"] == "http://127.0.0.1:5001"
    assert values["MIDTRANS_SERVER_KEY"] == run.SIMULATOR_KEY
    assert values["LOG_LEVEL"] == "WARNING"
    # make run's own decisions ignore its block: still no server key of the user's.
    assert "MIDTRANS_SERVER_KEY" not in run.read_settings()

    # Rewritten, not repeated, by the next run (here on other ports).
    run.write_env_block(
        run.wiring(run.gateway_env(run.read_settings(), 5100, "http://127.0.0.1:5101"))
    )
    assert env_file.read_text().count(run.BLOCK_START) == 1
    assert read(env_file)["MIDTRANS_API_BASE_URL"] == "http://127.0.0.1:5101"


def test_the_users_own_database_and_hosts_are_kept(run, tmp_path):
    (tmp_path / ".env").write_text(
        "DATABASE_URL=sqlite:////srv/mine.db\nCALLBACK_ALLOWED_HOSTS=10.0.0.0/8\n"
    )
    wiring = run.wiring(run.gateway_env(run.read_settings(), 5000, "http://127.0.0.1:5001"))
    assert "DATABASE_URL" not in wiring and "CALLBACK_ALLOWED_HOSTS" not in wiring


def test_a_run_against_midtrans_removes_the_block(run, tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("SECRET_KEY=abc\n")
    run.write_env_block({"DATABASE_URL": "sqlite:////x/simulator.db"})
    env_file.write_text(env_file.read_text() + "MIDTRANS_SERVER_KEY=SB-Mid-server-real\n")
    settings = run.read_settings()
    assert settings["MIDTRANS_SERVER_KEY"] == "SB-Mid-server-real"
    run.write_env_block({})
    assert run.BLOCK_START not in env_file.read_text()
    assert "DATABASE_URL" not in read(env_file)
    assert read(env_file)["MIDTRANS_SERVER_KEY"] == "SB-Mid-server-real"


def test_a_folder_with_spaces_survives_the_round_trip(run, tmp_path):
    (tmp_path / ".env").write_text("")
    url = "sqlite:////home/me/my shop's gateway/instance/simulator.db"
    run.write_env_block({"DATABASE_URL": url})
    assert read(tmp_path / ".env")["DATABASE_URL"] == url
