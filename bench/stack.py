"""The processes under test: the simulator, the gateway and the floor, each in its own session,
wired by environment variables the way `make run` does, and their CPU time from /proc."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SERVER_KEY = "SB-Mid-server-bench"
SECRET_KEY = "bench-secret-key-0123456789abcdef0123456789"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# A developer's shell or `.env` may hold these; none may leak into the processes measured.
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
    env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN)}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def cpu_seconds(self) -> float:
        """User + system CPU of this process and its children (gunicorn's workers) now."""
        return sum(_cpu_ticks(pid) for pid in [self.pid, *children_of(self.pid)]) / CLOCK_TICKS

    def stop(self, timeout: float = 30) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()


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


def spawn(name: str, argv: list[str], *, env: dict[str, str], cwd: Path) -> Process:
    log_path = cwd / f"{name}.log"
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Process(name, popen, log_path)


def wait_until_ready(process: Process, url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if not process.alive() or time.monotonic() > deadline:
            process.stop()
            log = process.log_path.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"{process.name} did not become ready at {url}:\n{log}")
        time.sleep(0.1)


def start_simulator(workdir: Path, port: int) -> Process:
    # No notification URL: the simulator posts nothing by itself, so the only notifications
    # the gateway sees are the ones the benchmark sends.
    argv = [PYTHON, "-m", "simulator", "--port", str(port), "--server-key", SERVER_KEY]
    process = spawn("simulator", argv, env=clean_env(), cwd=workdir)
    wait_until_ready(process, f"http://127.0.0.1:{port}/_sim/config")
    return process


def gateway_env(workdir: Path, port: int, simulator_url: str) -> dict[str, str]:
    """What `make run` gives the gateway against the simulator; logging left at its default.
    The per-app rate limit (600/minute by default) is lifted so that the benchmark measures
    the gateway's capacity, not its limit policy; the limiter itself still runs."""
    return clean_env(
        SECRET_KEY=SECRET_KEY,
        DATABASE_URL=f"sqlite:///{workdir / 'gateway.db'}",
        MIDTRANS_SERVER_KEY=SERVER_KEY,
        MIDTRANS_API_BASE_URL=simulator_url,
        MIDTRANS_SNAP_BASE_URL=f"{simulator_url}/snap/v1",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        RATELIMIT_PER_APP="1000000 per minute",
    )


def flask_cli(env: dict[str, str], cwd: Path, *args: str) -> str:
    done = subprocess.run(
        [PYTHON, "-m", "flask", "--app", "wsgi", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def prepare_gateway(env: dict[str, str], workdir: Path, code: str) -> dict[str, str]:
    """Migrate the database and create one client app; the headers that authenticate it."""
    flask_cli(env, workdir, "db", "upgrade")
    output = flask_cli(env, workdir, "apps", "create", code, "--name", "Benchmark shop")
    return {"X-App-Code": code, "X-Api-Key": output.strip().splitlines()[-1]}


def start_gunicorn(name: str, env: dict[str, str], workdir: Path, *app: str) -> Process:
    """gunicorn with the repository's gunicorn.conf.py (`app` overrides its wsgi_app)."""
    argv = [PYTHON, "-m", "gunicorn", "-c", str(REPO / "gunicorn.conf.py"), *app]
    process = spawn(name, argv, env=env, cwd=workdir)
    wait_until_ready(process, f"http://{env['GUNICORN_BIND']}/readyz")
    return process


def gunicorn_sizing(env: dict[str, str], workdir: Path) -> tuple[int, int]:
    """(workers, threads) as the shipped gunicorn.conf.py computes them with this env."""
    conf = str(REPO / "gunicorn.conf.py")
    code = f"import runpy; c = runpy.run_path({conf!r}); print(c['workers'], c['threads'])"
    done = subprocess.run(
        [PYTHON, "-c", code], cwd=workdir, env=env, capture_output=True, text=True, check=True
    )
    workers, threads = done.stdout.split()
    return int(workers), int(threads)
