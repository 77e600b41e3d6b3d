"""`make run` (scripts/run.py) on a fresh copy of the repository: it prepares everything, prints
headers and a curl that work, keeps the same credentials on a second run, and Ctrl-C leaves no
process behind."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from e2e.servers import REPO, clean_env, free_port, post_charge

from bench.processes import FLASK, Piped, run

pytestmark = pytest.mark.timeout(150)

NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv", "instance", ".env", "__pycache__", ".ruff_cache", ".pytest_cache", "bench"
)


class MakeRun:
    """scripts/run.py running in `folder`; its output (and its children's) is collected."""

    def __init__(self, folder: Path, port: int, simulator_port: int):
        env = {**clean_env(), "PORT": str(port), "SIMULATOR_PORT": str(simulator_port)}
        env["GUNICORN_WORKERS"] = "2"
        del env["PYTHONPATH"]  # the copy must run its own code
        self.folder = folder
        self.process = Piped([sys.executable, "scripts/run.py"], env=env, cwd=folder)

    def output(self) -> str:
        return self.process.output()

    def wait_for(self, pattern: str, timeout: float = 75) -> re.Match:
        found = self.process.wait_for(pattern, timeout)
        if found is None:
            self.stop()
            pytest.fail(f"make run never printed {pattern!r}:\n{self.output()}")
        return found

    def stop(self) -> int:
        """Ctrl-C; its exit code (-9 if it had to be killed after 45 s)."""
        if self.process.alive():
            self.process.signal(signal.SIGINT, 45)
        self.process.close()
        return self.process.popen.returncode


def processes_in(folder: Path) -> list[str]:
    """Command lines of the processes whose working directory is `folder`."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and Path(os.readlink(proc / "cwd")) == folder:
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return found


def port_is_closed(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def fresh_clone(tmp_path) -> Path:
    folder = tmp_path / "midtrans-gateway"
    shutil.copytree(REPO, folder, ignore=NOT_COPIED)
    return folder.resolve()


def test_make_run_serves_a_working_demo_and_stops_cleanly(fresh_clone):
    port, simulator_port = free_port(), free_port()
    run = MakeRun(fresh_clone, port, simulator_port)
    try:
        key = run.wait_for(r"^\s*X-Api-Key: (\S+)$").group(1)
        assert re.search(r"^\s*X-App-Code: demo$", run.output(), re.MULTILINE)
        admin_password = run.wait_for(r"user admin, password (\S+)\)").group(1)
        assert f"http://127.0.0.1:{simulator_port}/_sim/" in run.output()
        assert "local simulator" in run.output()

        # The printed curl command, run as printed.
        curl = run.wait_for(r"^\s*curl -sS -X POST (?:.*\\\n)+.*$").group(0)
        order_id = re.search(r'"order_id": "([^"]+)"', curl).group(1)
        body = {"order_id": order_id, "amount": 150000}
        headers = {"X-App-Code": "demo", "X-Api-Key": key}
        assert f"-H 'X-Api-Key: {key}'" in curl and f"http://127.0.0.1:{port}/charge" in curl
        answer = post_charge(f"http://127.0.0.1:{port}", headers, **body)
        page = requests.get(answer.json()["redirect_url"], timeout=10)
        assert page.status_code == 200 and order_id in page.text
    finally:
        code = run.stop()
    assert code == 0, run.output()
    assert port_is_closed(port) and port_is_closed(simulator_port)
    assert processes_in(fresh_clone) == []

    env_file = fresh_clone / ".env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert re.search(r"^SECRET_KEY=[0-9a-f]{64}$", env_file.read_text(), re.MULTILINE)
    # Pretend orders live in their own database, apart from the one used with real Midtrans.
    assert (fresh_clone / "instance" / "simulator.db").exists()
    assert not (fresh_clone / "instance" / "gateway.db").exists()
    credentials = fresh_clone / "instance" / "demo-credentials.txt"
    assert credentials.stat().st_mode & 0o777 == 0o600
    assert key in credentials.read_text() and admin_password in credentials.read_text()

    # A second run on an edited .env without SECRET_KEY: the edit stays, a key is added, and
    # the same credentials are printed again.
    env_file.write_text("# my own settings\nLOG_LEVEL=WARNING\n")
    again = MakeRun(fresh_clone, port, simulator_port)
    try:
        assert again.wait_for(r"^\s*X-Api-Key: (\S+)$").group(1) == key
        assert f"user admin, password {admin_password})" in again.output()
        assert requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
    finally:
        assert again.stop() == 0, again.output()
    text = env_file.read_text()
    assert text.startswith("# my own settings\nLOG_LEVEL=WARNING\n")
    assert re.search(r"^SECRET_KEY=[0-9a-f]{64}$", text, re.MULTILINE)
    assert processes_in(fresh_clone) == []


def flask_in(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """`flask --app wsgi ARGS` typed in `folder` as the README shows (no DATABASE_URL given)."""
    env = clean_env()
    del env["PYTHONPATH"]  # the copy's own code, found from its folder
    return run([*FLASK, *args], env=env, cwd=folder)


@pytest.mark.timeout(300)
def test_the_readme_command_line_works_beside_make_run_and_a_rotated_key_is_not_printed(
    fresh_clone,
):
    # Before anything is set up: one line saying what to do, and no empty database made.
    early = flask_in(fresh_clone, "apps", "list")
    assert early.returncode != 0 and "Traceback" not in early.stdout + early.stderr
    assert "run `flask --app wsgi db upgrade`" in early.stderr
    assert len((early.stdout + early.stderr).strip().splitlines()) == 1
    assert not (fresh_clone / "instance" / "gateway.db").exists()

    port, simulator_port = free_port(), free_port()
    gateway = f"http://127.0.0.1:{port}"
    run = MakeRun(fresh_clone, port, simulator_port)
    try:
        demo_key = run.wait_for(r"^\s*X-Api-Key: (\S+)$").group(1)
        run.wait_for(r"^Open its redirect_url")

        # The README's command, in the same folder, while make run runs: same database.
        created = flask_in(fresh_clone, "apps", "create", "shop", "--name", "Online shop")
        assert created.returncode == 0, created.stdout + created.stderr
        shop = {"X-App-Code": "shop", "X-Api-Key": created.stdout.strip().splitlines()[-1]}
        answer = post_charge(gateway, shop, "INV-1", 150000)
        assert f"127.0.0.1:{simulator_port}" in answer.json()["redirect_url"]
        listing = flask_in(fresh_clone, "apps", "list").stdout.splitlines()
        shop_line = next(line for line in listing if line.startswith("shop "))
        assert shop_line.endswith("WIB") and "never" not in shop_line  # used via the gateway

        # An admin rotates the demo key (here on the command line, as the dashboard does).
        rotated = flask_in(fresh_clone, "apps", "rotate-key", "demo")
        assert rotated.returncode == 0, rotated.stderr
        demo = {"X-App-Code": "demo", "X-Api-Key": demo_key}
        assert requests.get(f"{gateway}/status/x", headers=demo, timeout=10).status_code == 401
    finally:
        assert run.stop() == 0, run.output()
    assert not (fresh_clone / "instance" / "gateway.db").exists()

    # The next make run warns instead of printing a key (and a curl) that answers 401...
    again = MakeRun(fresh_clone, port, simulator_port)
    try:
        again.wait_for(r"^\s*Commands:")
        warning = again.wait_for(r"WARNING: .*(?:\n  .*)+").group(0)
        assert "401" in warning and "flask --app wsgi apps rotate-key demo" in warning
        assert demo_key not in again.output()
        assert demo_key not in (fresh_clone / "instance" / "demo-credentials.txt").read_text()

        # ...and its instructions work: a new key, in this folder, used at once.
        fresh = flask_in(fresh_clone, "apps", "rotate-key", "demo")
        demo["X-Api-Key"] = fresh.stdout.strip().splitlines()[-1]
        post_charge(gateway, demo, "DEMO-2", 5000)
    finally:
        assert again.stop() == 0, again.output()
    assert processes_in(fresh_clone) == []
