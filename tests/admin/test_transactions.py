"""Transactions: list, filters, search, CSV, detail, and the Midtrans actions."""

from __future__ import annotations

import csv
import io
import json

import responses
from admin.dashboard import forged_notification, settled
from sqlalchemy import select
from support import API_BASE, status_url

from app.admin.models import AuditEntry
from app.extensions import db
from app.models import Transaction, TxStatus


def audits(app, action: str) -> list[AuditEntry]:
    with app.app_context():
        rows = db.session.execute(select(AuditEntry).where(AuditEntry.action == action))
        return list(rows.scalars())


def set_status(app, txn_id: int, status: str) -> None:
    with app.app_context():
        db.session.get(Transaction, txn_id).status = status
        db.session.commit()


def test_list_filters_by_app_status_and_order_id(admin_client, app, app_key, shop_key, charge):
    charge(app_key, "INV-1")
    charge(app_key, "INV-2")
    shop = charge(shop_key, "ORDER-9")
    set_status(app, shop, TxStatus.SETTLEMENT)

    page = admin_client.get("/admin/transactions").get_data(as_text=True)
    assert all(o in page for o in ("INV-1", "INV-2", "ORDER-9"))
    assert "3 orders" in page

    by_status = admin_client.get("/admin/transactions?status=settlement").get_data(as_text=True)
    assert "ORDER-9" in by_status and "INV-1" not in by_status

    # Midtrans's order id (with the shop's prefix) finds the client's order too.
    by_midtrans_id = admin_client.get("/admin/transactions?q=shop-ORDER").get_data(as_text=True)
    assert "ORDER-9" in by_midtrans_id and "INV-1" not in by_midtrans_id

    with app.app_context():
        biling = db.session.execute(select(Transaction.app_id).where(Transaction.id == shop))
        shop_app_id = biling.scalar_one()
    by_app = admin_client.get(f"/admin/transactions?app={shop_app_id}").get_data(as_text=True)
    assert "ORDER-9" in by_app and "INV-2" not in by_app


def test_date_range_is_in_wib(admin_client, app, app_key, charge):
    from datetime import UTC, datetime

    txn = charge(app_key, "LATE-NIGHT")
    with app.app_context():
        # 18:30 UTC on 1 March is already 2 March in Jakarta.
        db.session.get(Transaction, txn).created_at = datetime(2026, 3, 1, 18, 30, tzinfo=UTC)
        db.session.commit()
    march_2 = admin_client.get("/admin/transactions?date_from=2026-03-02&date_to=2026-03-02")
    march_1 = admin_client.get("/admin/transactions?date_from=2026-03-01&date_to=2026-03-01")
    assert "LATE-NIGHT" in march_2.get_data(as_text=True)
    assert "LATE-NIGHT" not in march_1.get_data(as_text=True)


def test_pagination(admin_client, app, app_key, charge):
    for i in range(52):
        charge(app_key, f"P-{i:03d}")
    first = admin_client.get("/admin/transactions").get_data(as_text=True)
    second = admin_client.get("/admin/transactions?page=2").get_data(as_text=True)
    assert "Page 1 of 2" in first and "P-051" in first and "P-000" not in first
    assert "Page 2 of 2" in second and "P-000" in second and "P-051" not in second


def test_csv_export_of_the_filtered_set_defuses_formulas(admin_client, app, app_key, charge):
    charge(app_key, "-1-2", amount=20000)
    charge(app_key, "NORMAL-1", amount=10000)
    with app.app_context():
        txn = db.session.execute(select(Transaction).where(Transaction.order_id == "-1-2")).scalar()
        txn.flag = '=HYPERLINK("http://evil")'
        db.session.commit()

    resp = admin_client.get("/admin/transactions.csv")
    assert resp.status_code == 200
    assert resp.mimetype == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    by_order = {r["midtrans_order_id"]: r for r in rows}
    assert set(by_order) == {"'-1-2", "NORMAL-1"}
    risky = next(r for r in rows if r["amount"] == "20000")
    assert risky["order_id"] == "'-1-2"
    assert risky["flag"] == '\'=HYPERLINK("http://evil")'
    assert by_order["NORMAL-1"]["order_id"] == "NORMAL-1"

    filtered = admin_client.get("/admin/transactions.csv?q=NORMAL").get_data(as_text=True)
    assert len(list(csv.DictReader(io.StringIO(filtered)))) == 1


def test_detail_shows_timeline_and_notifications(admin_client, app, app_key, charge, midtrans):
    txn = charge(app_key, "INV-7", amount=150000)
    midtrans.add(responses.GET, status_url("INV-7"), json=settled("INV-7", 150000))
    with app.app_context():
        body = json.dumps({"order_id": "INV-7", "transaction_status": "settlement"})
        db.session.add(forged_notification("INV-7", body, "bad signature"))
        db.session.commit()
    admin_client.get("/admin/")  # nothing yet; then sync
    token = _token(admin_client, txn)
    admin_client.post(f"/admin/transactions/{txn}/sync", data={"csrf_token": token})

    page = admin_client.get(f"/admin/transactions/{txn}").get_data(as_text=True)
    assert "Order received from the app" in page
    assert "settlement" in page and "via admin" in page
    assert "signature invalid" in page and "rejected" in page and "bad signature" in page
    assert "&#34;transaction_status&#34;: &#34;settlement&#34;" in page


