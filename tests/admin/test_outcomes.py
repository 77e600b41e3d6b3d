"""What a payment means on the dashboard: totals count only what was paid, a challenged card
capture reads "needs a decision", the outcome filter finds exactly the rows `outcome_of` names,
the CSV carries the outcome and the amounts."""

from __future__ import annotations

import csv
import io
import itertools
import re

import pytest
from admin.dashboard import token_for
from sqlalchemy import select

from app.admin import common, meaning, overview
from app.admin import transactions_queries as queries
from app.extensions import db
from app.models import App, Transaction, TxStatus
from app.payments.outcomes import OUTCOMES, outcome_of

# Every status Midtrans has, and what else a row may hold: an empty one, one Midtrans may add
# later, one in the wrong case. The same for fraud_status, with none at all.
STATUSES = [str(s) for s in TxStatus] + ["", "on_hold", "SETTLEMENT", "Capture"]
FRAUD_STATUSES = [None, "accept", "challenge", "deny", "", "ACCEPT", "review", "accept "]


def _update(app, txn_id: int, **values) -> None:
    with app.app_context():
        txn = db.session.get(Transaction, txn_id)
        for name, value in values.items():
            setattr(txn, name, value)
        db.session.commit()


def _add_rows(app, rows: list[tuple[str, str | None]], *, prefix: str = "C") -> dict[str, tuple]:
    """One order per (status, fraud_status), written straight to the table.

    Returns {order_id: (status, fraud_status)}."""
    made = {}
    with app.app_context():
        app_id = db.session.execute(select(App.id).where(App.code == "biling")).scalar_one()
        for i, (status, fraud) in enumerate(rows):
            order_id = f"{prefix}{i:03d}"
            db.session.add(
                Transaction(
                    app_id=app_id,
                    order_id=order_id,
                    midtrans_order_id=order_id,
                    amount=1000 + i,
                    status=status,
                    fraud_status=fraud,
                    request_fingerprint="x" * 64,
                    request_body={},
                )
            )
            made[order_id] = (status, fraud)
        db.session.commit()
    return made


@pytest.fixture
def every_combination(app, app_key) -> dict[str, tuple]:
    return _add_rows(app, list(itertools.product(STATUSES, FRAUD_STATUSES)))


def _expected(rows: dict[str, tuple], outcome: str) -> set[str]:
    return {
        order for order, (status, fraud) in rows.items() if outcome_of(status, fraud) == outcome
    }


def test_the_sql_condition_of_each_outcome_is_outcome_of(app, every_combination):
    with app.app_context():
        for outcome in OUTCOMES:
            found = db.session.execute(
                select(Transaction.order_id).where(meaning.outcome_condition(outcome))
            ).scalars()
            assert set(found) == _expected(every_combination, outcome), outcome
        nothing = select(Transaction.id).where(meaning.outcome_condition("no-such-outcome"))
        assert db.session.execute(nothing).first() is None
    # Every row has exactly one outcome: the conditions split the table.
    assert sum(len(_expected(every_combination, o)) for o in OUTCOMES) == len(every_combination)


def _orders_on(html: str) -> set[str]:
    return set(re.findall(r'/admin/transactions/\d+">([^<]+)</a>', html))


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_the_outcome_filter_lists_exactly_its_orders(admin_client, every_combination, outcome):
    expected = _expected(every_combination, outcome)
    assert len(expected) < common.PAGE_SIZE  # all on one page
    html = admin_client.get(f"/admin/transactions?outcome={outcome}").get_data(as_text=True)
    assert _orders_on(html) == expected
    assert f"{len(expected)} order" in html
    csv_rows = _csv(admin_client, f"/admin/transactions.csv?outcome={outcome}")
    assert {r["order_id"] for r in csv_rows} == expected
    assert {r["outcome"] for r in csv_rows} <= {outcome}


def test_outcome_and_status_filters_combine(admin_client, every_combination):
    html = admin_client.get("/admin/transactions?outcome=paid&status=capture").get_data(
        as_text=True
    )
    assert _orders_on(html) == {
        o for o, (s, f) in every_combination.items() if (s, f) == ("capture", "accept")
    }
    # The status filter alone still means Midtrans's raw status.
    by_status = admin_client.get("/admin/transactions?status=capture").get_data(as_text=True)
    assert _orders_on(by_status) == {
        o for o, (s, _f) in every_combination.items() if s == "capture"
    }
    # An unknown outcome is ignored, as an unknown status is.
    everything = admin_client.get("/admin/transactions?outcome=bogus").get_data(as_text=True)
    assert f"{len(every_combination)} orders" in everything


@pytest.fixture
def todays_orders(app, app_key, charge) -> dict[str, int]:
    """Today: a settlement (100.000), an accepted card capture (40.000), a challenged card
    capture (70.000: held, not paid), a settlement partly refunded (50.000, 20.000 back) and an
    expired order (90.000)."""
    ids = {
        "settled": charge(app_key, "SETTLED-1", amount=100000),
        "accepted": charge(app_key, "CARD-OK", amount=40000),
        "challenged": charge(app_key, "CARD-HELD", amount=70000),
        "part_refunded": charge(app_key, "PART-REF", amount=50000),
        "expired": charge(app_key, "EXP-2", amount=90000),
    }
    _update(app, ids["settled"], status=TxStatus.SETTLEMENT, fraud_status="accept")
    _update(app, ids["accepted"], status=TxStatus.CAPTURE, fraud_status="accept")
    _update(app, ids["challenged"], status=TxStatus.CAPTURE, fraud_status="challenge")
    _update(app, ids["part_refunded"], status=TxStatus.PARTIAL_REFUND, refunded_amount=20000)
    _update(app, ids["expired"], status=TxStatus.EXPIRE)
    return ids


