"""Real processes for end-to-end tests: the simulator (`python -m simulator`) and the gateway
under gunicorn with the repository's `gunicorn.conf.py`, wired together the way `make run` does.

Imported as `e2e.servers` (the `tests` folder is on pytest's pythonpath).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests
from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parents[2]
SIMULATOR_KEY = "SB-Mid-server-e2e"
SECRET_KEY = "e2e-secret-key-0123456789abcdef0123"

# Settings a developer's shell (or a `.env` written by `make run`) may hold that must not leak
# into the processes under test.
_FOREIGN = ("MIDTRANS_", "GUNICORN_", "DATABASE_URL", "SECRET_KEY", "LOG_", "CALLBACK_")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Process:
    """A child process whose output goes to `log_path`; `stop()` ends it and its children."""

    name: str
    popen: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 20) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()


def spawn(name: str, argv: list[str], *, env: dict[str, str], cwd: Path, log_dir: Path) -> Process:
    log_path = log_dir / f"{name}.log"
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Process(name, popen, log_path)


def wait_until_ready(
    process: Process, url: str, *, timeout: float = 30, ready: Callable | None = None
) -> None:
    """Poll `url` until it answers 200 (or `ready(response)`); fail with the process's log."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = requests.get(url, timeout=2)
            if ready(answer) if ready else answer.status_code == 200:
                return
        except requests.RequestException:
            pass
        if not process.alive() or time.monotonic() > deadline:
            process.stop()
            raise RuntimeError(f"{process.name} did not become ready at {url}:\n{process.log()}")
        time.sleep(0.1)


def start_simulator(*, port: int, notification_url: str, log_dir: Path) -> Process:
    argv = [sys.executable, "-m", "simulator", "--port", str(port)]
    argv += ["--server-key", SIMULATOR_KEY, "--notification-url", notification_url]
    process = spawn("simulator", argv, env=clean_env(), cwd=REPO, log_dir=log_dir)
    wait_until_ready(process, f"http://127.0.0.1:{port}/_sim/config")
    return process


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN)}
    env["PYTHONPATH"] = str(REPO)
    return env


def gateway_env(
    *, database_url: str, port: int, simulator_url: str, **extra: str
) -> dict[str, str]:
    """The environment `make run` gives the gateway when it talks to the simulator."""
    return {
        **clean_env(),
        "SECRET_KEY": SECRET_KEY,
        "DATABASE_URL": database_url,
        "MIDTRANS_SERVER_KEY": SIMULATOR_KEY,
        "MIDTRANS_API_BASE_URL": simulator_url,
        "MIDTRANS_SNAP_BASE_URL": f"{simulator_url}/snap/v1",
        "MIDTRANS_NOTIFICATION_URL": f"http://127.0.0.1:{port}/notification",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "LOG_LEVEL": "WARNING",
        **extra,
    }


def database_url(folder: Path) -> str:
    return os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{folder / 'gateway.db'}"


def reset_postgres(url: str) -> None:
    """Empty the test database (as tests/support.py does) so migrations start from nothing."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    finally:
        engine.dispose()


def flask_cli(env: dict[str, str], cwd: Path, *args: str) -> str:
    """Run `flask --app wsgi ARGS` like an operator would; its output (fails loudly)."""
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"flask {' '.join(args)} failed:\n{done.stdout}{done.stderr}"
    return done.stdout


def prepare_database(env: dict[str, str], cwd: Path) -> None:
    if env["DATABASE_URL"].startswith("postgresql"):
        reset_postgres(env["DATABASE_URL"])
    flask_cli(env, cwd, "db", "upgrade")


def create_client_app(env: dict[str, str], cwd: Path, code: str, *options: str) -> dict:
    """`flask apps create CODE ...`; the headers a client sends (the key is the last line)."""
    output = flask_cli(env, cwd, "apps", "create", code, "--name", f"{code} (e2e)", *options)
    return {"X-App-Code": code, "X-Api-Key": output.strip().splitlines()[-1]}


def start_gateway(env: dict[str, str], cwd: Path, *, log_dir: Path, name="gateway") -> Process:
    """gunicorn with the repository's gunicorn.conf.py, ready when /readyz says so."""
    argv = [sys.executable, "-m", "gunicorn", "-c", str(REPO / "gunicorn.conf.py")]
    process = spawn(name, argv, env=env, cwd=cwd, log_dir=log_dir)
    wait_until_ready(process, f"http://{env['GUNICORN_BIND']}/readyz")
    return process


@dataclass
class Stack:
    """A running simulator and gateway; `headers` authenticate the app made for the test."""

    gateway_url: str
    simulator_url: str
    headers: dict[str, str]
    env: dict[str, str]
    workdir: Path
    gateway: Process
    simulator: Process

    def stop(self) -> None:
        self.gateway.stop()
        self.simulator.stop()


def start_stack(workdir: Path, *app_options: str, code: str = "shop", **gateway_extra) -> Stack:
    """Simulator + migrated database + one client app + gunicorn, as `make run` sets them up."""
    port, sim_port = free_port(), free_port()
    simulator_url = f"http://127.0.0.1:{sim_port}"
    simulator = start_simulator(
        port=sim_port, notification_url=f"http://127.0.0.1:{port}/notification", log_dir=workdir
    )
    try:
        env = gateway_env(
            database_url=database_url(workdir),
            port=port,
            simulator_url=simulator_url,
            **gateway_extra,
        )
        prepare_database(env, workdir)
        headers = create_client_app(env, workdir, code, *app_options)
        gateway = start_gateway(env, workdir, log_dir=workdir)
    except BaseException:
        simulator.stop()
        raise
    return Stack(
        f"http://127.0.0.1:{port}", simulator_url, headers, env, workdir, gateway, simulator
    )
