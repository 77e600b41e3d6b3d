"""The gateway's stack for tests over real HTTP: the simulator (`python -m simulator`) and the
gateway under gunicorn with the repository's `gunicorn.conf.py`, wired together the way
`make run` does, its database migrated and one client app made; the worker on demand.

The processes themselves are `bench.processes`'s, which the benchmark uses too. Imported as
`e2e.servers` (the `tests` folder is on pytest's pythonpath).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from support import database_url

from app.database import configure_engine
from bench.processes import (
    REPO,
    ClientApp,
    Process,
    clean_env,
    flask_cli,
    free_port,
    spawn,
    start_gunicorn,
    start_worker,
    wait_until_ready,
)
from bench.processes import create_client_app as _create_client_app
from bench.processes import start_simulator as _start_simulator

__all__ = [
    "REPO",
    "SECRET_KEY",
    "SIMULATOR_KEY",
    "ClientApp",
    "GatewayDB",
    "Process",
    "Stack",
    "clean_env",
    "create_client_app",
    "database_url",
    "flask_cli",
    "free_port",
    "gateway_env",
    "hooked_client_app",
    "post_charge",
    "prepare_database",
    "reset_postgres",
    "spawn",
    "start_gateway",
    "start_simulator",
    "start_stack",
    "wait_until_ready",
]

SIMULATOR_KEY = "SB-Mid-server-e2e"
SECRET_KEY = "e2e-secret-key-0123456789abcdef0123"
PROBLEM_MARKS = ("Traceback", "ERROR", "CRITICAL", "database is locked")


def start_simulator(*, port: int, log_dir: Path, notification_url: str | None = None) -> Process:
    """The simulator signing with SIMULATOR_KEY; without `notification_url` it notifies nobody
    about any order (the test decides which notifications reach the gateway)."""
    return _start_simulator(
        port=port,
        server_key=SIMULATOR_KEY,
        cwd=REPO,
        log_dir=log_dir,
        notification_url=notification_url,
    )


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


def reset_postgres(url: str) -> None:
    """Empty the test database (as tests/support.py does) so migrations start from nothing."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    finally:
        engine.dispose()


def prepare_database(env: dict[str, str], cwd: Path) -> None:
    if env["DATABASE_URL"].startswith("postgresql"):
        reset_postgres(env["DATABASE_URL"])
    flask_cli(env, cwd, "db", "upgrade")


def create_client_app(
    env: dict[str, str], cwd: Path, code: str, *options: str, name: str | None = None
) -> ClientApp:
    """`flask apps create CODE ...`: the app's headers and signing secret."""
    return _create_client_app(env, cwd, code, *options, name=name or f"{code} (e2e)")


def post_charge(
    gateway_url: str,
    headers: dict[str, str],
    order_id: str,
    amount: int,
    *,
    expect: int | None = 201,
    **extra,
) -> requests.Response:
    """POST /charge over HTTP as a client app; the answer, asserted to be `expect` (None: any)."""
    body = {"order_id": order_id, "amount": amount, **extra}
    answer = requests.post(f"{gateway_url}/charge", json=body, headers=headers, timeout=30)
    if expect is not None:
        assert answer.status_code == expect, answer.text
    return answer


def start_gateway(env: dict[str, str], cwd: Path, *, log_dir: Path, name="gateway") -> Process:
    """gunicorn with the repository's gunicorn.conf.py, ready when /readyz says so."""
    return start_gunicorn(name, env, cwd, log_dir=log_dir)


