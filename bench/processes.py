"""Child processes for the benchmark and the end-to-end tests (both import this one module):
the simulator, the gateway under the repository's gunicorn.conf.py, `flask --app wsgi ...`
commands and the worker, each started the way `make run` starts it, in its own session, with
a clean environment, and stopped with SIGTERM (SIGKILL to its whole group if it hangs).

`Process` writes its output to a log file (`spawn`); `Piped` keeps it in memory for a test
that reads it while the process runs.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
FLASK = (PYTHON, "-m", "flask", "--app", "wsgi")

# A developer's shell or a `.env` written by `make run` may hold these; none may leak into the
# processes started here.
_FOREIGN = (
    "MIDTRANS_",
    "GUNICORN_",
    "DATABASE_URL",
    "SECRET_KEY",
    "LOG_",
    "CALLBACK_",
    "SIMULATOR_",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the gateway's settings, this repository first on
    PYTHONPATH, and `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN)}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


@dataclass
class Process:
    """A child process in its own session whose output goes to `log_path`."""

    name: str
    popen: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def cpu_seconds(self) -> float:
        """User + system CPU of this process and its children (gunicorn's workers) now."""
        return sum(_cpu_ticks(pid) for pid in [self.pid, *children_of(self.pid)]) / CLOCK_TICKS

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM and wait; the exit code (-9 when it had to be killed with its children)."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
            return -9


def _cpu_ticks(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def spawn(
    name: str, argv: list[str], *, env: dict[str, str], cwd: Path, log_dir: Path | None = None
) -> Process:
    """Start `argv`; its output is appended to `<log_dir or cwd>/<name>.log`."""
    log_path = (log_dir or cwd) / f"{name}.log"
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Process(name, popen, log_path)


def wait_until_ready(
    process: Process, url: str, *, timeout: float = 60, ready: Callable | None = None
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
            log = process.log()[-4000:]
            raise RuntimeError(f"{process.name} did not become ready at {url}:\n{log}")
        time.sleep(0.1)


def start_simulator(
    *,
    port: int,
    server_key: str,
    cwd: Path,
    log_dir: Path | None = None,
    notification_url: str | None = None,
) -> Process:
    """The simulator (the app `python -m simulator` serves); without `notification_url` it
    notifies nobody about any order.

    Served by gunicorn (one process: its state is in memory), because Werkzeug's server closes
    every connection after one answer and Midtrans keeps them alive: the gateway's calls are
    measured and tested over kept-alive connections, as in production."""
    config = {"SERVER_KEY": server_key, "NOTIFICATION_URL": notification_url}
    argv = [
        *(PYTHON, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1"),
        *("--worker-class", "gthread", "--threads", "128", "--keep-alive", "75"),
        *("--backlog", "1024", "--graceful-timeout", "1", "--no-control-socket"),
        # A module with no gunicorn settings: not the gateway's gunicorn.conf.py in `cwd`.
        *("--config", "python:bench"),
        f"simulator:create_app({config!r})",
    ]
    process = spawn("simulator", argv, env=clean_env(), cwd=cwd, log_dir=log_dir)
    wait_until_ready(process, f"http://127.0.0.1:{port}/_sim/config")
    return process


def start_gunicorn(
    name: str, env: dict[str, str], cwd: Path, *app: str, log_dir: Path | None = None
) -> Process:
    """gunicorn with the repository's gunicorn.conf.py (`app` overrides its wsgi_app), ready
    when /readyz at GUNICORN_BIND answers 200."""
    argv = [PYTHON, "-m", "gunicorn", "-c", str(REPO / "gunicorn.conf.py"), *app]
    process = spawn(name, argv, env=env, cwd=cwd, log_dir=log_dir)
    wait_until_ready(process, f"http://{env['GUNICORN_BIND']}/readyz")
    return process


def run(
    argv: list[str], *, env: dict[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Run `argv` to its end: its exit code, stdout and stderr (text)."""
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def flask_cli(env: dict[str, str], cwd: Path, *args: str, timeout: float = 120) -> str:
    """`flask --app wsgi ARGS` as an operator types it; its output (fails loudly)."""
    done = run([*FLASK, *args], env=env, cwd=cwd, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


@dataclass
class ClientApp:
    """What `flask apps create` printed: the headers a client sends (the API key is its last
    line) and the callback signing secret, when the app has a callback URL."""

    headers: dict[str, str]
    signing_secret: str | None


def create_client_app(
    env: dict[str, str], cwd: Path, code: str, *options: str, name: str | None = None
) -> ClientApp:
    output = flask_cli(env, cwd, "apps", "create", code, "--name", name or code, *options)
    lines = output.strip().splitlines()
    secret = next((ln.split(": ", 1)[1] for ln in lines if ln.startswith("Signing secret:")), None)
    return ClientApp({"X-App-Code": code, "X-Api-Key": lines[-1].strip()}, secret)


def start_worker(
    env: dict[str, str],
    cwd: Path,
    *,
    log_dir: Path | None = None,
    name: str = "worker",
    interval: float = 0.2,
    timeout: float = 30,
) -> Process:
    """`flask --app wsgi worker` as systemd runs it; returns once it runs its loop (its
    SIGTERM handler is in place from then on). Its log is `<name>.log`, at INFO."""
    log_path = (log_dir or cwd) / f"{name}.log"
    before = log_path.read_text().count("worker started") if log_path.exists() else 0
    argv = [*FLASK, "worker", "--interval", str(interval)]
    worker = spawn(name, argv, env={**env, "LOG_LEVEL": "INFO"}, cwd=cwd, log_dir=log_dir)
    deadline = time.monotonic() + timeout
    while log_path.read_text().count("worker started") <= before:
        if not worker.alive() or time.monotonic() > deadline:
            worker.stop()
            raise RuntimeError(f"the worker did not start:\n{log_path.read_text()}")
        time.sleep(0.05)
    return worker


class Piped:
    """A child process whose output (stdout and stderr) is collected in memory line by line,
    for a test that reads it while the process runs."""

    def __init__(self, argv: list[str], *, env: dict[str, str], cwd: Path):
        self.popen = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()

    def _collect(self) -> None:
        for line in self.popen.stdout:
            self.lines.append(line)

    def output(self) -> str:
        return "".join(self.lines)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_for(self, pattern: str, timeout: float) -> re.Match | None:
        """The first match of `pattern` (multi-line) in the output; None if the process ends
        or `timeout` passes first."""
        deadline = time.monotonic() + timeout
        while not (found := re.search(pattern, self.output(), re.MULTILINE)):
            if not self.alive() or time.monotonic() > deadline:
                return None
            time.sleep(0.1)
        return found

    def signal(self, sig: int, timeout: float) -> tuple[float, float, int | None]:
        """Send `sig` and wait; (when it was sent, seconds until the process exited, its exit
        code or None if it still runs)."""
        sent = time.monotonic()
        self.popen.send_signal(sig)
        try:
            code = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        return sent, time.monotonic() - sent, code

    def close(self) -> None:
        """Kill it if it still runs; all its output collected."""
        if self.alive():
            self.popen.kill()
        self.popen.wait()
        self._reader.join(5)
        self.popen.stdout.close()
