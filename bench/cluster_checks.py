"""The checks of `make bench-cluster` (bench/cluster.py), once the traffic has settled: what
the callback receiver got, what the database holds, what the simulator and both instances say.
Each returns its figures and `passed`; `examples` shows a few failures."""

from __future__ import annotations

import random
import re
from collections import defaultdict
from typing import TYPE_CHECKING

from .cluster_kit import Hit, session

if TYPE_CHECKING:
    from .cluster import Cluster, Order


def check_callbacks(cluster: Cluster) -> dict:
    """Every callback event arrived, verified, in its order's order; never twice at once."""
    hits = list(cluster.callbacks.hits)
    webhooks = {shop.code: shop.webhook for shop in cluster.shops}
    by_id: dict[str, list[Hit]] = defaultdict(list)
    unverified = 0
    for hit in hits:
        lowered = {k.lower(): v for k, v in hit.headers.items()}
        try:
            webhooks[hit.path.rsplit("/", 1)[-1]].verify(hit.body, lowered)
        except Exception:  # noqa: BLE001 - any failure is an unverified callback
            unverified += 1
        by_id[lowered.get("webhook-id", "")].append(hit)
    overlapping = []
    for webhook_id, deliveries in by_id.items():
        deliveries.sort(key=lambda h: h.start)
        if any(b.start < a.end for a, b in zip(deliveries, deliveries[1:], strict=False)):
            overlapping.append(webhook_id)
    events = cluster.database.rows(
        "SELECT event_id, transaction_id, id, state FROM callback_events ORDER BY id"
    )
    known = {event_id for event_id, *_ in events}
    missing = [e for e, _, _, state in events if e not in by_id]
    undelivered = [e for e, _, _, state in events if state != "delivered"]
    out_of_order = 0
    first_arrival = {w: min(h.start for h in hs) for w, hs in by_id.items()}
    per_order: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for event_id, txn_id, row_id, _ in events:
        per_order[txn_id].append((row_id, event_id))
    for chain in per_order.values():
        arrivals = [first_arrival.get(e, float("inf")) for _, e in sorted(chain)]
        out_of_order += arrivals != sorted(arrivals)
    delivered_by = worker_deliveries(cluster)
    return {
        "callback_events": len(events),
        "deliveries_received": len(hits),
        "delivered_more_than_once": sum(len(h) > 1 for h in by_id.values()),
        "delivered_twice_at_once": len(overlapping),
        "not_received": len(missing),
        "not_delivered_state": len(undelivered),
        "unknown_webhook_ids": len(set(by_id) - known),
        "signature_failures": unverified,
        "orders_out_of_order": out_of_order,
        "deliveries_by_worker": delivered_by,
        "examples": (overlapping + missing)[:5],
        "passed": not (overlapping or missing or undelivered or unverified or out_of_order)
        and not set(by_id) - known,
    }


def worker_deliveries(cluster: Cluster) -> dict[str, int]:
    pattern = re.compile(r"callback msg_\w+ to app \S+: delivered")
    return {w.name: len(pattern.findall(w.log())) for w in cluster.workers}