def _token(client, txn_id: int) -> str:
    from admin.dashboard import token_for

    return token_for(client, f"/admin/transactions/{txn_id}")


def test_sync_applies_midtrans_status_and_is_audited(admin_client, app, app_key, charge, midtrans):
    txn = charge(app_key, "INV-8", amount=50000)
    midtrans.add(responses.GET, status_url("INV-8"), json=settled("INV-8", 50000))
    resp = admin_client.post(
        f"/admin/transactions/{txn}/sync", data={"csrf_token": _token(admin_client, txn)}
    )
    assert resp.status_code == 302
    page = admin_client.get(resp.location).get_data(as_text=True)
    assert "The order is now settlement" in page
    (entry,) = audits(app, "transaction_sync")
    assert entry.before["status"] == "pending" and entry.after["status"] == "settlement"
    assert entry.username == "root"


def test_midtrans_errors_are_flashed_not_500(admin_client, app, app_key, charge, midtrans):
    txn = charge(app_key, "INV-9")
    midtrans.add(responses.GET, status_url("INV-9"), status=500, body="oops")
    resp = admin_client.post(
        f"/admin/transactions/{txn}/sync",
        data={"csrf_token": _token(admin_client, txn)},
        follow_redirects=True,
    )
    assert resp.status_code == 200
    assert "Midtrans said:" in resp.get_data(as_text=True)
    assert audits(app, "transaction_sync")[0].detail.startswith("failed:")


def test_cancel_needs_the_confirmation_box(admin_client, app, app_key, charge, midtrans):
    txn = charge(app_key, "INV-10")
    token = _token(admin_client, txn)
    resp = admin_client.post(
        f"/admin/transactions/{txn}/cancel", data={"csrf_token": token}, follow_redirects=True
    )
    assert "Tick the box" in resp.get_data(as_text=True)
    assert not [
        c for c in midtrans.calls if c.request.method == "POST" and "cancel" in c.request.url
    ]

    midtrans.add(responses.POST, f"{API_BASE}/v2/INV-10/cancel", json={"status_code": "200"})
    midtrans.add(responses.GET, status_url("INV-10"), json=settled("INV-10", 150000, "cancel"))
    resp = admin_client.post(
        f"/admin/transactions/{txn}/cancel",
        data={"csrf_token": token, "confirm": "y"},
        follow_redirects=True,
    )
    assert "The order is now cancel" in resp.get_data(as_text=True)
    (entry,) = audits(app, "transaction_cancel")
    assert (entry.before["status"], entry.after["status"]) == ("pending", "cancel")


def test_expire_a_pending_order(admin_client, app, app_key, charge, midtrans):
    txn = charge(app_key, "INV-11")
    midtrans.add(responses.POST, f"{API_BASE}/v2/INV-11/expire", json={"status_code": "407"})
    midtrans.add(responses.GET, status_url("INV-11"), json=settled("INV-11", 150000, "expire"))
    resp = admin_client.post(
        f"/admin/transactions/{txn}/expire",
        data={"csrf_token": _token(admin_client, txn), "confirm": "y"},
        follow_redirects=True,
    )
    assert "The order is now expire" in resp.get_data(as_text=True)
    assert audits(app, "transaction_expire")[0].after["status"] == "expire"


def _refund_form(client, txn_id: int) -> dict:
    import re

    page = client.get(f"/admin/transactions/{txn_id}").get_data(as_text=True)
    key = re.search(r'name="refund_key" type="hidden" value="([^"]+)"', page).group(1)
    return {"csrf_token": _token(client, txn_id), "refund_key": key}


def test_a_double_submitted_refund_sends_one_refund_key(
    admin_client, app, app_key, charge, midtrans
):
    txn = charge(app_key, "INV-12", amount=100000)
    set_status(app, txn, TxStatus.SETTLEMENT)
    form = {**_refund_form(admin_client, txn), "amount": "100000", "reason": "customer asked"}
    refunds = midtrans.add(
        responses.POST, f"{API_BASE}/v2/INV-12/refund", json={"status_code": "200"}
    )
    midtrans.add(responses.GET, status_url("INV-12"), json=settled("INV-12", 100000, "refund"))

    without_box = admin_client.post(f"/admin/transactions/{txn}/refund", data=form)
    assert without_box.status_code == 302 and refunds.call_count == 0

    first = admin_client.post(
        f"/admin/transactions/{txn}/refund", data={**form, "confirm": "y"}, follow_redirects=True
    )
    assert "The order is now refund" in first.get_data(as_text=True)
    second = admin_client.post(
        f"/admin/transactions/{txn}/refund", data={**form, "confirm": "y"}, follow_redirects=True
    )
    assert second.status_code == 200
    # The repeat is the same refund (its key): it answers the first's result, never refunds.
    assert "The order is now refund" in second.get_data(as_text=True)
    assert refunds.call_count == 1
    body = json.loads(refunds.calls[0].request.body)
    assert body == {"refund_key": form["refund_key"], "amount": 100000, "reason": "customer asked"}
    entries = audits(app, "transaction_refund")
    assert entries[0].after["status"] == "refund"
    assert form["refund_key"] in entries[0].detail
    assert [e.after["status"] for e in entries] == ["refund", "refund"]


