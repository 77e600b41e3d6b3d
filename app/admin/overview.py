"""The overview page: today's and this week's payments by outcome, seven days of bars, and the
orders that need a look.

Money is counted by outcome (`app.payments.outcomes`), never by Midtrans's raw status: a
challenged card capture is money on hold, not a sale. "Paid" money is what the merchant kept:
the amounts of the orders a client may fulfil (`is_paid`: settled, accepted captures, and
paid orders partly refunded or charged back) less what was given back. A fee the payer added
through Midtrans's fee imposition is not the merchant's and is left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from flask import render_template
from sqlalchemy import func, or_, select

from .. import alerts
from ..extensions import db
from ..models import Transaction, utcnow
from ..payments.outcomes import OUTCOMES, Outcome, is_paid, outcome_of
from . import bp, meaning
from .common import WIB, apps_by_id, wib_midnight


@bp.get("/")
def overview():
    alerts.check_worker_from_web()
    open_alerts = alerts.open_alerts()
    data = figures()
    return render_template(
        "admin/overview.html",
        data=data,
        chart=chart(data["days"]),
        apps=apps_by_id(),
        alerts=open_alerts,
    )


def today_wib() -> date:
    return utcnow().astimezone(WIB).date()


@dataclass
class Tally:
    count: int = 0
    amount: int = 0  # the orders' own amounts
    refunded: int = 0  # what Midtrans gave back of them

    @property
    def kept(self) -> int:
        return self.amount - self.refunded

    def add(self, count: int, amount: int, refunded: int) -> None:
        self.count += count
        self.amount += amount
        self.refunded += refunded


@dataclass
class Period:
    label: str
    by_outcome: dict[str, Tally] = field(default_factory=dict)  # in OUTCOMES order
    paid: Tally = field(default_factory=Tally)  # the orders a client may fulfil

    @property
    def count(self) -> int:
        return sum(t.count for t in self.by_outcome.values())

    @property
    def failed(self) -> int:
        return sum(t.count for o, t in self.by_outcome.items() if o in meaning.UNSUCCESSFUL)

    @property
    def success_rate(self) -> float | None:
        """Paid among the orders that finished one way or the other (waiting ones left out)."""
        paid, failed = self.paid.count, self.failed
        return paid / (paid + failed) if paid + failed else None


def _groups(start: datetime, end: datetime) -> list[tuple[str, str | None, int, int, int]]:
    """(status, fraud_status, count, amount, refunded) of the orders with a link made in
    [start, end): grouped in SQL, given their meaning by `outcome_of` in Python."""
    rows = db.session.execute(
        select(
            Transaction.status,
            Transaction.fraud_status,
            func.count(),
            func.coalesce(func.sum(Transaction.amount), 0),
            func.coalesce(func.sum(Transaction.refunded_amount), 0),
        )
        .where(Transaction.created_at >= start, Transaction.created_at < end)
        .where(Transaction.snap_token.is_not(None))
        .group_by(Transaction.status, Transaction.fraud_status)
    ).all()
    return [(s, f, int(c), int(a), int(r)) for s, f, c, a, r in rows]


def _period(label: str, start: datetime, end: datetime) -> Period:
    tallies: dict[str, Tally] = {}
    paid = Tally()
    for status, fraud, count, amount, refunded in _groups(start, end):
        tallies.setdefault(outcome_of(status, fraud), Tally()).add(count, amount, refunded)
        if is_paid(status, fraud):
            paid.add(count, amount, refunded)
    by_outcome = {o: tallies[o] for o in OUTCOMES if o in tallies}
    return Period(label, by_outcome, paid)


@dataclass
class DayBar:
    day: date
    paid: int  # may be fulfilled (partly refunded ones too)
    pending: int  # waiting: for the customer, a capture, or a decision on a challenge
    failed: int  # failed, expired, cancelled
    other: int  # refunded, charged back

    @property
    def total(self) -> int:
        return self.paid + self.pending + self.failed + self.other


def _day_bar(day: date) -> DayBar:
    bar = DayBar(day, 0, 0, 0, 0)
    for status, fraud, count, _amount, _refunded in _groups(
        wib_midnight(day), wib_midnight(day + timedelta(days=1))
    ):
        outcome = outcome_of(status, fraud)
        if is_paid(status, fraud):
            bar.paid += count
        elif outcome in meaning.WAITING:
            bar.pending += count
        elif outcome in meaning.UNSUCCESSFUL:
            bar.failed += count
        else:
            bar.other += count
    return bar


def figures() -> dict:
    """Today and the last 7 days (WIB) by outcome, a bar a day, the 10 newest orders that
    failed, need a decision or are flagged."""
    today = today_wib()
    start_today = wib_midnight(today)
    tomorrow = wib_midnight(today + timedelta(days=1))
    week_start = wib_midnight(today - timedelta(days=6))
    days = [_day_bar(today - timedelta(days=offset)) for offset in range(6, -1, -1)]
    attention = meaning.outcomes_condition(meaning.UNSUCCESSFUL | {Outcome.CHALLENGE})
    failures = (
        db.session.execute(
            select(Transaction)
            .where(or_(attention, Transaction.flag.is_not(None)))
            .order_by(Transaction.updated_at.desc(), Transaction.id.desc())
            .limit(10)
        )
        .scalars()
        .all()
    )
    return {
        "today": _period("today", start_today, tomorrow),
        "week": _period("week", week_start, tomorrow),
        "days": days,
        "failures": failures,
    }


def chart(days: list[DayBar], *, width: int = 640, height: int = 220) -> dict:
    """Geometry of a stacked bar chart (one bar a day), drawn as inline SVG by the template."""
    top, bottom, left = 16, 36, 36
    plot_h = height - top - bottom
    peak = max([d.total for d in days] + [1])
    slot = (width - left) / len(days)
    bars = []
    for i, d in enumerate(days):
        x = left + i * slot + slot * 0.2
        y = top + plot_h
        segments = []
        for kind in ("paid", "pending", "failed", "other"):
            value = getattr(d, kind)
            h = plot_h * value / peak
            if value:
                segments.append({"kind": kind, "y": round(y - h, 1), "h": round(h, 1)})
            y -= h
        bars.append(
            {
                "x": round(x, 1),
                "w": round(slot * 0.6, 1),
                "label": d.day.strftime("%d/%m"),
                "total": d.total,
                "segments": segments,
                "label_x": round(x + slot * 0.3, 1),
                "total_y": round(y - 4, 1),
            }
        )
    return {
        "width": width,
        "height": height,
        "bars": bars,
        "peak": peak,
        "axis_y": top + plot_h,
        "top": top,
        "left": left,
        "label_y": height - bottom + 18,
    }
