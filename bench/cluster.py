"""`make bench-cluster`: two gateway hosts and two workers on one PostgreSQL and one Redis.

    make bench-cluster          # or: .venv/bin/python -m bench.cluster  (about 3 minutes)

What several hosts would run, on this machine: a database of its own on the PostgreSQL at
127.0.0.1:5432 (`bench_cluster_<pid>`, trust auth as `postgres`, dropped at the end), an empty
Redis database at 127.0.0.1:6379 for the rate limits (`RATELIMIT_STORAGE_URI`, emptied at the
end), the Midtrans simulator, two gateway instances (separate gunicorn masters under the
shipped gunicorn.conf.py, on separate ports, as separate hosts would be) and two
`flask --app wsgi worker` processes. Client apps' callbacks go to a receiver in this process,
which verifies each one and records its webhook-id with when it arrived and was answered; the
simulator's notifications go to a recorder here too, and this process sends them on to the
gateways itself: duplicated, reordered, and some to both instances at the same moment.

Stages:
  limits      both instances (2 gunicorn workers each, to start sooner) with RATELIMIT_PER_APP
              at LIMIT per hour; 3 x LIMIT calls of one app spread over both at once: exactly
              LIMIT may pass (not one allowance per instance, nor per process)
  traffic     ORDERS orders through both instances (charge, status, notifications), the
              simulator paying, expiring or cancelling them; then the workers deliver
  checks      callbacks never twice at once, orders never changed twice, final states true
  throughput  /status and /charge through one instance, then through both (alternated,
              three times each): two must not do less in total than one

PASS/FAIL per check; exit status 1 if any fails. The throughput comparison says NOT MEASURABLE
instead of FAIL when other processes kept the machine busy or repeated runs disagreed too much
to tell (a shared machine); it does not fail the run then, and says so.
Results: bench/results/cluster.{json,md} (git-ignored).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests
from standardwebhooks import Webhook

from . import load
from .cluster_checks import check_applied_once, check_callbacks, check_final_states
from .cluster_kit import (
    TICKS,
    Database,
    Notifications,
    Recorder,
    RedisDb,
    cpu_of,
    cpu_ticks,
    machine_busy,
    own_cpu,
    session,
)
from .processes import Process, start_simulator, start_worker
from .stack import (
    SERVER_KEY,
    create_client_app,
    flask_cli,
    free_port,
    gateway_env,
    gunicorn_sizing,
    start_gunicorn,
)

RESULTS = Path(__file__).resolve().parent / "results"

ORDERS = int(os.environ.get("BENCH_CLUSTER_ORDERS", "200"))
SENDERS = 16  # concurrent clients in the traffic stage
SHOPS = 4  # client apps with a callback URL, orders spread over them
LIMIT = 40  # RATELIMIT_PER_APP in the limits stage, per hour (no window ends mid-burst)
LIMIT_CALLS = 3 * LIMIT
CALLBACK_HOLD = 0.03  # the receiver takes this long to answer: deliveries overlap if doubled
FATES = {"settlement": 60, "expire": 15, "cancel": 10, "pending": 15}
ACTION = {"settlement": "pay", "expire": "expire", "cancel": "cancel"}
DUPLICATE, REORDER, BOTH_AT_ONCE = 0.2, 0.1, 0.15
SETTLE_TIMEOUT = 120.0
TP_SECONDS = float(os.environ.get("BENCH_CLUSTER_SECONDS", "4"))
TP_CONNECTIONS = 32
TP_ROUNDS = 3  # one, two; two, one; one, two
# Two instances pass when they do at least this share of one's total (noise on shared cores).
TP_TOLERANCE = 0.9
# Beyond these, a shortfall says more about the machine than about the gateway: other
# processes' CPU (cores, on average over the runs) and the spread of one setting's runs.
BUSY_CORES = 0.25
NOISE = 0.2


# -- the stack --------------------------------------------------------------------------------


@dataclass
class Shop:
    code: str
    headers: dict[str, str]
    webhook: Webhook | None = None


@dataclass
class Cluster:
    workdir: Path
    database: Database
    redis_db: RedisDb
    callbacks: Recorder
    notifications: Notifications
    simulator: Process | None = None
    gateways: dict[str, Process] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    workers: list[Process] = field(default_factory=list)
    shops: list[Shop] = field(default_factory=list)
    sizing: tuple[int, int] = (0, 0)  # gunicorn workers, threads of each instance
    tp_app: Shop | None = None  # no callback URL: the limits and /charge throughput

    @property
    def simulator_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['simulator']}"

    def url(self, gateway: str) -> str:
        return f"http://127.0.0.1:{self.ports[gateway]}"

    def env(self, gateway: str | None = None, **extra: str) -> dict[str, str]:
        """The same settings on every host (SECRET_KEY, database, Redis), as the README says."""
        port = self.ports[gateway] if gateway else free_port()
        env = gateway_env(self.workdir, port, self.simulator_url)
        env.update(
            DATABASE_URL=self.database.url,
            RATELIMIT_STORAGE_URI=self.redis_db.uri,
            CALLBACK_ALLOWED_HOSTS="127.0.0.1",
        )
        env.update(extra)
        return env

    def start_gateways(self, **extra: str) -> None:
        def start(name: str) -> Process:
            return start_gunicorn(name, self.env(name, **extra), self.workdir)

        with ThreadPoolExecutor(2) as pool:
            starting = {name: pool.submit(start, name) for name in ("a", "b")}
        for name, future in starting.items():  # each one that started is stopped at the end
            if future.exception() is None:
                self.gateways[name] = future.result()
        for future in starting.values():
            future.result()  # raises the first failure

    def stop_gateways(self) -> None:
        for process in self.gateways.values():
            process.stop()
        self.gateways.clear()

    def stop(self) -> None:
        for process in [*self.workers, *self.gateways.values(), self.simulator]:
            if process is not None:
                process.stop()
        self.workers.clear()
        self.gateways.clear()
        self.simulator = None


def build(cluster: Cluster) -> None:
    """Simulator, migrated database, the client apps (made with `flask apps create`)."""
    cluster.ports = {"simulator": free_port(), "a": free_port(), "b": free_port()}
    cluster.simulator = start_simulator(
        port=cluster.ports["simulator"],
        server_key=SERVER_KEY,
        cwd=cluster.workdir,
        notification_url=cluster.notifications.url,
    )
    env = cluster.env()
    flask_cli(env, cluster.workdir, "db", "upgrade")
    cluster.sizing = gunicorn_sizing(env, cluster.workdir)

    def shop(i: int) -> Shop:
        code = f"shop{i}"
        made = create_client_app(
            env, cluster.workdir, code, "--callback-url", f"{cluster.callbacks.url}/cb/{code}"
        )
        return Shop(code, made.headers, Webhook(made.signing_secret))

    def plain(code: str) -> Shop:
        return Shop(code, create_client_app(env, cluster.workdir, code).headers)

    with ThreadPoolExecutor(3) as pool:
        shops = pool.map(shop, range(1, SHOPS + 1))
        tp = pool.submit(plain, "tp")
        cluster.shops, cluster.tp_app = list(shops), tp.result()


# -- stage 1: rate limits counted across both instances ---------------------------------------


def limits_stage(cluster: Cluster) -> dict:
    cluster.start_gateways(RATELIMIT_PER_APP=f"{LIMIT} per hour", GUNICORN_WORKERS="2")
    headers = cluster.tp_app.headers
    answers: Counter = Counter()
    lock = threading.Lock()
    start = threading.Barrier(SENDERS)

    def send(sender: int) -> None:
        start.wait()
        for n in range(LIMIT_CALLS // SENDERS + (sender < LIMIT_CALLS % SENDERS)):
            gateway = "ab"[(sender + n) % 2]
            got = session().get(f"{cluster.url(gateway)}/transactions?limit=1", headers=headers)
            with lock:
                answers[gateway, got.status_code] += 1

    began = time.monotonic()
    with ThreadPoolExecutor(SENDERS) as pool:
        list(pool.map(send, range(SENDERS)))
    took = time.monotonic() - began
    cluster.stop_gateways()
    accepted = {g: answers[g, 200] for g in "ab"}
    limited = sum(n for (_, status), n in answers.items() if status == 429)
    other = sum(n for (_, status), n in answers.items() if status not in (200, 429))
    total = sum(accepted.values())
    return {
        "limit": f"{LIMIT} per hour",
        "calls": LIMIT_CALLS,
        "seconds": round(took, 2),
        "accepted": total,
        "accepted_by_instance": accepted,
        "rejected_429": limited,
        "other_answers": other,
        "passed": total == LIMIT and other == 0 and all(accepted.values()),
    }


# -- stage 2: traffic through both instances --------------------------------------------------


@dataclass
class Order:
    shop: Shop
    order_id: str
    fate: str
    midtrans_order_id: str = ""
    sent: list[str] = field(default_factory=list)  # what was done, in order
    ok: bool = True


class Traffic:
    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.answers: Counter = Counter()  # (instance, endpoint, status)
        self.lock = threading.Lock()
        self.unexpected: list[str] = []
        self.waited = 0.0  # seconds spent waiting for the simulator's notifications

    def call(self, gateway: str, method: str, path: str, endpoint: str, **kw) -> requests.Response:
        got = session().request(method, self.cluster.url(gateway) + path, timeout=30, **kw)
        with self.lock:
            self.answers[gateway, endpoint, got.status_code] += 1
        return got

    def simulate(self, midtrans_order_id: str, action: str) -> dict:
        url = f"{self.cluster.simulator_url}/_sim/transactions/{midtrans_order_id}/{action}"
        got = session().post(url, json={}, timeout=30)
        got.raise_for_status()
        return got.json()

    def notify(self, gateway: str, body: dict) -> None:
        got = self.call(gateway, "POST", "/notification", "POST /notification", json=body)
        if got.status_code != 200:
            self._unexpected(f"notification to {gateway}: {got.status_code} {got.text[:200]}")

    def notify_both_at_once(self, body: dict) -> None:
        for got in self.both_at_once("POST", "/notification", "POST /notification", json=body):
            if got.status_code != 200:
                self._unexpected(f"notification to both: {got.status_code} {got.text[:200]}")

    def both_at_once(self, method: str, path: str, endpoint: str, **kw) -> list:
        """The same request to both instances at the same moment (two threads released
        together), as a client's or Midtrans's retry through a load balancer can make happen."""
        together = threading.Barrier(2)
        answers: list = []

        def send(gateway: str) -> None:
            together.wait()
            answers.append(self.call(gateway, method, path, endpoint, **kw))

        threads = [threading.Thread(target=send, args=(g,)) for g in "ab"]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return answers

    def _unexpected(self, what: str) -> None:
        with self.lock:
            self.unexpected.append(what)

    def run_order(self, order: Order, rng: random.Random) -> None:
        headers = order.shop.headers
        pick = lambda: rng.choice("ab")  # noqa: E731 - which host the balancer chose
        charge = {"order_id": order.order_id, "amount": 10000 + rng.randrange(1000) * 100}
        if rng.random() < BOTH_AT_ONCE:
            # One makes the link; the other waits for it (409, "being created") or replays it.
            order.sent.append("charge to both at once")
            answers = self.both_at_once(
                "POST", "/charge", "POST /charge", json=charge, headers=headers
            )
            codes = sorted(a.status_code for a in answers)
            if codes not in ([201, 201], [201, 409]):
                order.ok = False
                self._unexpected(f"charge {order.order_id} to both: {codes}")
                return
        else:
            got = self.call(pick(), "POST", "/charge", "POST /charge", json=charge, headers=headers)
            if got.status_code != 201:
                order.ok = False
                self._unexpected(f"charge {order.order_id}: {got.status_code} {got.text[:200]}")
                return
        order.midtrans_order_id = f"{order.shop.code}-{order.order_id}"
        self.simulate(order.midtrans_order_id, "choose")
        self.status(pick(), order)
        expected = 1
        if order.fate != "pending":
            self.simulate(order.midtrans_order_id, ACTION[order.fate])
            expected = 2
        began = time.monotonic()
        bodies = self.cluster.notifications.bodies(order.midtrans_order_id, expected)
        with self.lock:
            self.waited += time.monotonic() - began
        if len(bodies) < expected:
            self._unexpected(f"{order.midtrans_order_id}: the simulator notified {len(bodies)}")
        sends = list(bodies)
        if len(sends) > 1 and rng.random() < REORDER:
            sends.reverse()
            order.sent.append("reordered")
        if sends and rng.random() < DUPLICATE:
            sends.append(rng.choice(bodies))
            order.sent.append("duplicate")
        for body in sends:
            if rng.random() < BOTH_AT_ONCE:
                self.notify_both_at_once(body)
                order.sent.append("both at once")
            else:
                self.notify(pick(), body)
        self.status(pick(), order)

    def status(self, gateway: str, order: Order) -> None:
        got = self.call(
            gateway,
            "GET",
            f"/status/{order.order_id}",
            "GET /status",
            headers=order.shop.headers,
        )
        if got.status_code != 200:
            self._unexpected(f"status {order.order_id}: {got.status_code} {got.text[:200]}")


def traffic_stage(cluster: Cluster, seed: int) -> tuple[list[Order], dict]:
    traffic = Traffic(cluster)
    rng = random.Random(seed)
    fates = rng.choices(list(FATES), weights=list(FATES.values()), k=ORDERS)
    orders = [Order(cluster.shops[i % SHOPS], f"o{seed}-{i}", fate) for i, fate in enumerate(fates)]
    began, own_before, machine_before = time.monotonic(), own_cpu(), machine_busy()
    with ThreadPoolExecutor(SENDERS) as pool:
        done = [
            pool.submit(traffic.run_order, order, random.Random(seed * 100_003 + i))
            for i, order in enumerate(orders)
        ]
        for future in done:
            future.result()
    took = time.monotonic() - began
    own, machine = own_cpu() - own_before, machine_busy() - machine_before
    requests_sent = sum(traffic.answers.values())
    summary = {
        "orders": ORDERS,
        "fates": dict(Counter(fates)),
        "senders": SENDERS,
        "gateway_requests": requests_sent,
        "seconds": round(took, 1),
        "req_per_s": round(requests_sent / took, 1),
        "by_instance": {
            g: sum(n for (gw, _, _), n in traffic.answers.items() if gw == g) for g in "ab"
        },
        "answers": {f"{g} {e} {s}": n for (g, e, s), n in sorted(traffic.answers.items())},
        "duplicates": sum("duplicate" in o.sent for o in orders),
        "reordered": sum("reordered" in o.sent for o in orders),
        "sent_to_both_at_once": sum(o.sent.count("both at once") for o in orders),
        "charges_to_both_at_once": sum("charge to both at once" in o.sent for o in orders),
        "waited_for_notifications_s": round(traffic.waited, 1),
        "machine_busy_cores": round(machine / took, 2),
        "this_process_cores": round(own / took, 2),
        "unexpected": traffic.unexpected[:20],
        "examples": traffic.unexpected[:5],
        "passed": not traffic.unexpected,
    }
    return orders, summary


def wait_settled(cluster: Cluster) -> float:
    """Until nothing is left to do: no callback pending, no notification unconfirmed."""
    began = time.monotonic()
    database = cluster.database
    while time.monotonic() - began < SETTLE_TIMEOUT:
        pending = database.value("SELECT count(*) FROM callback_events WHERE state = 'pending'")
        waiting = database.value(
            "SELECT count(*) FROM notifications WHERE outcome IN ('received', 'unconfirmed')"
        )
        if pending == 0 and waiting == 0:
            break
        time.sleep(0.5)
    return time.monotonic() - began


# -- stage 3: one instance against two --------------------------------------------------------


def throughput_stage(cluster: Cluster, orders: list[Order]) -> dict:
    settled = [o for o in orders if o.ok and o.fate == "settlement" and o.shop is cluster.shops[0]]
    paths = cluster.workdir / "status-paths.txt"
    paths.write_text("".join(f"/status/{o.order_id}\n" for o in settled))
    shop_headers = "|".join(f"{k}: {v}" for k, v in cluster.shops[0].headers.items())
    tp_headers = "|".join(f"{k}: {v}" for k, v in cluster.tp_app.headers.items())
    kinds = {
        "GET /status": {"mode": "paths", "file": str(paths), "headers": shop_headers},
        "POST /charge": {"mode": "charge", "path": "/charge", "headers": tp_headers},
    }
    runs: list[dict] = []
    for endpoint, config in kinds.items():
        for rnd in range(TP_ROUNDS):
            # a, ab, ab, a, ...: a drift in the machine's speed falls on both alike
            for instances in ("a", "ab") if rnd % 2 == 0 else ("ab", "a"):
                runs.append(_measure(cluster, endpoint, config, instances, f"t{rnd}{len(runs)}"))
                r = runs[-1]
                print(
                    f"  {endpoint:<13} through {len(instances)}: {r['rps']:7.1f} req/s  "
                    f"p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:7.1f} ms  errors {r['errors']}"
                    f"  cpu {r['server_cpu_ms_per_req']:.2f} ms/req"
                    f"  PostgreSQL connections opened {r['connections_opened']}"
                    f"  other load {r['other_load_cores']:.2f} cores",
                    flush=True,
                )
    verdicts = {
        endpoint: _verdict([r for r in runs if r["endpoint"] == endpoint]) for endpoint in kinds
    }
    errors = sum(r["errors"] for r in runs)
    outcomes = [v["passed"] for v in verdicts.values()]
    return {
        "connections": TP_CONNECTIONS,
        "seconds": TP_SECONDS,
        "runs": runs,
        "verdicts": verdicts,
        "errors": errors,
        # None: not measurable on this machine now (see _verdict)
        "passed": False if errors or False in outcomes else (None if None in outcomes else True),
    }


def _verdict(runs: list[dict]) -> dict:
    """Two instances against one: the medians of the alternated runs. Below TP_TOLERANCE it
    is a FAIL, unless the machine was too busy to tell (other processes took more than
    BUSY_CORES, or the same setting's runs differed by more than NOISE): then None."""
    one = [r["rps"] for r in runs if r["n"] == 1]
    two = [r["rps"] for r in runs if r["n"] == 2]
    one_rps, two_rps = statistics.median(one), statistics.median(two)
    spread = max((max(x) - min(x)) / statistics.median(x) for x in (one, two) if x)
    busy = statistics.mean(r["other_load_cores"] for r in runs)
    passed: bool | None = bool(one_rps) and two_rps >= TP_TOLERANCE * one_rps
    if not passed and (busy > BUSY_CORES or spread > NOISE):
        passed = None
    # What other processes' load skews least: CPU per request, one's over two's (below 1:
    # a request costs more through two instances).
    one_cpu = statistics.median(r["server_cpu_ms_per_req"] for r in runs if r["n"] == 1)
    two_cpu = statistics.median(r["server_cpu_ms_per_req"] for r in runs if r["n"] == 2)
    return {
        "one_rps": round(one_rps, 1),
        "two_rps": round(two_rps, 1),
        "ratio": round(two_rps / one_rps, 2) if one_rps else None,
        "cpu_ratio": round(one_cpu / two_cpu, 2) if two_cpu else None,
        "run_spread": round(spread, 2),
        "other_load_cores": round(busy, 2),
        "passed": passed,
    }


def _measure(cluster: Cluster, endpoint: str, config: dict, instances: str, tag: str) -> dict:
    """wrk with TP_CONNECTIONS clients in all, split evenly over `instances`, at once; the CPU
    the gateways and their PostgreSQL backends spent per request, and how much CPU processes
    outside this run took meanwhile (other work on a shared machine skews the figures)."""
    share = TP_CONNECTIONS // len(instances)
    servers = [cluster.gateways[g] for g in instances]
    ours = [*cluster.gateways.values(), *cluster.workers, cluster.simulator]
    backends_before = cpu_ticks(cluster.database.backends())
    sessions_before = cluster.database.sessions()
    machine_before, ours_before = machine_busy(), cpu_of(ours) + own_cpu()
    servers_before = cpu_of(servers)

    def one(gateway: str) -> tuple[dict, float]:
        port = cluster.ports[gateway]
        return load.wrk(port, share, TP_SECONDS, tag=f"{tag}{gateway}", **config)

    with ThreadPoolExecutor(len(instances)) as pool:
        answers = list(pool.map(one, instances))
    backends_after = cpu_ticks(cluster.database.backends())
    # PostgreSQL backends that ended within the run are not counted (the pools keep theirs).
    database_cpu = sum(t - backends_before.get(p, 0) for p, t in backends_after.items()) / TICKS
    servers_cpu = cpu_of(servers) - servers_before + database_cpu
    loadgen_cpu = sum(cpu for _, cpu in answers)
    ours_cpu = cpu_of(ours) + own_cpu() - ours_before + database_cpu + loadgen_cpu
    others_cpu = machine_busy() - machine_before - ours_cpu
    for server in servers:
        load.drain(server)
    opened = cluster.database.sessions() - sessions_before
    results = [r for r, _ in answers]
    done = sum(r["requests"] for r in results)
    wall = max(r["duration_us"] for r in results) / 1e6
    return {
        "endpoint": endpoint,
        "n": len(instances),
        "connections_each": share,
        "requests": done,
        "rps": round(done / wall, 1),
        "p50_ms": max(r["latency_us"]["p50"] for r in results) / 1000,
        "p99_ms": max(r["latency_us"]["p99"] for r in results) / 1000,
        "errors": sum(sum(r["errors"].values()) for r in results),
        "server_cpu_ms_per_req": round(1000 * servers_cpu / max(done, 1), 2),
        "database_cpu_ms_per_req": round(1000 * database_cpu / max(done, 1), 2),
        "other_load_cores": round(max(others_cpu, 0.0) / wall, 2),
        "connections_opened": opened,
    }


# -- the run ----------------------------------------------------------------------------------


def main() -> int:
    started = time.monotonic()
    load.require_wrk()
    seed = int(os.environ.get("BENCH_CLUSTER_SEED", str(int(time.time()) % 100_000)))
    workdir = Path(tempfile.mkdtemp(prefix="midtrans-cluster-"))
    database = Database()
    try:
        redis_db = RedisDb()
    except BaseException:
        database.drop()
        raise
    callbacks, notifications = Recorder(CALLBACK_HOLD, lambda hit: 204), Notifications()
    cluster = Cluster(workdir, database, redis_db, callbacks, notifications)
    results: dict = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seed": seed}
    stages = results["stages_s"] = {}

    def lap(name: str) -> None:
        stages[name] = round(time.monotonic() - started - sum(stages.values()), 1)

    try:
        print(f"PostgreSQL database {database.name}, Redis db {redis_db.number}, in {workdir}")
        build(cluster)
        lap("build")
        print("Stage 1: a per-app rate limit counted across both instances ...", flush=True)
        results["limits"] = limits_stage(cluster)
        lap("limits")
        print("Stage 2: two gateways, two workers, traffic through both ...", flush=True)
        cluster.start_gateways(RATELIMIT_PER_APP="1000000 per minute")
        watching = threading.Event()
        watcher = database.watch_connections(watching)
        cluster.workers = [
            start_worker(cluster.env(), workdir, name=f"worker-{n}", interval=0.2) for n in (1, 2)
        ]
        orders, results["traffic"] = traffic_stage(cluster, seed)
        results["traffic"]["settle_s"] = round(wait_settled(cluster), 1)
        print(
            f"  {results['traffic']['gateway_requests']} requests in "
            f"{results['traffic']['seconds']} s; settled after "
            f"{results['traffic']['settle_s']} s more",
            flush=True,
        )
        results["callbacks"] = check_callbacks(cluster)
        results["applied_once"] = check_applied_once(cluster, orders)
        results["final_states"] = check_final_states(cluster, orders)
        lap("traffic and checks")
        print("Stage 3: throughput through one instance and through both ...", flush=True)
        results["throughput"] = throughput_stage(cluster, orders)
        lap("throughput")
        watching.set()
        watcher.join()
        results["peak_connections"] = database.peak_connections
        results["gunicorn"] = {"workers": cluster.sizing[0], "threads": cluster.sizing[1]}
        logs = "".join(p.log() for p in [*cluster.gateways.values(), *cluster.workers])
        tracebacks, timeouts = logs.count("Traceback"), logs.count("WORKER TIMEOUT")
        results["logs"] = {
            "tracebacks": tracebacks,
            "worker_timeouts": timeouts,
            "passed": tracebacks == 0 and timeouts == 0,
        }
        cluster.stop()
        results["machine"] = {
            "nproc": os.cpu_count(),
            "postgres": database.value("SHOW server_version"),
        }
        results["elapsed_s"] = round(time.monotonic() - started, 1)
        verdict = write_report(results)
        print(f"Results in {RESULTS}/cluster.{{json,md}}; took {results['elapsed_s']:.0f} s.")
        return 0 if verdict else 1
    finally:
        cluster.stop()
        callbacks.close()
        notifications.close()
        database.drop()
        redis_db.clean()
        shutil.rmtree(workdir, ignore_errors=True)


CHECKS = [
    ("traffic", "every request answered as expected"),
    ("logs", "no traceback or worker timeout in the gateways' and workers' logs"),
    ("limits", "rate limit counted across both instances"),
    ("callbacks", "no callback delivered twice at once (all delivered, in order)"),
    ("applied_once", "no order double-applied"),
    ("final_states", "every order's final state true"),
    ("throughput", "two instances not slower in total than one"),
]


def write_report(results: dict) -> bool:
    lines = ["# bench-cluster: two gateway instances, two workers, PostgreSQL, Redis", ""]
    limits, traffic = results["limits"], results["traffic"]
    callbacks, applied = results["callbacks"], results["applied_once"]
    final, tp = results["final_states"], results["throughput"]
    lines += [
        f"Run {results['started_at']}, seed {results['seed']}, {results['elapsed_s']:.0f} s, "
        f"{results['machine']['nproc']} cores, PostgreSQL {results['machine']['postgres']}; "
        f"stages (s): {results['stages_s']}.",
        "",
        f"- Limits: {limits['limit']}, {limits['calls']} calls over both instances in "
        f"{limits['seconds']} s: {limits['accepted']} accepted "
        f"(a {limits['accepted_by_instance']['a']}, b {limits['accepted_by_instance']['b']}), "
        f"{limits['rejected_429']} answered 429.",
        f"- Traffic: {traffic['orders']} orders {traffic['fates']}, {traffic['gateway_requests']} "
        f"gateway requests (a {traffic['by_instance']['a']}, b {traffic['by_instance']['b']}) in "
        f"{traffic['seconds']} s from {traffic['senders']} clients; {traffic['duplicates']} "
        f"orders with a duplicate notification, {traffic['reordered']} reordered, "
        f"{traffic['sent_to_both_at_once']} notifications and "
        f"{traffic['charges_to_both_at_once']} charges sent to both instances at once; settled "
        f"{traffic['settle_s']} s later. Unexpected answers: {len(traffic['unexpected'])}.",
        f"- Callbacks: {callbacks['callback_events']} events, {callbacks['deliveries_received']} "
        f"deliveries received (by worker: {callbacks['deliveries_by_worker']}), "
        f"{callbacks['delivered_more_than_once']} delivered more than once, "
        f"{callbacks['delivered_twice_at_once']} twice at once, {callbacks['not_received']} "
        f"never, {callbacks['signature_failures']} failed verification, "
        f"{callbacks['orders_out_of_order']} orders out of order.",
        f"- Orders: {applied['orders_checked']} checked, {applied['status_changes']} status "
        f"changes, notifications {applied['notification_outcomes']}, {applied['problems']} "
        f"problems; final states wrong: {final['wrong']}, GET /status answers wrong "
        f"{final['status_answers_wrong']} of {final['status_answers_checked']}.",
        "",
        f"Throughput ({tp['connections']} wrk clients in all, {tp['seconds']:g} s a run, "
        f"median of {TP_ROUNDS} alternated runs):",
        "",
        "| endpoint | one instance req/s | two instances req/s | two / one | spread of "
        "repeated runs | other processes (cores) | CPU per request, one / two |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for endpoint, v in tp["verdicts"].items():
        lines.append(
            f"| {endpoint} | {v['one_rps']} | {v['two_rps']} | {v['ratio']} | "
            f"{v['run_spread']:.0%} | {v['other_load_cores']} | {v['cpu_ratio']} |"
        )
    lines += [
        "",
        "| endpoint | instances | req/s | p50 ms | p99 ms | errors | gateway + PostgreSQL CPU "
        "ms/req (PostgreSQL's part) | PostgreSQL connections opened | other load (cores) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in tp["runs"]:
        lines.append(
            f"| {r['endpoint']} | {r['n']} | {r['rps']} | {r['p50_ms']:.1f} | "
            f"{r['p99_ms']:.1f} | {r['errors']} | {r['server_cpu_ms_per_req']} "
            f"({r['database_cpu_ms_per_req']}) | "
            f"{r['connections_opened']} | {r['other_load_cores']} |"
        )
    lines.append("")
    verdict = True
    for key, label in CHECKS:
        passed = results[key]["passed"]
        verdict &= passed is not False
        word = {True: "PASS", False: "FAIL", None: "NOT MEASURABLE"}[passed]
        if passed is None:
            label += (
                ": the machine was too busy to tell (other processes' CPU and the spread of "
                "repeated runs in the table above); run it again on a quiet machine"
            )
        lines.append(f"- {word}: {label}")
        if not passed and results[key].get("examples"):
            lines += [f"  - {example}" for example in results[key]["examples"]]
    sizing = results["gunicorn"]
    lines.append(
        f"- PostgreSQL connections held by the run at most: {results['peak_connections']} "
        f"(2 instances x {sizing['workers']} gunicorn workers x {sizing['threads']} threads, "
        "2 workers; this process's own not counted)"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cluster.json").write_text(json.dumps(results, indent=2, default=str))
    text = "\n".join(lines) + "\n"
    (RESULTS / "cluster.md").write_text(text)
    print()
    print(text)
    return verdict


if __name__ == "__main__":
    sys.exit(main())