def test_each_rendered_refund_form_has_its_own_key(admin_client, app, app_key, charge):
    txn = charge(app_key, "INV-13")
    set_status(app, txn, TxStatus.SETTLEMENT)
    assert (
        _refund_form(admin_client, txn)["refund_key"]
        != _refund_form(admin_client, txn)["refund_key"]
    )


def test_refund_above_the_amount_is_refused(admin_client, app, app_key, charge, midtrans):
    txn = charge(app_key, "INV-14", amount=1000)
    set_status(app, txn, TxStatus.SETTLEMENT)
    form = {**_refund_form(admin_client, txn), "amount": "5000", "reason": "x", "confirm": "y"}
    resp = admin_client.post(f"/admin/transactions/{txn}/refund", data=form, follow_redirects=True)
    assert "cannot exceed" in resp.get_data(as_text=True)
    assert not [c for c in midtrans.calls if "refund" in c.request.url]


def test_unknown_transaction_is_an_html_404(admin_client):
    resp = admin_client.get("/admin/transactions/999")
    assert resp.status_code == 404 and resp.mimetype == "text/html"


def test_a_challenge_is_approved_or_denied_from_the_order_page(
    admin_client, app, app_key, charge, midtrans
):
    txn = charge(app_key, "INV-20", amount=100000)
    set_status(app, txn, TxStatus.CAPTURE)
    with app.app_context():
        row = db.session.get(Transaction, txn)
        row.fraud_status, row.midtrans_transaction_id = "challenge", "pay-20"
        db.session.commit()
    page = admin_client.get(f"/admin/transactions/{txn}").get_data(as_text=True)
    assert "Approve payment" in page and "Deny payment" in page and "Capture" not in page

    approve = midtrans.add(responses.POST, f"{API_BASE}/v2/pay-20/approve", json={})
    midtrans.add(
        responses.GET,
        status_url("INV-20"),
        json={**settled("INV-20", 100000, "capture"), "fraud_status": "accept"},
    )
    resp = admin_client.post(
        f"/admin/transactions/{txn}/approve",
        data={"csrf_token": _token(admin_client, txn), "confirm": "y"},
        follow_redirects=True,
    )
    assert "The order is now capture" in resp.get_data(as_text=True)
    assert approve.call_count == 1
    (entry,) = audits(app, "transaction_approve")
    assert entry.after == {"status": "capture", "fraud_status": "accept"}


def test_an_authorized_card_is_captured_for_less(admin_client, app, app_key, charge, midtrans):
    txn = charge(app_key, "INV-21", amount=100000)
    set_status(app, txn, TxStatus.AUTHORIZE)
    with app.app_context():
        db.session.get(Transaction, txn).midtrans_transaction_id = "pay-21"
        db.session.commit()
    page = admin_client.get(f"/admin/transactions/{txn}").get_data(as_text=True)
    assert 'name="amount"' in page and 'value="100000"' in page and "Approve payment" not in page

    capture = midtrans.add(responses.POST, f"{API_BASE}/v2/capture", json={})
    midtrans.add(responses.GET, status_url("INV-21"), json=settled("INV-21", 80000, "capture"))
    token = _token(admin_client, txn)
    resp = admin_client.post(
        f"/admin/transactions/{txn}/capture",
        data={"csrf_token": token, "amount": "80000", "confirm": "y"},
        follow_redirects=True,
    )
    assert "The order is now capture" in resp.get_data(as_text=True)
    assert json.loads(capture.calls[0].request.body) == {
        "transaction_id": "pay-21",
        "gross_amount": 80000,
    }
    assert audits(app, "transaction_capture")[0].detail == "amount 80000"


def test_the_order_page_shows_what_is_left_to_refund(admin_client, app, app_key, charge):
    txn = charge(app_key, "INV-22", amount=100000)
    set_status(app, txn, TxStatus.PARTIAL_REFUND)
    with app.app_context():
        db.session.get(Transaction, txn).refunded_amount = 30000
        db.session.commit()
    page = admin_client.get(f"/admin/transactions/{txn}").get_data(as_text=True)
    import re

    left = re.search(r'class="left-to-refund">([^<]+)<', page).group(1)
    assert "70.000" in left
    assert re.search(r'name="amount"[^>]*value="70000"', page) or 'value="70000"' in page