class GatewayDB:
    """The gateway's database as a test sees it: plain SQL, configured like the gateway's
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
class Stack:
    """A running simulator and gateway, the client app made for the test (`headers`, and its
    `signing_secret` when it has a callback URL, whose orders Midtrans knows as
    `prefix + order_id`), the workers the test started, and the database (`db`)."""

    gateway_url: str
    simulator_url: str
    client_app: ClientApp
    env: dict[str, str]
    workdir: Path
    gateway: Process | None
    simulator: Process
    prefix: str = ""
    workers: list[Process] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return self.client_app.headers

    @property
    def signing_secret(self) -> str | None:
        return self.client_app.signing_secret

    @cached_property
    def db(self) -> GatewayDB:
        return GatewayDB(self.env["DATABASE_URL"])

    def midtrans_id(self, order_id: str) -> str:
        return self.prefix + order_id

    def start_gateway(self) -> None:
        self.gateway = start_gateway(self.env, self.workdir, log_dir=self.workdir)

    def stop_gateway(self) -> int:
        """SIGTERM gunicorn (in-flight requests finish); its master's exit code."""
        code = self.gateway.stop() if self.gateway is not None else 0
        self.gateway = None
        return code

    def restart_gateway(self) -> int:
        """Stop gunicorn, then start it again on the same port; the old master's exit code."""
        code = self.stop_gateway()
        self.start_gateway()
        return code

    def start_worker(self, interval: float = 0.2, name: str = "worker", **env: str) -> Process:
        """`flask --app wsgi worker` with the gateway's environment (and `env`), as systemd
        would run it; returns once its loop (and SIGTERM handler) runs."""
        worker = start_worker(
            {**self.env, **env}, self.workdir, name=name, interval=interval, log_dir=self.workdir
        )
        self.workers.append(worker)
        return worker

    def stop_worker(self, worker: Process) -> int:
        """SIGTERM the worker (it finishes the item in hand); its exit code."""
        return worker.stop()

    def restart_worker(self, worker: Process, interval: float = 0.2) -> tuple[int, Process]:
        """Stop the worker, then start a new one; the old one's exit code and the new one."""
        return self.stop_worker(worker), self.start_worker(interval)

    def log_problems(self) -> list[str]:
        """Lines of the gateway's and workers' logs that show a failure: a traceback, an
        error, "database is locked"."""
        return [
            f"{name}: {line}"
            for name, log in self._logs()
            for line in log.splitlines()
            if any(mark in line for mark in PROBLEM_MARKS)
        ]

    def logs(self) -> str:
        return "\n".join(
            f"----- {name}.log (tail) -----\n{log[-20_000:]}" for name, log in self._logs()
        )

    def _logs(self) -> list[tuple[str, str]]:
        paths = [self.workdir / "gateway.log", *(w.log_path for w in self.workers)]
        unique = [p for i, p in enumerate(paths) if p.exists() and p not in paths[:i]]
        return [(path.stem, path.read_text(errors="replace")) for path in unique]

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.stop_gateway()
        self.simulator.stop()
        if "db" in self.__dict__:
            self.db.close()


def hooked_client_app(
    stack: Stack, receiver, code: str, name: str | None = None
) -> tuple[ClientApp, Process]:
    """A client app on the running stack whose callbacks go to `receiver` (a
    `kit.endpoints.CallbackReceiver`, given the app's signing secret), and a worker delivering
    them (stopped with the stack, or by the caller)."""
    allow = {"CALLBACK_ALLOWED_HOSTS": "127.0.0.1"}
    client_app = create_client_app(
        {**stack.env, **allow}, stack.workdir, code, "--callback-url", receiver.url, name=name
    )
    receiver.secret = client_app.signing_secret
    return client_app, stack.start_worker(name=f"worker-{code}", **allow)


def start_stack(
    workdir: Path,
    *app_options: str,
    code: str = "shop",
    name: str | None = None,
    notify: bool = True,
    **gateway_extra: str,
) -> Stack:
    """Simulator + migrated database + one client app (`apps create CODE APP_OPTIONS`) +
    gunicorn, as `make run` sets them up. With `notify=False` the simulator notifies nobody
    (nor may the gateway ask it to: no MIDTRANS_NOTIFICATION_URL)."""
    port, sim_port = free_port(), free_port()
    simulator_url = f"http://127.0.0.1:{sim_port}"
    notification_url = f"http://127.0.0.1:{port}/notification" if notify else None
    simulator = start_simulator(port=sim_port, log_dir=workdir, notification_url=notification_url)
    try:
        if not notify:
            gateway_extra = {"MIDTRANS_NOTIFICATION_URL": "", **gateway_extra}
        env = gateway_env(
            database_url=database_url(workdir),
            port=port,
            simulator_url=simulator_url,
            **gateway_extra,
        )
        prepare_database(env, workdir)
        client_app = create_client_app(env, workdir, code, *app_options, name=name)
        options = list(app_options)
        prefix = (
            options[options.index("--order-prefix") + 1]
            if "--order-prefix" in options
            else f"{code}-"
        )
        stack = Stack(
            f"http://127.0.0.1:{port}",
            simulator_url,
            client_app,
            env,
            workdir,
            None,
            simulator,
            prefix,
        )
        stack.start_gateway()
    except BaseException:
        simulator.stop()
        raise
    return stack