def test_overview_totals_count_paid_money_only(admin_client, app, todays_orders):
    html = admin_client.get("/admin/").get_data(as_text=True)
    today = html.split("Last 7 days", 1)[0]
    # Paid: 100.000 + 40.000 + (50.000 - 20.000 refunded); the challenged 70.000 is not a sale.
    # (Counting every capture as paid, as the dashboard once did, shows Rp 210.000.)
    assert "Rp 210.000" not in today and "Rp 240.000" not in today
    assert re.search(r'paid-total">Rp 170\.000<', today), today
    # 3 paid of 4 finished (the challenged one is still waiting for a decision).
    assert "75.0%" in today
    # The held money is shown on its own line, as what it is.
    held = re.search(r"needs a decision</span></td><td[^>]*>(\d+)</td><td[^>]*>([^<]+)<", today)
    assert held and held.groups() == ("1", "Rp 70.000")
    # It is listed among what needs a person; the plain paid orders are not.
    attention = html.split("Latest failures", 1)[1]
    assert "CARD-HELD" in attention and "EXP-2" in attention and "SETTLED-1" not in attention

    with app.test_request_context():
        data = overview.figures()
    bar = data["days"][-1]
    assert (bar.paid, bar.pending, bar.failed, bar.other) == (3, 1, 1, 0)
    assert data["today"].paid.count == 3 and data["today"].paid.kept == 170000


def _switch_language(client, lang: str) -> None:
    token = token_for(client, "/admin/")
    resp = client.post("/admin/language", data={"csrf_token": token, "lang": lang})
    assert resp.status_code == 302


def test_a_challenged_capture_needs_a_decision_in_the_list_and_on_its_page(
    admin_client, app, todays_orders
):
    held, settled = todays_orders["challenged"], todays_orders["settled"]
    rows = _rows_by_order(admin_client.get("/admin/transactions").get_data(as_text=True))
    assert "needs a decision" in rows["CARD-HELD"] and "capture / challenge" in rows["CARD-HELD"]
    assert "badge-ok" not in rows["CARD-HELD"]
    assert "needs a decision" not in rows["CARD-OK"] and "badge-ok" in rows["CARD-OK"]
    assert "capture / accept" in rows["CARD-OK"]

    page = admin_client.get(f"/admin/transactions/{held}").get_data(as_text=True)
    assert "Needs a decision." in page and "the money is held, not paid" in page
    assert "not paid: do not deliver" in page
    assert ">Refund<" not in page  # nothing was paid that could be refunded
    paid_page = admin_client.get(f"/admin/transactions/{settled}").get_data(as_text=True)
    assert "Needs a decision." not in paid_page and "may be delivered" in paid_page

    _switch_language(admin_client, "id")
    rows = _rows_by_order(admin_client.get("/admin/transactions").get_data(as_text=True))
    assert "perlu keputusan" in rows["CARD-HELD"] and "needs a decision" not in rows["CARD-HELD"]
    assert "perlu keputusan" not in rows["CARD-OK"]
    page = admin_client.get(f"/admin/transactions/{held}").get_data(as_text=True)
    assert "Perlu keputusan." in page


def _rows_by_order(html: str) -> dict[str, str]:
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = {}
    for row in re.findall(r"<tr.*?</tr>", body, flags=re.S):
        found = re.search(r'/admin/transactions/\d+">([^<]+)</a>', row)
        if found:
            rows[found.group(1)] = row
    return rows


def test_refunds_and_the_payers_fee_are_shown(admin_client, app, todays_orders):
    _update(app, todays_orders["settled"], customer_imposed_fee=5000)
    rows = _rows_by_order(admin_client.get("/admin/transactions").get_data(as_text=True))
    assert "Rp 100.000" in rows["SETTLED-1"]
    assert "+ fee Rp 5.000 paid by the payer = Rp 105.000" in rows["SETTLED-1"]
    assert "Rp 20.000" in rows["PART-REF"] and "partially refunded" in rows["PART-REF"]
    assert "fee" not in rows["PART-REF"]

    page = admin_client.get(f"/admin/transactions/{todays_orders['settled']}").get_data(
        as_text=True
    )
    assert "= Rp 105.000" in page
    refunded = admin_client.get(f"/admin/transactions/{todays_orders['part_refunded']}")
    html = refunded.get_data(as_text=True)
    assert re.search(r"Refunded</dt><dd>Rp 20\.000<", html)
    # What is left to refund is offered, not the whole amount again.
    assert 'name="amount"' in html and 'value="30000"' in html


def _csv(client, path: str) -> list[dict]:
    resp = client.get(path)
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))


def test_csv_has_outcome_paid_refunded_and_fee(admin_client, app, todays_orders):
    _update(app, todays_orders["settled"], customer_imposed_fee=5000)
    rows = {r["order_id"]: r for r in _csv(admin_client, "/admin/transactions.csv")}
    columns = list(rows["SETTLED-1"])
    assert columns[: len(queries.CSV_COLUMNS) - 4] == list(queries.CSV_COLUMNS[:-4])
    assert columns[-4:] == ["outcome", "paid", "refunded_amount", "customer_imposed_fee"]
    picked = {
        order: (
            r["status"],
            r["outcome"],
            r["paid"],
            r["refunded_amount"],
            r["customer_imposed_fee"],
        )
        for order, r in rows.items()
    }
    assert picked == {
        "SETTLED-1": ("settlement", "paid", "true", "0", "5000"),
        "CARD-OK": ("capture", "paid", "true", "0", ""),
        "CARD-HELD": ("capture", "challenge", "false", "0", ""),
        "PART-REF": ("partial_refund", "partially_refunded", "true", "20000", ""),
        "EXP-2": ("expire", "expired", "false", "0", ""),
    }
