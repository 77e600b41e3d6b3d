"""An order's page stays small whatever is stored about it (issue 12 item 6): anyone can post
notifications naming an order, so the page shows the newest ones, their number and the way to
the rest (the notifications list and the callback log, filtered to the order)."""

from __future__ import annotations

import json
import re

from admin.dashboard import forged_notification

from app.extensions import db
from app.models import CallbackEvent, Notification, Transaction

MAX_PAGE = 200_000  # bytes


def _flood(app, txn_id: int, *, notifications: int, callbacks: int) -> None:
    with app.app_context():
        txn = db.session.get(Transaction, txn_id)
        # As big as POST /notification takes (64 KiB), made of what HTML escaping inflates.
        body = json.dumps(
            {
                "order_id": txn.midtrans_order_id,
                "status_code": "200",
                "gross_amount": "150000.00",
                "signature_key": "forged",
                "transaction_status": "settlement",
                "padding": "<\"&'>" * 10000,
            }
        )
        assert 60_000 < len(body) < 64 * 1024
        for _ in range(notifications):
            db.session.add(forged_notification(txn.midtrans_order_id, body))
        for i in range(callbacks):
            db.session.add(
                CallbackEvent(
                    event_id=f"msg_flood{txn_id}_{i:04d}",
                    app_id=txn.app_id,
                    transaction_id=txn.id,
                    type="transaction.updated",
                    payload=json.dumps({"data": {"transaction_status": "pending"}}),
                    state="failed",
                    attempts=8,
                    last_error="connection refused " * 300,
                )
            )
        db.session.commit()


def _ids(app, model, **where) -> list[int]:
    with app.app_context():
        return [row.id for row in db.session.query(model).filter_by(**where).order_by(model.id)]


def test_an_order_page_stays_small_whatever_is_stored(admin_client, app, app_key, charge):
    txn_id = charge(app_key, "INV-FLOOD")
    other_id = charge(app_key, "INV-OTHER")
    _flood(app, txn_id, notifications=400, callbacks=300)
    _flood(app, other_id, notifications=1, callbacks=1)
    with app.app_context():
        app_id = db.session.get(Transaction, txn_id).app_id
    notes = _ids(app, Notification, order_id="INV-FLOOD")
    events = _ids(app, CallbackEvent, transaction_id=txn_id)

    resp = admin_client.get(f"/admin/transactions/{txn_id}")
    assert resp.status_code == 200
    assert len(resp.data) < MAX_PAGE, len(resp.data)
    page = resp.get_data(as_text=True)
    # The counts, the newest 20 of each, and the way to the rest.
    assert "400 notifications" in page and "the newest 20 here" in page
    assert "300 callback events" in page
    notifications = page.split('id="notifications"', 1)[1]
    assert notifications.count('<details class="notification">') == 20
    assert f"/admin/notifications/{notes[-1]}" in notifications
    assert f"/admin/notifications/{notes[-21]}" not in notifications
    assert f'href="/admin/notifications?txn={txn_id}"' in page
    callbacks = page.split('id="callbacks"', 1)[1].split("</section>", 1)[0]
    assert callbacks.count("<tr>") == 1 + 20
    assert f"/admin/apps/{app_id}/callbacks/{events[-1]}" in callbacks
    assert f"/admin/apps/{app_id}/callbacks/{events[0]}" not in callbacks
    assert f'href="/admin/apps/{app_id}/callbacks?txn={txn_id}"' in page
    # A body too big to show is cut, with a link to the whole of it.
    assert "The whole body (" in notifications

    # The rest: the notifications of this order only, 50 a page, pages small too.
    listing = admin_client.get(f"/admin/notifications?txn={txn_id}")
    assert len(listing.data) < 2 * MAX_PAGE
    text = listing.get_data(as_text=True)
    assert "400 notifications" in text and "INV-FLOOD" in text and "Page 1 of 8" in text
    assert "INV-OTHER" not in text
    older = re.search(r'href="([^"]*page=2[^"]*)"', text).group(1).replace("&amp;", "&")
    assert f"txn={txn_id}" in older
    assert "Page 2 of 8" in admin_client.get(older).get_data(as_text=True)
    # One notification, whole, on its own page.
    whole = admin_client.get(f"/admin/notifications/{notes[0]}")
    assert whole.status_code == 200 and whole.get_data(as_text=True).count("&lt;") == 10000
    assert admin_client.get("/admin/notifications/99999999").status_code == 404

    # The callback log of the app, this order's events only.
    log = admin_client.get(f"/admin/apps/{app_id}/callbacks?txn={txn_id}")
    text = log.get_data(as_text=True)
    assert "300 events" in text and "Page 1 of 6" in text
    assert "msg_flood" in text and f"msg_flood{other_id}_" not in text
    assert len(log.data) < 2 * MAX_PAGE
    # An unknown or foreign order in the filter is ignored, never a 500.
    for bad in ("999999", "99999999999999999999", "x", "-1"):
        assert admin_client.get(f"/admin/notifications?txn={bad}").status_code == 200
        assert admin_client.get(f"/admin/apps/{app_id}/callbacks?txn={bad}").status_code == 200


def test_a_quiet_order_shows_everything_without_links(admin_client, app, app_key, charge):
    txn_id = charge(app_key, "INV-QUIET")
    _flood(app, txn_id, notifications=2, callbacks=1)
    page = admin_client.get(f"/admin/transactions/{txn_id}").get_data(as_text=True)
    assert "2 notifications" in page and "1 callback event" in page
    assert "the newest" not in page and "see them all" not in page
    assert page.count('<details class="notification">') == 2


def test_a_core_orders_payment_details_are_on_its_page(admin_client, app, app_key, charge):
    txn_id = charge(app_key, "POS-1")
    qris = "00020101021226620014COM.GO-JEK.WWW011893600914300000000000303UMI5204599953033605802ID"
    with app.app_context():
        txn = db.session.get(Transaction, txn_id)
        txn.payment_type = "qris"
        txn.payment_details = {
            "va_numbers": [{"bank": "bca", "va_number": "12345678901"}],
            "qr_string": qris,
        }
        db.session.commit()

    page = admin_client.get(f"/admin/transactions/{txn_id}").get_data(as_text=True)

    assert '<code class="va-number">12345678901</code>' in page
    assert '<div class="qr-code"><svg' in page  # drawn here, no image from elsewhere
    assert qris in page
    assert "<img" not in page.split('class="qr-code"')[1].split("</div>")[0]