def check_applied_once(cluster: Cluster, orders: list[Order]) -> dict:
    """Each order changed once per real change: one event per status move, a consistent
    chain, one callback event per change (plus the link's), no flag, nothing left over."""
    database = cluster.database
    ids = {o.midtrans_order_id for o in orders if o.ok}
    txns = {
        mid: (txn_id, flag)
        for txn_id, mid, flag in database.rows(
            "SELECT id, midtrans_order_id, flag FROM transactions"
        )
        if mid in ids
    }
    events: dict[int, list[tuple]] = defaultdict(list)
    for txn_id, source, before, after in database.rows(
        "SELECT transaction_id, source, from_status, to_status FROM transaction_events ORDER BY id"
    ):
        events[txn_id].append((source, before, after))
    outbox = dict(database.rows("SELECT transaction_id, count(*) FROM callback_events GROUP BY 1"))
    applied = dict(
        database.rows(
            "SELECT transaction_id, count(*) FROM notifications WHERE outcome = 'applied' "
            "GROUP BY 1"
        )
    )
    outcomes = dict(database.rows("SELECT outcome, count(*) FROM notifications GROUP BY 1"))
    problems: list[str] = []
    for order in orders:
        if not order.ok:
            continue
        txn_id, flag = txns.get(order.midtrans_order_id, (None, None))
        if txn_id is None:
            problems.append(f"{order.midtrans_order_id}: not in the database")
            continue
        chain = events[txn_id]
        moves = [(b, a) for _, b, a in chain[1:] if b != a]
        wanted = [] if order.fate == "pending" else [("pending", order.fate)]
        if chain[:1] != [("charge", None, "pending")] or moves != wanted:
            problems.append(f"{order.midtrans_order_id}: events {chain}")
        if any(b is not None and b != a_prev for (_, _, a_prev), (_, b, _) in _pairs(chain)):
            problems.append(f"{order.midtrans_order_id}: broken chain {chain}")
        if outbox.get(txn_id, 0) != 1 + len(wanted):
            problems.append(f"{order.midtrans_order_id}: {outbox.get(txn_id, 0)} callbacks")
        if applied.get(txn_id, 0) > len(wanted):
            problems.append(f"{order.midtrans_order_id}: {applied[txn_id]} notifications applied")
        if flag:
            problems.append(f"{order.midtrans_order_id}: flagged {flag}")
    return {
        "orders_checked": sum(o.ok for o in orders),
        "status_changes": sum(
            len([1 for _, b, a in events[t] if b is not None and b != a]) for t, _ in txns.values()
        ),
        "notification_outcomes": outcomes,
        "problems": len(problems),
        "examples": problems[:5],
        "passed": not problems
        and not outcomes.get("rejected")
        and not outcomes.get("unconfirmed")
        and not outcomes.get("flagged")
        and not outcomes.get("unmatched"),
    }


def _pairs(chain: list) -> list:
    return list(zip(chain, chain[1:], strict=False))


def check_final_states(cluster: Cluster, orders: list[Order]) -> dict:
    """The gateway's status of every order equals the simulator's and its last notification's,
    and GET /status through either instance says so."""
    upstream = {
        t["order_id"]: t["transaction_status"]
        for t in session().get(f"{cluster.simulator_url}/_sim/transactions", timeout=30).json()
    }
    stored = dict(cluster.database.rows("SELECT midtrans_order_id, status FROM transactions"))
    wrong: list[str] = []
    rng = random.Random(7)
    for order in orders:
        if not order.ok:
            continue
        mid = order.midtrans_order_id
        last = cluster.notifications.bodies(mid, 0, timeout=0)
        last_status = last[-1]["transaction_status"] if last else None
        truth = {stored.get(mid), upstream.get(mid), last_status, order.fate}
        if len(truth) != 1:
            wrong.append(
                f"{mid}: db {stored.get(mid)}, simulator {upstream.get(mid)}, "
                f"last notification {last_status}, meant {order.fate}"
            )
    made = [o for o in orders if o.ok]
    sample = rng.sample(made, min(100, len(made)))
    answered_wrong = 0
    for order in sample:
        for gateway in "ab":
            got = session().get(
                f"{cluster.url(gateway)}/status/{order.order_id}", headers=order.shop.headers
            )
            said = got.json().get("transaction_status") if got.status_code == 200 else None
            answered_wrong += said != order.fate
    return {
        "orders_checked": sum(o.ok for o in orders),
        "wrong": len(wrong),
        "status_answers_checked": 2 * len(sample),
        "status_answers_wrong": answered_wrong,
        "examples": wrong[:5],
        "passed": not wrong and not answered_wrong and all(o.ok for o in orders),
    }
