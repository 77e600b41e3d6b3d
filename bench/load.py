"""Running one measured phase: a load generator against one server, with the CPU time the
server, the simulator and the load generator itself spent on it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .stack import PYTHON, REPO, Process

WRK_LUA = Path(__file__).resolve().parent / "wrk.lua"
WRK_TIMEOUT = "10s"


@dataclass
class Phase:
    """One measured load: who is loaded, how, and what came out."""

    name: str
    target: str  # gateway | floor | upstream
    endpoint: str
    latency_ms: int  # upstream (simulator) latency during the phase
    connections: int
    seconds: float
    loadgen: str  # wrk (closed loop) | openloop (fixed rate)
    group: str  # probe (1 client) | throughput | slots (300 ms, 200 clients)
    offered_rps: float | None = None
    requests: int = 0
    rps: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    errors: int = 0
    error_detail: dict = field(default_factory=dict)
    server_cpu_ms_per_req: float = 0.0
    simulator_cpu_ms_per_req: float = 0.0
    loadgen_cpu_ms_per_req: float = 0.0
    loadgen_cpu_pct: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def require_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed: apt-get update && apt-get install -y wrk")
    return wrk


def _run_child(argv: list[str], env: dict[str, str]) -> tuple[dict, float]:
    """Run a load generator; its BENCH_RESULT line and its own CPU seconds (from wait4)."""
    child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = child.stdout.read(), child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    child.stdout.close()
    child.stderr.close()
    for line in out.decode(errors="replace").splitlines():
        if line.startswith("BENCH_RESULT "):
            return json.loads(line.removeprefix("BENCH_RESULT ")), usage.ru_utime + usage.ru_stime
    raise RuntimeError(f"{argv[0]} gave no result (exit {child.returncode}):\n{out}\n{err}")


def wrk(port: int, connections: int, seconds: float, **config: str) -> tuple[dict, float]:
    """Closed loop: `connections` clients, each sending its next request when answered."""
    env = dict(os.environ)
    env.update({f"BENCH_{k.upper()}": v for k, v in config.items()})
    threads = str(min(2, connections))
    argv = [
        require_wrk(),
        "-t",
        threads,
        "-c",
        str(connections),
        "-d",
        f"{max(1, round(seconds))}s",
    ]
    argv += ["--timeout", WRK_TIMEOUT, "-s", str(WRK_LUA), f"http://127.0.0.1:{port}"]
    return _run_child(argv, env)


def openloop(
    port: int, path: str, rate: float, seconds: float, connections: int, tag: str, headers: dict
) -> tuple[dict, float]:
    argv = [PYTHON, "-m", "bench.openloop", "--port", str(port), "--path", path, "--mode"]
    argv += ["charge", "--tag", tag, "--rate", f"{rate:g}", "--seconds", f"{seconds:g}"]
    argv += ["--connections", str(connections)]
    for name, value in headers.items():
        argv += ["--header", f"{name}: {value}"]
    return _run_child(argv, {**os.environ, "PYTHONPATH": str(REPO)})


def drain(server: Process, timeout: float = 10) -> None:
    """Wait until the server has finished what the load generator left queued (requests wrk
    stopped waiting for are still served), so it does not spill into the next phase."""
    deadline = time.monotonic() + timeout
    before = server.cpu_seconds()
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = server.cpu_seconds()
        if now - before < 0.01:
            return
        before = now


def measure(phase: Phase, server: Process, simulator: Process, run) -> Phase:
    """Run `run()` (a wrk/openloop call) and fill `phase` with its numbers."""
    server_before, sim_before = server.cpu_seconds(), simulator.cpu_seconds()
    result, loadgen_cpu = run()
    server_cpu = server.cpu_seconds() - server_before
    sim_cpu = simulator.cpu_seconds() - sim_before
    drain(server)
    if server is simulator:
        sim_cpu = 0.0
    lat = result["latency_us"]
    requests = result["requests"]
    if phase.loadgen == "wrk":
        wall = result["duration_us"] / 1e6
        errors = {k: v for k, v in result["errors"].items() if v}
        rps = requests / wall
    else:
        wall = result["wall_s"]
        errors = {k: v for k, v in result["errors"].items() if v}
        if result["requests"] < result["scheduled"]:
            errors["not_done"] = result["scheduled"] - result["requests"]
        # Open loop: what was kept up with over the schedule (late answers show in latency).
        rps = result["ok"] / result["schedule_s"]
        phase.offered_rps = result["offered_rps"]
    per_req = 1000 / max(requests, 1)
    phase.requests = requests
    phase.rps = rps
    phase.p50_ms, phase.p95_ms = lat["p50"] / 1000, lat["p95"] / 1000
    phase.p99_ms, phase.max_ms = lat["p99"] / 1000, lat["max"] / 1000
    phase.errors = sum(errors.values())
    phase.error_detail = errors
    phase.server_cpu_ms_per_req = server_cpu * per_req
    phase.simulator_cpu_ms_per_req = sim_cpu * per_req
    phase.loadgen_cpu_ms_per_req = loadgen_cpu * per_req
    phase.loadgen_cpu_pct = 100 * loadgen_cpu / max(wall, 1e-9)
    return phase
