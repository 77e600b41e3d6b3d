"""`make bench`: the gateway against its two floors and the upstream, in one run.

Floors (bench/floor.py, under the gateway's gunicorn settings): the framework floor, a view
that does nothing, and the realistic floor (bench/realistic.py), a view that does only what a
status request cannot avoid (key-hash lookup, order read, upstream call over pooled urllib3,
one row written, JSON answer; raw SQL on the gateway's database).

Phases (BENCH_SECONDS, default 10, scales the timed ones; the whole run takes about 5 minutes,
6 with PostgreSQL):
  probe          1 client (wrk -c 1): latency each layer adds, upstream at 0 ms (and 300 ms)
  throughput     50 clients (wrk -c 50): requests/s of the floors, the upstream and the gateway
  slots          upstream at 300 ms, 200 clients: /charge closed loop (wrk) for the most it
                 can do, and open loop (bench/openloop.py) at 80% of workers x threads / 300 ms
  notifications  BENCH_NOTIFICATIONS (default 10,000) notifications, 20% duplicates, 10%
                 reordered, from 16 senders (bench/notifications.py), then every order's final
                 state checked; on SQLite, and on PostgreSQL too when BENCH_DATABASE_URL names
                 a server (a database is created for the run and dropped after)
"""

from __future__ import annotations

import base64
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import requests

from app.midtrans import signature_for

from . import load, notifications, postgres, report
from .load import Phase, measure
from .stack import (
    SERVER_KEY,
    Process,
    clean_env,
    free_port,
    gateway_env,
    gunicorn_sizing,
    prepare_gateway,
    start_gunicorn,
    start_simulator,
)

RESULTS = Path(__file__).resolve().parent / "results"
APP_CODE = "bench"
SEED_ORDERS = 300
THROUGHPUT_CONNECTIONS = 50
SLOW_UPSTREAM_MS = 300
SLOT_CLIENTS = 200
SLOT_SHARE = 0.8


@dataclass
class Stack:
    """The running processes, their ports, and how wrk sends each kind of request."""

    workdir: Path
    processes: list[Process] = field(default_factory=list)
    servers: dict[str, Process] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    kinds: dict[str, tuple[str, str, dict]] = field(default_factory=dict)
    workers: int = 0
    threads: int = 0

    @property
    def simulator_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['upstream']}"

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()


def start_stack(workdir: Path, *, floor: bool = True) -> Stack:
    """Simulator, migrated gateway with one app and paid orders, and the floor, all started."""
    stack = Stack(workdir)
    sim_port, gw_port, floor_port = free_port(), free_port(), free_port()
    stack.ports = {"upstream": sim_port, "gateway": gw_port, "floor": floor_port}
    stack.servers["upstream"] = start_simulator(workdir, sim_port)
    stack.processes.append(stack.servers["upstream"])
    env = gateway_env(workdir, gw_port, stack.simulator_url)
    stack.headers = prepare_gateway(env, workdir, APP_CODE)
    stack.workers, stack.threads = gunicorn_sizing(env, workdir)
    # BENCH_GATEWAY_APP (e.g. bench.trial:app) serves a variant of the gateway, to measure a
    # proposed change without touching app/.
    variant = [os.environ["BENCH_GATEWAY_APP"]] if os.environ.get("BENCH_GATEWAY_APP") else []
    stack.servers["gateway"] = start_gunicorn("gateway", env, workdir, *variant)
    stack.processes.append(stack.servers["gateway"])
    if floor:
        floor_env = clean_env(
            GUNICORN_BIND=f"127.0.0.1:{floor_port}",
            FLOOR_DATABASE=str(workdir / "gateway.db"),
            FLOOR_UPSTREAM=stack.simulator_url,
            FLOOR_SERVER_KEY=SERVER_KEY,
        )
        stack.servers["floor"] = start_gunicorn("floor", floor_env, workdir, "bench.floor:app")
        stack.processes.append(stack.servers["floor"])
        # The realistic floor is a view of the same app (same gunicorn), loaded on its own.
        stack.servers["realistic"], stack.ports["realistic"] = stack.servers["floor"], floor_port
    files = seed_orders(f"http://127.0.0.1:{gw_port}", stack.simulator_url, stack.headers, workdir)

    app_headers = "|".join(f"{k}: {v}" for k, v in stack.headers.items())
    sim_auth = "Authorization: Basic " + base64.b64encode(f"{SERVER_KEY}:".encode()).decode()
    # (target, endpoint, wrk settings) for each kind of request.
    stack.kinds = {
        "floor": ("floor", "GET /floor", {"mode": "get", "path": "/floor"}),
        "realistic": (
            "realistic",
            "GET /real/status/<id>",
            {"mode": "paths", "file": str(files["realistic"]), "headers": app_headers},
        ),
        "snap": (
            "upstream",
            "POST /snap/v1/transactions",
            {"mode": "snap", "path": "/snap/v1/transactions", "headers": sim_auth},
        ),
        "upstream_status": (
            "upstream",
            "GET /v2/<id>/status",
            {"mode": "paths", "file": str(files["upstream_status"]), "headers": sim_auth},
        ),
        "charge": (
            "gateway",
            "POST /charge",
            {"mode": "charge", "path": "/charge", "headers": app_headers},
        ),
        "status": (
            "gateway",
            "GET /status/<id>",
            {"mode": "paths", "file": str(files["status"]), "headers": app_headers},
        ),
        "notification": (
            "gateway",
            "POST /notification",
            {"mode": "bodies", "path": "/notification", "file": str(files["notification"])},
        ),
    }
    return stack


