"""Bahasa Indonesia everywhere an admin looks (issue 17 item 5): the words the gateway stores
in English (Midtrans's statuses, timeline details, notification outcomes and reasons, callback
states, audit actions, flags) are shown translated, as are the error pages and numbers. The
records themselves, the API and callbacks keep the English words."""

from __future__ import annotations

import html as htmllib
import re
from datetime import UTC, datetime

import pytest
from admin.dashboard import log_in, token_for

from app.admin import meaning
from app.admin.filters import percent
from app.extensions import db
from app.models import (
    CallbackEvent,
    EventSource,
    Notification,
    NotificationOutcome,
    Transaction,
    TransactionEvent,
)

# English a page shows for the records made below; none of it may stay on the Indonesian page.
ENGLISH = [
    "Snap link created",
    "Core bank_transfer payment created",
    "paid after the gateway expired it",
    "amount mismatch",
    "not applied",
    "Midtrans says",
    "status API says",
    "no order with this order_id",
    "before the customer chose a payment method",
    "settlement",
    "expire",
    "pending",
    "delivered",
    "failed",
    "applied",
    "rejected",
    "unmatched",
    "unconfirmed",
    "flagged",
    "via charge",
    "via notification",
    "via reconciliation",
    "order updated",
    "failed login",
    "login",
    "Page not found",
    "Not Found",
    "The requested URL",
    "success rate",
    "100.0%",
    "created",
]

FLAG = "paid after the gateway expired it (Midtrans says settlement)"


def visible_text(page: str) -> str:
    """What a person reads: tags, attributes, code samples and raw bodies left out."""
    page = re.sub(r"(?is)<(pre|code|script|style|select)\b.*?</\1>", " ", page)
    page = re.sub(r"(?s)<[^>]+>", " ", page)
    return re.sub(r"\s+", " ", htmllib.unescape(page))


def english_in(text: str) -> list[str]:
    return [w for w in ENGLISH if re.search(r"(?<![\w-])" + re.escape(w) + r"(?![\w-])", text)]


@pytest.fixture
def records(app, admin_client, app_key, charge) -> int:
    """An order with a timeline, flag, notifications of every outcome, callbacks of every
    state and audit entries (a failed login too)."""
    txn_id = charge(app_key, "ORD-I18N-1")
    log_in(app.test_client(), "root", "wrong password!")
    with app.app_context():
        txn = db.session.get(Transaction, txn_id)
        txn.flag = FLAG
        txn.status = "settlement"
        details = [
            (
                "pending",
                "expire",
                EventSource.RECONCILIATION,
                "expire before the customer chose a payment method (Midtrans has no transaction)",
            ),
            ("expire", "settlement", EventSource.NOTIFICATION, FLAG),
            (
                "settlement",
                "settlement",
                EventSource.STATUS,
                "amount mismatch: Midtrans says 1000.00, the order is 150000; settlement not "
                "applied",
            ),
            (None, "pending", EventSource.CHARGE, "Core bank_transfer payment created (attempt 2)"),
        ]
        for old, new, source, detail in details:
            db.session.add(
                TransactionEvent(
                    transaction_id=txn_id,
                    from_status=old,
                    to_status=new,
                    source=source,
                    detail=detail,
                )
            )
        reasons = {
            NotificationOutcome.REJECTED: None,
            NotificationOutcome.UNMATCHED: "no order with this order_id at this gateway",
            NotificationOutcome.UNCONFIRMED: None,
            NotificationOutcome.APPLIED: None,
            NotificationOutcome.UNCHANGED: "status API says settlement",
            NotificationOutcome.FLAGGED: "amount mismatch: Midtrans says 1.00, the order is 150000",
        }
        for outcome, reason in reasons.items():
            db.session.add(
                Notification(
                    body='{"transaction_status": "settlement"}',
                    order_id=txn.midtrans_order_id,
                    transaction_id=txn_id,
                    transaction_status="settlement",
                    signature_valid=outcome != NotificationOutcome.REJECTED,
                    outcome=outcome,
                    reason=reason,
                )
            )
        for i, state in enumerate(("pending", "delivered", "failed")):
            db.session.add(
                CallbackEvent(
                    event_id=f"msg_i18n_{i}",
                    app_id=txn.app_id,
                    transaction_id=txn_id,
                    type="transaction.updated",
                    payload='{"data": {"transaction_status": "settlement"}}',
                    state=state,
                    attempts=1,
                    delivered_at=datetime.now(UTC) if state == "delivered" else None,
                )
            )
        db.session.commit()
    return txn_id


def pages(admin_client, app, txn_id: int) -> dict[str, str]:
    with app.app_context():
        app_id = db.session.get(Transaction, txn_id).app_id
    paths = {
        "order": f"/admin/transactions/{txn_id}",
        "orders": "/admin/transactions",
        "notifications": "/admin/notifications",
        "notifications_rejected": "/admin/notifications?outcome=rejected",
        "callbacks": f"/admin/apps/{app_id}/callbacks",
        "audit": "/admin/audit",
        "overview": "/admin/",
        "404": "/admin/no-such-page",
        "404_order": "/admin/transactions/999999",
    }
    found = {}
    for name, path in paths.items():
        resp = admin_client.get(path, headers={"Accept": "text/html"})
        assert resp.status_code == (404 if name.startswith("404") else 200), (name, path)
        found[name] = resp.get_data(as_text=True)
    return found


