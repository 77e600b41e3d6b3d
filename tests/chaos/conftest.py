"""Chaos fixtures: a simulator that sends no notifications of its own, the gateway under real
gunicorn, the gateway's worker as a subprocess, and a direct view of the gateway's database.

Built from `e2e.servers` (imported, not edited). Its `start_stack` always gives the simulator a
notification URL, so the few lines that start the stack are repeated here without one: these
tests decide themselves which notifications reach the gateway. The database is SQLite in a
temporary folder, or PostgreSQL where TEST_DATABASE_URL is set (its schema is emptied first).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from e2e.servers import (
    SIMULATOR_KEY,
    Process,
    clean_env,
    database_url,
    flask_cli,
    free_port,
    gateway_env,
    prepare_database,
    spawn,
    start_gateway,
    wait_until_ready,
)
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from app.database import configure_engine

PROBLEM_MARKS = ("Traceback", "ERROR", "CRITICAL", "database is locked")


def start_silent_simulator(*, port: int, log_dir: Path) -> Process:
    """The simulator without a notification URL: it notifies nobody about any order."""
    argv = [sys.executable, "-m", "simulator", "--port", str(port), "--server-key", SIMULATOR_KEY]
    process = spawn("simulator", argv, env=clean_env(), cwd=log_dir, log_dir=log_dir)
    wait_until_ready(process, f"http://127.0.0.1:{port}/_sim/config")
    return process


class GatewayDB:
    """The gateway's database as the test sees it: plain SQL, configured like the gateway's
    own engine (WAL, busy timeout, BEGIN IMMEDIATE on SQLite), so a write from the test
    queues behind the gateway's writers instead of failing."""

    def __init__(self, url: str):
        self.engine: Engine = create_engine(url)
        configure_engine(self.engine)

    def rows(self, sql: str, **params) -> list[dict]:
        with self.engine.begin() as conn:
            return [dict(row._mapping) for row in conn.execute(text(sql), params)]

    def execute(self, statement, **params) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(text(statement) if isinstance(statement, str) else statement)
            return result.rowcount

    def close(self) -> None:
        self.engine.dispose()