def seed_orders(gateway: str, simulator: str, headers: dict, workdir: Path) -> dict[str, Path]:
    """Paid orders for /status and signed notifications for them; files wrk cycles through."""
    session = requests.Session()

    def make(i: int) -> dict:
        order = f"seed-{i}"
        answer = session.post(
            f"{gateway}/charge", json={"order_id": order, "amount": 10000}, headers=headers
        )
        answer.raise_for_status()
        paid = session.post(f"{simulator}/_sim/transactions/{APP_CODE}-{order}/pay", json={})
        paid.raise_for_status()
        session.get(f"{gateway}/status/{order}", headers=headers).raise_for_status()
        return {"order": order, **paid.json()}

    with ThreadPoolExecutor(8) as pool:
        paid = list(pool.map(make, range(SEED_ORDERS)))
    files = {
        "status": workdir / "status-paths.txt",
        "realistic": workdir / "real-status-paths.txt",
        "upstream_status": workdir / "upstream-status-paths.txt",
        "notification": workdir / "notifications.jsonl",
    }
    files["status"].write_text("".join(f"/status/{p['order']}\n" for p in paid))
    files["realistic"].write_text("".join(f"/real/status/{p['order']}\n" for p in paid))
    files["upstream_status"].write_text("".join(f"/v2/{p['order_id']}/status\n" for p in paid))
    files["notification"].write_text("".join(json.dumps(signed(p)) + "\n" for p in paid))
    return files


def signed(paid: dict) -> dict:
    """A settlement notification as Midtrans sends it, signed with the simulator's key (the
    gateway's own `signature_for`)."""
    body = {k: v for k, v in paid.items() if k != "order"}
    body["status_code"] = "200"
    body["signature_key"] = signature_for(
        body["order_id"], body["status_code"], body["gross_amount"], SERVER_KEY
    )
    return body


def set_latency(simulator: str, ms: int) -> None:
    requests.post(f"{simulator}/_sim/config", json={"latency_ms": ms}, timeout=5).raise_for_status()


def warm_up(stack: Stack, seconds: int = 2) -> None:
    for kind in ("floor", "realistic", "status", "upstream_status", "charge", "notification"):
        target, _, config = stack.kinds[kind]
        if target in stack.servers:
            load.wrk(stack.ports[target], THROUGHPUT_CONNECTIONS, seconds, tag=f"w{kind}", **config)
            load.drain(stack.servers[target])