def choose(admin_client, lang: str) -> None:
    token = token_for(admin_client, "/admin/")
    admin_client.post("/admin/language", data={"csrf_token": token, "lang": lang})


def test_the_english_pages_show_the_records_words(admin_client, app, records, monkeypatch):
    """The check below means something: in English, these pages do show those words."""
    shown = " ".join(visible_text(p) for p in pages(admin_client, app, records).values())
    expected = set(ENGLISH) - {"100.0%", "Not Found", "The requested URL"}
    assert sorted(expected - set(english_in(shown))) == []


def test_an_indonesian_admin_sees_no_english(admin_client, app, records):
    choose(admin_client, "id")
    found = pages(admin_client, app, records)
    for name, page in found.items():
        assert 'lang="id"' in page
        left = english_in(visible_text(page))
        assert not left, f"{name} page still says {left}"
    order = visible_text(found["order"])
    assert "Tautan Snap dibuat (percobaan 1)" in order
    assert "Pembayaran Core bank_transfer dibuat (percobaan 2)" in order
    assert "dibayar setelah gateway membuatnya kedaluwarsa (Midtrans menyebut lunas)" in order
    assert "jumlah tidak cocok: Midtrans menyebut 1000.00, pesanan sebesar 150000" in order
    assert "Halaman tidak ditemukan" in visible_text(found["404"])
    assert "gagal masuk" in visible_text(found["audit"])
    assert "Rp 150.000" in order


def test_the_records_and_the_api_stay_english(admin_client, app, app_key, client, records):
    choose(admin_client, "id")
    pages(admin_client, app, records)
    with app.app_context():
        txn = db.session.get(Transaction, records)
        assert txn.flag == FLAG and txn.status == "settlement"
    status = client.get("/transactions/ORD-I18N-1", headers={**app_key, "Accept-Language": "id"})
    if status.status_code == 200:
        assert "Midtrans menyebut" not in status.get_data(as_text=True)


def test_every_known_detail_is_translated(app):
    texts = [
        "Snap link created (attempt 1)",
        "link expired unpaid (Midtrans has no transaction); renewing",
        "Snap link expired unpaid (Midtrans has no transaction)",
        "cancel before the customer chose a payment method (Midtrans has no transaction)",
        "recovered: not in the database (restored from an older backup?); Midtrans order M-1",
        "Midtrans answered for order M-2; settlement not applied",
        "amount mismatch under earlier attempt M-1: gross_amount 'x'; settlement not applied",
        "Midtrans says settlement after the gateway marked the order expire",
        "Midtrans has a pending payment under M-1, an earlier attempt of this order: the payer "
        "may still pay it",
        "second payment: Midtrans says settlement under M-1, an earlier attempt, while the "
        "order is paid under M-2: refund one",
        "paid under an earlier attempt M-1 (Midtrans says settlement) after the order got a "
        "newer one (M-2): make sure the newer one is not paid too",
        "another payment at Midtrans under M-1",
        "Midtrans has a transaction (settlement) for M-1, a Snap link no client was shown (its "
        "attempt was abandoned): check the payment",
        "adopted: Midtrans already held a payment under M-1",
        "attempt 2 abandoned: its Snap call never finished (the gateway process likely died); "
        "Midtrans has no transaction for it",
        "never confirmed in 3 days: status API says pending",
        "gross_amount 151000 is not original_amount 150000 plus the fee 2000",
        "signature_key does not match",
        "body is not JSON (or nested too deeply) (first 4096 of 9000 bytes kept)",
        "status_code 201 does not fit transaction_status capture",
        "signature_key is missing or not a string",
        "callback URL set; new signing secret shown once",
        "callbacks stopped",
        "failed: wrong current password; refused unchecked: the address waits 60 s",
        "wrong code at the second step; the address now waits 30 s",
    ]
    with app.test_request_context(headers={"Accept-Language": "id"}):
        for text in texts:
            shown = meaning.detail_text(text)
            assert shown != text, text
            assert not english_in(shown), (text, shown)
        assert meaning.detail_text("something new") == "something new"
        assert percent(1.0) == "100,0%"
    with app.test_request_context(headers={"Accept-Language": "en"}):
        for text in texts:
            assert meaning.detail_text(text) == text
        assert percent(1.0) == "100.0%"


def test_every_audit_action_and_stored_word_has_a_label():
    from app.admin.audit import ACTIONS
    from app.models import CallbackState, LinkState, TxStatus

    assert set(ACTIONS) <= set(meaning.AUDIT_WORDS)
    assert set(NotificationOutcome) <= set(meaning.NOTIFICATION_WORDS)
    assert set(CallbackState) <= set(meaning.CALLBACK_WORDS)
    assert set(LinkState) <= set(meaning.LINK_WORDS)
    assert set(EventSource) <= set(meaning.SOURCE_WORDS)
    assert set(TxStatus) <= set(meaning.STATUS_WORDS)