@dataclass
class ChaosStack:
    """A silent simulator, one gateway (restartable) and its database; `headers` authenticate
    the one client app, whose orders Midtrans knows as `prefix + order_id`."""

    gateway_url: str
    simulator_url: str
    headers: dict[str, str]
    env: dict[str, str]
    workdir: Path
    gateway: Process
    simulator: Process
    db: GatewayDB
    signing_secret: str | None = None
    prefix: str = ""
    workers: list[Process] = field(default_factory=list)

    def midtrans_id(self, order_id: str) -> str:
        return self.prefix + order_id

    def restart_gateway(self) -> int:
        """SIGTERM gunicorn (in-flight requests finish), then start it again on the same port;
        the old master's exit code."""
        code = stop_process(self.gateway)
        self.gateway = start_gateway(self.env, self.workdir, log_dir=self.workdir)
        return code

    def start_worker(self, interval: float = 0.2, timeout: float = 30) -> Process:
        """`flask --app wsgi worker` with the gateway's environment, as systemd would run it;
        returns once it runs its loop (its SIGTERM handler is in place from then on)."""
        argv = [sys.executable, "-m", "flask", "--app", "wsgi", "worker"]
        argv += ["--interval", str(interval)]
        env = {**self.env, "LOG_LEVEL": "INFO"}  # to see "worker started"
        log_path = self.workdir / "worker.log"
        before = log_path.read_text().count("worker started") if log_path.exists() else 0
        worker = spawn("worker", argv, env=env, cwd=self.workdir, log_dir=self.workdir)
        self.workers.append(worker)
        deadline = time.monotonic() + timeout
        while log_path.read_text().count("worker started") <= before:
            if not worker.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start:\n{log_path.read_text()}")
            time.sleep(0.05)
        return worker

    def restart_worker(self, worker: Process, interval: float = 0.2) -> tuple[int, Process]:
        """SIGTERM the worker (it finishes the current item), then start a new one; the old
        one's exit code and the new one."""
        return self.stop_worker(worker), self.start_worker(interval)

    def stop_worker(self, worker: Process) -> int:
        return stop_process(worker)

    def log_problems(self) -> list[str]:
        """Lines of the gateway's and workers' logs that show a failure: a traceback, an
        error, "database is locked"."""
        problems = []
        for name in ("gateway", "worker"):
            path = self.workdir / f"{name}.log"
            if path.exists():
                problems += [
                    f"{name}: {line}"
                    for line in path.read_text(errors="replace").splitlines()
                    if any(mark in line for mark in PROBLEM_MARKS)
                ]
        return problems

    def logs(self) -> str:
        parts = []
        for name in ("gateway", "worker"):
            path = self.workdir / f"{name}.log"
            if path.exists():
                parts.append(f"----- {name}.log (tail) -----\n{path.read_text()[-20_000:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.gateway.stop()
        self.simulator.stop()
        self.db.close()


def stop_process(process: Process, timeout: float = 30) -> int:
    """SIGTERM and wait; the exit code (SIGKILL and -9 if it does not stop in time)."""
    if process.alive():
        process.popen.send_signal(signal.SIGTERM)
    try:
        return process.popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.stop(timeout=0)
        return -9


@pytest.fixture
def chaos_stack(tmp_path) -> Iterator:
    """A factory: `chaos_stack(*app_options, **gateway_env)` starts a silent simulator, a fresh
    database with one app `chaos` (prefix `chaos-`), and gunicorn; all stopped at teardown."""
    started: list[ChaosStack] = []

    def start(*app_options: str, code: str = "chaos", **extra: str) -> ChaosStack:
        workdir = tmp_path / f"stack{len(started)}"
        workdir.mkdir()
        port, sim_port = free_port(), free_port()
        simulator_url = f"http://127.0.0.1:{sim_port}"
        simulator = start_silent_simulator(port=sim_port, log_dir=workdir)
        db = None
        try:
            env = gateway_env(
                database_url=database_url(workdir),
                port=port,
                simulator_url=simulator_url,
                # No X-Override-Notification either: only the test's notifications arrive.
                MIDTRANS_NOTIFICATION_URL="",
                # A few hundred orders in a minute is the point, not the rate limit; nor is
                # the limit on forged notifications from one address (all come from 127.0.0.1).
                RATELIMIT_PER_APP="100000 per minute",
                RATELIMIT_REJECTED_NOTIFICATIONS="100000 per minute",
                **extra,
            )
            prepare_database(env, workdir)
            output = flask_cli(
                env, workdir, "apps", "create", code, "--name", f"{code} (chaos)", *app_options
            )
            headers = create_client_app_headers(code, output)
            db = GatewayDB(env["DATABASE_URL"])
            gateway = start_gateway(env, workdir, log_dir=workdir)
        except BaseException:
            simulator.stop()
            if db is not None:
                db.close()
            raise
        secret = next(
            (
                line.split(": ", 1)[1]
                for line in output.splitlines()
                if line.startswith("Signing secret:")
            ),
            None,
        )
        stack = ChaosStack(
            gateway_url=f"http://127.0.0.1:{port}",
            simulator_url=simulator_url,
            headers=headers,
            env=env,
            workdir=workdir,
            gateway=gateway,
            simulator=simulator,
            db=db,
            signing_secret=secret,
            prefix=f"{code}-",
        )
        started.append(stack)
        return stack

    yield start
    for stack in started:
        stack.stop()


def create_client_app_headers(code: str, output: str) -> dict[str, str]:
    """The headers a client sends: the API key is the last line `apps create` prints."""
    return {"X-App-Code": code, "X-Api-Key": output.strip().splitlines()[-1]}


class Http:
    """One `requests.Session` per thread (a session is not meant to be shared), every answer
    from the gateway kept so a test can say that none was a 5xx."""

    def __init__(self):
        self._local = threading.local()
        self._lock = threading.Lock()
        self.answers: list[tuple[str, str, int]] = []

    @property
    def session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.trust_env = False
        return session

    def request(self, method: str, url: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        answer = self.session.request(method, url, **kwargs)
        with self._lock:
            self.answers.append((method, url, answer.status_code))
        return answer

    def server_errors(self) -> list[tuple[str, str, int]]:
        with self._lock:
            return [a for a in self.answers if a[2] >= 500]


@pytest.fixture
def http() -> Iterator[Http]:
    yield Http()
