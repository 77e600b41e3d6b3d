"""The processes under test: the simulator, the gateway and the floor, each in its own session,
wired by environment variables the way `make run` does (started with `bench.processes`, which
the end-to-end tests use too)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .processes import (
    PYTHON,
    REPO,
    Process,
    clean_env,
    create_client_app,
    flask_cli,
    free_port,
    start_gunicorn,
)
from .processes import start_simulator as _start_simulator

__all__ = [
    "PYTHON",
    "REPO",
    "SECRET_KEY",
    "SERVER_KEY",
    "Process",
    "clean_env",
    "free_port",
    "gateway_env",
    "gunicorn_sizing",
    "prepare_gateway",
    "start_gunicorn",
    "start_simulator",
]

SERVER_KEY = "SB-Mid-server-bench"
SECRET_KEY = "bench-secret-key-0123456789abcdef0123456789"


def start_simulator(workdir: Path, port: int) -> Process:
    # No notification URL: the simulator posts nothing by itself, so the only notifications
    # the gateway sees are the ones the benchmark sends.
    return _start_simulator(port=port, server_key=SERVER_KEY, cwd=workdir)


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


def prepare_gateway(env: dict[str, str], workdir: Path, code: str) -> dict[str, str]:
    """Migrate the database and create one client app; the headers that authenticate it."""
    flask_cli(env, workdir, "db", "upgrade")
    return create_client_app(env, workdir, code, name="Benchmark shop").headers


def gunicorn_sizing(env: dict[str, str], workdir: Path) -> tuple[int, int]:
    """(workers, threads) as the shipped gunicorn.conf.py computes them with this env."""
    conf = str(REPO / "gunicorn.conf.py")
    code = f"import runpy; c = runpy.run_path({conf!r}); print(c['workers'], c['threads'])"
    done = subprocess.run(
        [PYTHON, "-c", code], cwd=workdir, env=env, capture_output=True, text=True, check=True
    )
    workers, threads = done.stdout.split()
    return int(workers), int(threads)
