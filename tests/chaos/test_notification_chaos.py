"""Issue 4: POST /notification under chaos, through real gunicorn (3 workers x 4 threads).

Two hundred orders are created through POST /charge and driven to their true final state at the
simulator (settlement, deny, expire, cancel, or settlement then a refund through Core), which
sends no notification of its own. The test sends the gateway each lifecycle's notifications
itself, signed like Midtrans's, from a thread pool: a fifth of them again later (duplicates), a
tenth of the orders' notifications newest first (reordered), a tenth of them as bursts of ten
identical requests at once, and forged or tampered ones among them (a wrong signature, another
server key, an edited gross_amount, status_code or order_id, "10000" for "10000.00").

Issue 16: a third of the orders are Core API charges (a BCA VA number at creation, no Snap
page); the rest are Snap links whose customer picks BCA VA on the page.

Issue 11: a quarter of the Snap orders carry a fee of their own from Midtrans's fee imposition (the
notifications' gross_amount includes it, the split in `metadata.extra_info.gross_amount_info` or
at the top level), and some paid orders end partly refunded (one or two partial refunds) or
fully refunded after a partial one, each refund notified like any other change.

It passes only if every order ends in its true final state (in the gateway's own row, read from
the database before anything else could repair it, and in GET /status, with the outcome, the
refunded amount and the fee Midtrans reports), the event log never moves an order backwards,
nothing forged or tampered was applied, no order is flagged, every notification sent was
stored, and no request got a 5xx. `CHAOS_SEED=n` replays another random plan.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
import requests
from e2e.servers import SIMULATOR_KEY
from support import NOTIFICATION_CODES, notification_for

from app.payments import can_move

pytestmark = pytest.mark.timeout(300)

ORDERS = 200
PARALLEL_LIFECYCLES = 16
BURST = 10
SEED = int(os.environ.get("CHAOS_SEED", "4"))
SERVER_KEY = SIMULATOR_KEY
ATTACKER_KEY = "SB-Mid-server-other"

# The true final state of each order, and how often it is drawn.
FINALS = {
    "settlement": 25,
    "deny": 15,
    "expire": 15,
    "cancel": 15,
    "refund": 20,
    "partial_refund": 10,
}
# The control API action that brings a pending payment to it (a refund is paid first).
ACTIONS = {
    "settlement": "pay",
    "deny": "fail",
    "expire": "expire",
    "cancel": "cancel",
    "refund": "pay",
    "partial_refund": "pay",
}
OUTCOMES = {
    "settlement": "paid",
    "deny": "failed",
    "expire": "expired",
    "cancel": "cancelled",
    "refund": "refunded",
    "partial_refund": "partially_refunded",
}
FEE_SHARE = 0.25
CORE_SHARE = 1 / 3
CORE_CHARGE = {"payment_type": "bank_transfer", "bank": "bca"}
# An order's own fee imposition, fixed as the customer picks a method: the rule, the fee.
FEE_RULES = [({"fee": 4440}, 4440), ({"fee_imposition": {"fee": 2500, "placement": "top"}}, 2500)]
FORGERIES = (
    "bad_signature",
    "other_server_key",
    "edited_gross_amount",
    "edited_status_code",
    "edited_order_id",
    "amount_without_cents",
)


@dataclass
class Sent:
    """One distinct notification body and every answer the gateway gave it."""

    kind: str  # "genuine" or one of FORGERIES
    order_id: str
    answers: list[int | str] = field(default_factory=list)


class Sender:
    """Posts notification bodies to the gateway, alone or as a burst of identical requests
    at once, and remembers what it sent and what each answer was."""

    def __init__(self, url: str, http):
        self.url = url
        self.http = http
        self.sent: dict[str, Sent] = {}
        self.lock = threading.Lock()

    def send(self, body: dict, *, kind: str, order_id: str, burst: bool = False) -> None:
        raw = json.dumps(body)
        with self.lock:
            record = self.sent.setdefault(raw, Sent(kind, order_id))
        if not burst:
            self._post(raw, record)
            return
        start = threading.Barrier(BURST)

        def one():
            try:
                start.wait(timeout=10)
            except threading.BrokenBarrierError:
                pass
            self._post(raw, record)

        threads = [threading.Thread(target=one) for _ in range(BURST)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

    def _post(self, raw: str, record: Sent) -> None:
        try:
            status = self.http.request(
                "POST", self.url, data=raw, headers={"Content-Type": "application/json"}
            ).status_code
        except requests.RequestException as err:
            status = f"no answer: {type(err).__name__}"
        with self.lock:
            record.answers.append(status)


def forged(kind: str, genuine: dict, other_order: str) -> dict:
    """A notification that must be rejected: made without the server key, or a genuine one
    edited after signing. Each claims the order is paid, which is what an attacker wants."""
    claim = {"transaction_status": "settlement", "status_code": "200"}
    if kind == "bad_signature":
        return {**genuine, **claim, "signature_key": secrets.token_hex(64)}
    if kind == "other_server_key":
        return notification_for(genuine, server_key=ATTACKER_KEY, **claim)
    if kind == "edited_gross_amount":
        return {**genuine, "gross_amount": "1.00"}
    if kind == "edited_status_code":
        code = "201" if genuine["status_code"] != "201" else "200"
        status = "pending" if code == "201" else "settlement"
        return {**genuine, "status_code": code, "transaction_status": status}
    if kind == "edited_order_id":
        return {**genuine, "order_id": other_order}
    if kind == "amount_without_cents":
        assert genuine["gross_amount"].endswith(".00")
        return {**genuine, "gross_amount": genuine["gross_amount"][:-3]}
    raise AssertionError(kind)


class Simulator:
    """The simulator, as Midtrans (status and refund, with Basic auth) and as the customer
    (its control API)."""

    def __init__(self, url: str, http):
        self.url = url
        self.http = http
        # Orders here are paid by BCA VA, which Midtrans's API does not refund: allow it.
        http.request("POST", f"{url}/_sim/config", json={"refund_any_method": True})

    def control(self, order_id: str, action: str, body: dict | None = None) -> dict:
        answer = self.http.request(
            "POST", f"{self.url}/_sim/transactions/{order_id}/{action}", json=body or {}
        )
        assert answer.status_code == 200, (order_id, action, answer.text)
        return answer.json()

    def status(self, order_id: str) -> dict:
        answer = self.http.request("GET", f"{self.url}/v2/{order_id}/status", auth=(SERVER_KEY, ""))
        body = answer.json()
        assert answer.status_code == 200 and "transaction_status" in body, answer.text
        return body

    def refund(self, order_id: str, amount: int | None = None, number: int = 0) -> dict:
        """Refund `amount`, or all that is left (the fee included)."""
        body = {"refund_key": f"rf{number}-{order_id}", "reason": "chaos"}
        if amount is not None:
            body["amount"] = amount
        answer = self.http.request(
            "POST", f"{self.url}/v2/{order_id}/refund", json=body, auth=(SERVER_KEY, "")
        )
        assert answer.status_code == 200 and answer.json()["status_code"] == "200", answer.text
        return answer.json()


@dataclass
class Order:
    order_id: str
    midtrans_id: str
    amount: int
    final: str
    core: bool = False  # a Core API charge (VA at creation) instead of a Snap link
    fee_rule: dict = field(default_factory=dict)
    fee: int = 0
    # Partial refunds before the final state (a refund: one; a partial refund: one or two).
    partial_refunds: list[int] = field(default_factory=list)

    @property
    def refunded(self) -> int:
        if self.final == "refund":
            return self.amount + self.fee
        return sum(self.partial_refunds)


def draw_order(order_id: str, midtrans_id: str, plan: random.Random) -> Order:
    order = Order(
        order_id=order_id,
        midtrans_id=midtrans_id,
        amount=plan.randrange(10, 5_000) * 100,
        final=plan.choices(list(FINALS), weights=list(FINALS.values()))[0],
    )
    order.core = plan.random() < CORE_SHARE
    if not order.core and plan.random() < FEE_SHARE:
        order.fee_rule, order.fee = plan.choice(FEE_RULES)
    parts = {"partial_refund": plan.choice((1, 2)), "refund": plan.choice((0, 1))}
    order.partial_refunds = [
        max(100, int(round(order.amount * plan.uniform(0.1, 0.3), -2)))
        for _ in range(parts.get(order.final, 0))
    ]
    return order


def test_notifications_duplicated_reordered_bursting_and_forged_end_in_the_true_state(
    chaos_stack, http
):
    started = time.monotonic()
    stack = chaos_stack(GUNICORN_WORKERS="3", GUNICORN_THREADS="4", MIDTRANS_TIMEOUT="5")
    sim = Simulator(stack.simulator_url, http)
    sender = Sender(f"{stack.gateway_url}/notification", http)
    plan = random.Random(SEED)
    run = secrets.token_hex(3)
    orders = [
        draw_order(order_id, stack.midtrans_id(order_id), plan)
        for order_id in (f"n{i:03d}-{run}" for i in range(ORDERS))
    ]
    seeds = [plan.randrange(2**32) for _ in orders]
    stats = Counter()
    stats_lock = threading.Lock()

    def lifecycle(index: int) -> None:
        order, rng = orders[index], random.Random(seeds[index])
        other = orders[(index + 1) % len(orders)].midtrans_id
        answer = http.request(
            "POST",
            f"{stack.gateway_url}/charge",
            json={
                "order_id": order.order_id,
                "amount": order.amount,
                **(CORE_CHARGE if order.core else {}),
            },
            headers=stack.headers,
        )
        assert answer.status_code == 201, answer.text
        if order.core:  # the VA number is in the answer already
            assert answer.json()["va_numbers"][0]["bank"] == "bca", answer.text
        reordered = rng.random() < 0.10
        genuine: list[dict] = []
        later: list[tuple[dict, str]] = []  # duplicates and forgeries, sent after the lifecycle
        counts = Counter(reordered_orders=int(reordered))

        def deliver(body: dict, kind: str = "genuine") -> None:
            burst = kind == "genuine" and rng.random() < 0.10
            counts["bursts"] += burst
            counts["posts"] += BURST if burst else 1
            sender.send(body, kind=kind, order_id=order.midtrans_id, burst=burst)

        def happened(status: dict) -> None:
            """Midtrans would notify now: send it (or hold it, for a reordered order)."""
            body = notification_for(status, server_key=SERVER_KEY)
            assert body["transaction_status"] in NOTIFICATION_CODES, body
            genuine.append(body)
            if not reordered:
                deliver(body)
            if rng.random() < 0.20:
                later.append((body, "genuine"))
                counts["duplicates"] += 1
            if rng.random() < 0.15:
                kind = rng.choice(FORGERIES)
                fake = forged(kind, body, other)
                # Half right away, half later among the duplicates.
                if rng.random() < 0.5:
                    deliver(fake, kind)
                else:
                    later.append((fake, kind))
                counts["forged"] += 1

        # The customer picks BCA VA (pending), paying the order's own fee if it has one; a
        # Core charge is pending with its VA from the start.
        if not order.core:
            sim.control(order.midtrans_id, "choose", order.fee_rule)
        happened(sim.status(order.midtrans_id))
        sim.control(order.midtrans_id, ACTIONS[order.final])
        happened(sim.status(order.midtrans_id))
        for number, part in enumerate(order.partial_refunds):
            sim.refund(order.midtrans_id, part, number)
            happened(sim.status(order.midtrans_id))
        if order.final == "refund":
            sim.refund(order.midtrans_id, number=len(order.partial_refunds))
            happened(sim.status(order.midtrans_id))
        if reordered:
            for body in reversed(genuine):
                deliver(body)
        rng.shuffle(later)
        for body, kind in later:
            deliver(body, kind)
        with stats_lock:
            stats.update(counts)

    with ThreadPoolExecutor(PARALLEL_LIFECYCLES) as pool:
        for future in [pool.submit(lifecycle, i) for i in range(len(orders))]:
            future.result()
    driven = time.monotonic() - started

    # 1. The gateway's own rows, read before GET /status could repair anything.
    rows = {
        row["midtrans_order_id"]: row
        for row in stack.db.rows(
            "SELECT id, midtrans_order_id, status, flag, refunded_amount, customer_imposed_fee"
            " FROM transactions"
        )
    }
    events = stack.db.rows(
        "SELECT id, transaction_id, from_status, to_status, fraud_status, source,"
        " notification_id FROM transaction_events ORDER BY id"
    )
    notes = stack.db.rows(
        "SELECT id, body, outcome, signature_valid, transaction_id, reason FROM notifications"
    )

    wrong_rows = {
        o.order_id: (rows[o.midtrans_id]["status"], o.final)
        for o in orders
        if rows[o.midtrans_id]["status"] != o.final
    }
    assert not wrong_rows, f"gateway rows not in the true final state: {wrong_rows}"
    flagged = {mid: row["flag"] for mid, row in rows.items() if row["flag"]}
    assert not flagged, f"orders flagged: {flagged}"
    wrong_money = {
        o.order_id: (row["refunded_amount"], row["customer_imposed_fee"], o.refunded, o.fee)
        for o in orders
        if ((row := rows[o.midtrans_id])["refunded_amount"], row["customer_imposed_fee"] or 0)
        != (o.refunded, o.fee)
    }
    assert not wrong_money, f"refunded amount or fee (gateway's, true): {wrong_money}"

    # 2. The event log: each order's moves chain from its creation (None -> pending, by the
    # charge), and every later one goes forward by the lifecycle's own rules.
    current: dict[int, str | None] = {row["id"]: None for row in rows.values()}
    backward = []
    for event in events:
        txn, before, after = event["transaction_id"], event["from_status"], event["to_status"]
        if before is None:
            ok = current[txn] is None and after == "pending" and event["source"] == "charge"
        else:
            ok = before == current[txn] and can_move(
                before, after, current_fraud=None, new_fraud=event["fraud_status"]
            )
        if not ok:
            backward.append(event)
        current[txn] = after
    assert not backward, f"{len(backward)} moves not forward, e.g. {backward[:5]}"
    assert {rows[o.midtrans_id]["id"]: o.final for o in orders} == current

    # 3. Every notification sent was stored as received; forged ones rejected, never applied.
    stored = Counter(note["body"] for note in notes)
    sent_count = {raw: len(s.answers) for raw, s in sender.sent.items()}
    assert stored == Counter(sent_count), "stored notifications differ from those sent"
    forged_ids = set()
    for note in notes:
        record = sender.sent[note["body"]]
        if record.kind == "genuine":
            assert note["signature_valid"], note
            assert note["outcome"] in {"applied", "unchanged"}, note
        else:
            forged_ids.add(note["id"])
            assert not note["signature_valid"], (record.kind, note)
            assert note["outcome"] == "rejected", (record.kind, note)
            assert note["transaction_id"] is None, (record.kind, note)
    applied_by_forgery = [e for e in events if e["notification_id"] in forged_ids]
    assert not applied_by_forgery, f"events caused by forged notifications: {applied_by_forgery}"
    answers = defaultdict(Counter)
    for record in sender.sent.values():
        answers[record.kind].update(record.answers)
    assert set(answers["genuine"]) == {200}, dict(answers)
    for kind in FORGERIES:
        assert set(answers[kind]) <= {403}, (kind, dict(answers[kind]))

    # 4. GET /status with live Midtrans, and Midtrans itself, agree with the true state.
    def live(order: Order) -> tuple[str, str]:
        answer = http.request(
            "GET", f"{stack.gateway_url}/status/{order.order_id}", headers=stack.headers
        )
        assert answer.status_code == 200, answer.text
        view = answer.json()
        assert view["live"] is True, view
        fee = view.get("customer_imposed_fee") or 0
        assert (view["outcome"], view["amount"], view["refunded_amount"], fee) == (
            OUTCOMES[order.final],
            order.amount,
            order.refunded,
            order.fee,
        ), (order, view)
        return view["transaction_status"], sim.status(order.midtrans_id)["transaction_status"]

    with ThreadPoolExecutor(PARALLEL_LIFECYCLES) as pool:
        seen = list(pool.map(live, orders))
    mismatched = {
        o.order_id: (status, truth, o.final)
        for o, (status, truth) in zip(orders, seen, strict=True)
        if not status == truth == o.final
    }
    assert not mismatched, f"GET /status or the simulator disagree: {mismatched}"

    # 5. The simulator notified nobody, and no request to the gateway failed on its side.
    notified = http.request("GET", f"{stack.simulator_url}/_sim/notifications").json()
    assert notified == [], f"the simulator sent notifications: {notified[:3]}"
    errors = http.server_errors()
    assert not errors, f"{len(errors)} answers were 5xx, e.g. {errors[:5]}\n{stack.logs()}"
    assert not stack.log_problems(), "\n".join(stack.log_problems()[:40])

    kinds = Counter(record.kind for record in sender.sent.values())
    print(
        f"\nnotification chaos (seed {SEED}): {len(orders)} orders"
        f" {dict(Counter(o.final for o in orders))} ({sum(1 for o in orders if o.fee)} with"
        f" a fee, {sum(len(o.partial_refunds) for o in orders)} partial refunds),"
        f" {sum(stored.values())} notifications"
        f" stored, {len(sender.sent)} distinct ({dict(kinds)}), {dict(stats)},"
        f" {len(events)} events; driven in {driven:.1f} s,"
        f" checked in {time.monotonic() - started - driven:.1f} s"
    )