def machine() -> dict:
    with open("/proc/cpuinfo") as cpuinfo:
        cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if "model name" in ln), "?")
    with open("/proc/meminfo") as meminfo:
        mem_kb = next(int(ln.split()[1]) for ln in meminfo if "MemTotal" in ln)
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def run_phases(stack: Stack, scale: float) -> list[Phase]:
    phases: list[Phase] = []
    simulator = stack.servers["upstream"]

    def run(kind: str, group: str, latency: int, connections: int, seconds: float) -> None:
        target, endpoint, config = stack.kinds[kind]
        phase = Phase(
            name=f"{kind} {group} {latency}ms c{connections}",
            target=target,
            endpoint=endpoint,
            latency_ms=latency,
            connections=connections,
            seconds=seconds,
            loadgen="wrk",
            group=group,
        )
        tag = f"{group[0]}{latency}x{len(phases)}"
        go = partial(load.wrk, stack.ports[target], connections, seconds, tag=tag, **config)
        phases.append(measure(phase, stack.servers[target], simulator, go))
        _progress(phases[-1])

    every = ("floor", "realistic", "snap", "upstream_status", "charge", "status", "notification")
    for kind in every:
        run(kind, "probe", 0, 1, 5 * scale)
    for kind in every:
        run(kind, "throughput", 0, THROUGHPUT_CONNECTIONS, 10 * scale)

    set_latency(stack.simulator_url, SLOW_UPSTREAM_MS)
    try:
        for kind in ("snap", "charge"):
            run(kind, "probe", SLOW_UPSTREAM_MS, 1, 6 * scale)
        for kind in ("snap", "charge"):
            run(kind, "slots", SLOW_UPSTREAM_MS, SLOT_CLIENTS, 10 * scale)
        rate = round(SLOT_SHARE * slot_capacity(stack) + 0.05, 1)
        seconds = max(5, round(15 * scale))
        phase = Phase(
            name=f"charge open-loop {SLOW_UPSTREAM_MS}ms c{SLOT_CLIENTS}",
            target="gateway",
            endpoint="POST /charge",
            latency_ms=SLOW_UPSTREAM_MS,
            connections=SLOT_CLIENTS,
            seconds=seconds,
            loadgen="openloop",
            group="slots",
        )
        port, headers = stack.ports["gateway"], stack.headers
        go = partial(load.openloop, port, "/charge", rate, seconds, SLOT_CLIENTS, "open", headers)
        phases.append(measure(phase, stack.servers["gateway"], simulator, go))
        _progress(phases[-1])
    finally:
        set_latency(stack.simulator_url, 0)
    return phases


def notification_phase(
    stack: Stack,
    label: str,
    server: Process,
    port: int,
    headers: dict[str, str],
    database_url: str,
    count: int,
) -> tuple[Phase, dict]:
    """bench/notifications.py against one running gateway: seed, send, check."""
    print(
        f"  notifications on {label}: seeding {notifications.orders_for(count)} orders", flush=True
    )
    gateway = f"http://127.0.0.1:{port}"
    bodies = notifications.seed_orders(
        gateway, stack.simulator_url, headers, f"n{label}", notifications.orders_for(count)
    )
    plan = notifications.plan(bodies, count, SERVER_KEY)
    load.drain(server)
    simulator = stack.servers["upstream"]
    server_before, sim_before = server.cpu_seconds(), simulator.cpu_seconds()
    result = notifications.send(port, stack.simulator_url, plan.deliveries)
    server_cpu = server.cpu_seconds() - server_before
    sim_cpu = simulator.cpu_seconds() - sim_before
    load.drain(server)
    phase = Phase(
        name=f"notification sustained-{label} 0ms c{notifications.SENDERS}",
        target="gateway",
        endpoint="POST /notification",
        latency_ms=0,
        connections=notifications.SENDERS,
        seconds=round(result["wall_s"], 1),
        loadgen="senders",
        group="notifications",
    )
    lat, per_req = result["latency_us"], 1000 / max(result["requests"], 1)
    phase.requests, phase.rps = result["requests"], result["requests"] / result["wall_s"]
    phase.p50_ms, phase.p95_ms = lat["p50"] / 1000, lat["p95"] / 1000
    phase.p99_ms, phase.max_ms = lat["p99"] / 1000, lat["max"] / 1000
    phase.errors, phase.error_detail = sum(result["errors"].values()), result["errors"]
    phase.server_cpu_ms_per_req = server_cpu * per_req
    phase.simulator_cpu_ms_per_req = sim_cpu * per_req
    phase.loadgen_cpu_ms_per_req = result["loadgen_cpu_s"] * per_req
    phase.loadgen_cpu_pct = 100 * result["loadgen_cpu_s"] / result["wall_s"]
    _progress(phase)
    outcome = {
        "database": label,
        "plan": plan.counts(),
        "simulator_errors": result["simulator_errors"],
        "check": notifications.check(database_url, APP_CODE, plan.orders, len(plan.deliveries)),
    }
    print(f"  check on {label}: {outcome['check']}", flush=True)
    return phase, outcome


