"""Notifications under sustained load: a bench phase of `make bench`.

COUNT notifications (BENCH_NOTIFICATIONS, default 10,000) from 16 concurrent senders, as
Midtrans sends them: every order gets a `pending` notification and then its final one
(`settlement`, 10% `expire`, 10% `cancel`); 20% of all notifications are duplicates of one
sent earlier, and 10% arrive reordered (after a higher-ranked one of their order: a `pending`
after its `settlement`; late duplicates of a `pending` come on top). The orders are made
first through the gateway's /charge and chosen (pending) at the simulator; the simulator moves
an order to its final status just before the first of its final notifications is sent, the
way Midtrans changes state, then notifies.

Measured: each notification's answer time (p50/p95/p99/max), errors (no answer, or not 200),
requests/s and the gateway's CPU per notification. Checked after the phase, from the
gateway's database: every order ends in the status its highest-ranked notification states (no
lost update), moved there by exactly one event (none applied twice), and every notification
sent is stored and processed (none lost, none left unconfirmed).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests
import urllib3
from sqlalchemy import create_engine, text

from app.midtrans import signature_for

DEFAULT_COUNT = 10_000
SENDERS = 16
DUPLICATE_SHARE = 0.2
REORDERED_SHARE = 0.1
# Final statuses: (share, simulator action, notification status_code).
FINALS = {"settlement": (0.8, "pay", "200"), "expire": (0.1, "expire", "407"),
          "cancel": (0.1, "cancel", "200")}  # fmt: skip
PENDING_CODE = "201"
# How many deliveries later an order's second notification comes (others interleave).
SPREAD = 48
P99_LIMIT_MS = 1000.0


@dataclass
class Delivery:
    order: str  # the client's order id
    status: str  # the transaction_status it states
    rank: int  # 0 pending, 1 final
    body: bytes
    position: float
    duplicate: bool = False
    action: str | None = None  # simulator action to take first (the order's first final one)


@dataclass
class Plan:
    orders: dict[str, str]  # order id -> final status
    deliveries: list[Delivery] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        seen: dict[str, int] = {}
        late: Counter[bool] = Counter()
        for d in self.deliveries:
            if seen.get(d.order, -1) > d.rank:
                late[d.duplicate] += 1
            seen[d.order] = max(seen.get(d.order, -1), d.rank)
        return {
            "notifications": len(self.deliveries),
            "orders": len(self.orders),
            "duplicates": sum(d.duplicate for d in self.deliveries),
            "reordered": late[False],  # first copies sent after a higher-ranked one
            "late_duplicates": late[True],
            "finals": dict(Counter(self.orders.values())),
        }


def sign(body: dict, status: str, code: str, server_key: str) -> bytes:
    """`body` stating `status` with `code`, signed as Midtrans signs a notification."""
    body = {**body, "transaction_status": status, "status_code": code}
    body["signature_key"] = signature_for(body["order_id"], code, body["gross_amount"], server_key)
    return json.dumps(body).encode()


def orders_for(count: int) -> int:
    """Two real notifications an order; the rest of `count` are duplicates."""
    return max(1, round(count * (1 - DUPLICATE_SHARE) / 2))


def plan(pending_bodies: dict[str, dict], count: int, server_key: str, seed: int = 18) -> Plan:
    """The deliveries for these orders (pending status bodies from the simulator), in the
    order they are sent."""
    rng = random.Random(seed)
    names = list(FINALS)
    weights = [FINALS[n][0] for n in names]
    orders = list(pending_bodies)
    result = Plan({o: rng.choices(names, weights)[0] for o in orders})
    # A reversed order sends its final notification first: REORDERED_SHARE of all
    # notifications are then pending ones that come late (late duplicates come on top).
    reversed_ = set(rng.sample(orders, min(len(orders), round(count * REORDERED_SHARE))))
    step = count / max(len(orders), 1)
    real: list[Delivery] = []
    for i, order in enumerate(orders):
        base, later = i * step, i * step + rng.uniform(1, SPREAD)
        final = result.orders[order]
        first, second = (later, base) if order in reversed_ else (base, later)
        body = pending_bodies[order]
        real.append(Delivery(order, "pending", 0, sign(body, "pending", PENDING_CODE,
                                                       server_key), first))  # fmt: skip
        code = FINALS[final][2]
        real.append(Delivery(order, final, 1, sign(body, final, code, server_key), second))
    duplicates = [
        Delivery(d.order, d.status, d.rank, d.body, d.position + rng.uniform(1, 4 * SPREAD), True)
        for d in rng.choices(real, k=count - len(real))
    ]
    result.deliveries = sorted(real + duplicates, key=lambda d: d.position)
    acted: set[str] = set()
    for d in result.deliveries:
        if d.rank == 1 and d.order not in acted:
            d.action = FINALS[d.status][1]
            acted.add(d.order)
    return result


def seed_orders(gateway: str, simulator: str, headers: dict, tag: str, n: int) -> dict[str, dict]:
    """`n` orders charged through the gateway and chosen (pending, BCA VA) at the simulator;
    their status bodies by the gateway's order id (Midtrans's is the app code, "-", it)."""
    local = threading.local()

    def make(i: int) -> tuple[str, dict]:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        order = f"{tag}-{i}"
        charged = session.post(
            f"{gateway}/charge", json={"order_id": order, "amount": 10000}, headers=headers
        )
        charged.raise_for_status()
        midtrans_id = f"{headers['X-App-Code']}-{order}"
        chosen = session.post(f"{simulator}/_sim/transactions/{midtrans_id}/choose", json={})
        chosen.raise_for_status()
        return order, chosen.json()

    with ThreadPoolExecutor(SENDERS) as pool:
        return dict(pool.map(make, range(n)))


def send(port: int, simulator: str, deliveries: list[Delivery]) -> dict:
    """Send every delivery in turn from SENDERS threads; latencies and errors."""
    pool = urllib3.HTTPConnectionPool(
        "127.0.0.1", port, maxsize=SENDERS, block=True, retries=False, timeout=30.0
    )
    local = threading.local()
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    simulator_errors: Counter[str] = Counter()
    cursor = iter(range(len(deliveries)))
    cursor_lock = threading.Lock()

    def sender() -> None:
        while True:
            with cursor_lock:
                i = next(cursor, None)
            if i is None:
                return
            d = deliveries[i]
            if d.action is not None:
                midtrans_id = json.loads(d.body)["order_id"]
                sim = getattr(local, "sim", None) or requests.Session()
                local.sim = sim
                acted = sim.post(f"{simulator}/_sim/transactions/{midtrans_id}/{d.action}", json={})
                if not acted.ok:
                    simulator_errors[str(acted.status_code)] += 1
            started = time.perf_counter()
            try:
                answer = pool.request(
                    "POST",
                    "/notification",
                    body=d.body,
                    headers={"Content-Type": "application/json"},
                )
                status = answer.status
            except urllib3.exceptions.HTTPError as err:
                status = type(err).__name__
            latencies.append(time.perf_counter() - started)
            if status != 200:
                errors[str(status)] += 1

    wall = time.perf_counter()
    cpu = time.process_time()
    threads = [threading.Thread(target=sender) for _ in range(SENDERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    pool.close()
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))] * 1e6

    return {
        "requests": len(ordered),
        "wall_s": wall,
        "loadgen_cpu_s": cpu,
        "errors": dict(errors),
        "simulator_errors": dict(simulator_errors),
        "latency_us": {
            "p50": pct(50),
            "p95": pct(95),
            "p99": pct(99),
            "max": ordered[-1] * 1e6,
        },
    }


def check(database_url: str, app_code: str, expected: dict[str, str], sent: int) -> dict:
    """What the gateway's database says after the phase, against what the plan says."""
    engine = create_engine(database_url)
    with engine.connect() as conn:
        app_id = conn.execute(text("SELECT id FROM apps WHERE code = :c"), {"c": app_code}).scalar()
        rows = conn.execute(
            text("SELECT id, order_id, status FROM transactions WHERE app_id = :a"), {"a": app_id}
        ).all()
        finals = {r.order_id: (r.id, r.status) for r in rows if r.order_id in expected}
        moves = Counter(
            (r.transaction_id, r.to_status)
            for r in conn.execute(text("SELECT transaction_id, to_status FROM transaction_events"))
        )
        ids = {txn_id for txn_id, _ in finals.values()}
        outcomes = Counter(
            r.outcome
            for r in conn.execute(text("SELECT transaction_id, outcome FROM notifications"))
            if r.transaction_id in ids
        )
    engine.dispose()
    wrong = [o for o, final in expected.items() if finals.get(o, (None, None))[1] != final]
    twice = [o for o, final in expected.items() if o in finals and moves[finals[o][0], final] > 1]
    never = [o for o, final in expected.items() if o in finals and moves[finals[o][0], final] < 1]
    unprocessed = sum(n for k, n in outcomes.items() if k in ("received", "unconfirmed"))
    return {
        "orders": len(expected),
        "wrong_final_state": len(wrong),
        "applied_twice": len(twice),
        "no_event": len(never),
        "unprocessed_notifications": unprocessed,
        "notifications": sum(outcomes.values()),
        "lost_notifications": sent - sum(outcomes.values()),
        "outcomes": dict(outcomes),
        "examples": (wrong + twice + never)[:5],
        "ok": not wrong
        and not twice
        and not never
        and unprocessed == 0
        and sent == sum(outcomes.values()),
    }