def postgres_gateway(stack: Stack, database_url: str) -> tuple[Process, int, dict[str, str]]:
    """A gateway like the SQLite one (same settings, same app code and key) on PostgreSQL."""
    port = free_port()
    env = {**gateway_env(stack.workdir, port, stack.simulator_url), "DATABASE_URL": database_url}
    headers = prepare_gateway(env, stack.workdir, APP_CODE)
    server = start_gunicorn("gateway-pg", env, stack.workdir)
    stack.processes.append(server)
    return server, port, headers


def slot_capacity(stack: Stack) -> float:
    """Requests/s the worker slots allow when each request waits the upstream's latency."""
    return stack.workers * stack.threads / (SLOW_UPSTREAM_MS / 1000)


def main() -> int:
    scale = float(os.environ.get("BENCH_SECONDS", "10")) / 10
    count = int(os.environ.get("BENCH_NOTIFICATIONS", str(notifications.DEFAULT_COUNT)))
    postgres_server = postgres.configured()
    started = time.monotonic()
    load.require_wrk()
    workdir = Path(tempfile.mkdtemp(prefix="midtrans-bench-"))
    stack = Stack(workdir)
    cleanup = ExitStack()
    try:
        # Created first, so that a server refusing it stops the run before it starts.
        postgres_url = None
        if postgres_server and count > 0:
            postgres_url = cleanup.enter_context(postgres.scratch_database(postgres_server))
        print(f"Starting the simulator, the gateway and the floor in {workdir} ...", flush=True)
        stack = start_stack(workdir)
        print("Warming up ...", flush=True)
        warm_up(stack)
        phases = run_phases(stack, scale)
        sustained = []
        if count > 0:
            gateway = stack.servers["gateway"]
            sqlite_url = f"sqlite:///{workdir / 'gateway.db'}"
            phase, outcome = notification_phase(
                stack, "sqlite", gateway, stack.ports["gateway"], stack.headers, sqlite_url, count
            )
            phases.append(phase)
            sustained.append(outcome)
        gateway_log = stack.servers["gateway"].log_path.read_text(errors="replace")
        if postgres_url:
            stack.servers["gateway"].stop()  # its CPU and memory back for the next gateway
            stack.servers["floor"].stop()
            print("Starting the gateway on PostgreSQL ...", flush=True)
            server, port, headers = postgres_gateway(stack, postgres_url)
            try:
                phase, outcome = notification_phase(
                    stack, "postgresql", server, port, headers, postgres_url, count
                )
            finally:
                server.stop()
            phases.append(phase)
            sustained.append(outcome)
        stack.stop()
        results = {
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": machine(),
            "config": {
                "workers": stack.workers,
                "threads": stack.threads,
                "slots": stack.workers * stack.threads,
                "slot_capacity_rps_at_300ms": slot_capacity(stack),
                "throughput_connections": THROUGHPUT_CONNECTIONS,
                "seed_orders": SEED_ORDERS,
                "notifications": count,
                "notification_senders": notifications.SENDERS,
                "postgresql": bool(postgres_server),
                "loadgen": "wrk 4.1 (closed loop; Lua makes unique order ids, cycles paid orders "
                "and signed notifications) and bench/openloop.py (asyncio, open loop)",
            },
            "log": {
                "sqlite_locked": gateway_log.lower().count("database is locked"),
                "worker_timeouts": gateway_log.count("WORKER TIMEOUT"),
                "tracebacks": gateway_log.count("Traceback"),
            },
            "phases": [p.as_dict() for p in phases],
            "notifications": sustained,
        }
        results["elapsed_s"] = round(time.monotonic() - started, 1)
        report.analyse(results)
        report.write(results, RESULTS, workdir)
        print()
        print(report.markdown(results))
        print(f"Results in {RESULTS}/latest.{{json,md,png}}; took {results['elapsed_s']:.0f} s.")
        return 0
    finally:
        stack.stop()
        cleanup.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _progress(phase: Phase) -> None:
    print(
        f"  {phase.name:<36} {phase.rps:8.1f} req/s  p50 {phase.p50_ms:7.1f} ms  "
        f"p99 {phase.p99_ms:7.1f} ms  errors {phase.errors}  "
        f"cpu {phase.server_cpu_ms_per_req:.2f} ms/req",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
