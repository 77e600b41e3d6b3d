"""The order page lists every Midtrans order id the order's attempts used (issue 13): a Snap
order left at Midtrans by an attempt whose answer was lost is never unaccounted for."""

from __future__ import annotations

import re

import requests
import responses
from support import SNAP_URL

from app.extensions import db
from app.models import Transaction


def used_ids(page: str) -> list[str]:
    match = re.search(r"Midtrans order ids used</dt><dd[^>]*>(.*?)</dd>", page, re.S)
    assert match, "no 'Midtrans order ids used' on the order page"
    return re.findall(r"<code>([^<]*)</code>", match.group(1))


def test_the_order_page_lists_every_midtrans_order_id_its_attempts_used(
    admin_client, app, app_key, midtrans
):
    body = {"order_id": "INV-13", "amount": 15000}
    midtrans.add(responses.POST, SNAP_URL, body=requests.Timeout("Midtrans is slow"))
    assert admin_client.post("/charge", json=body, headers=app_key).status_code == 504
    midtrans.replace(
        responses.POST, SNAP_URL, json={"token": "t", "redirect_url": "https://x/t"}, status=201
    )
    assert admin_client.post("/charge", json=body, headers=app_key).status_code == 201
    with app.app_context():
        txn = db.session.query(Transaction).filter_by(order_id="INV-13").one()
        txn_id, current = txn.id, txn.midtrans_order_id

    page = admin_client.get(f"/admin/transactions/{txn_id}").get_data(as_text=True)

    listed = used_ids(page)
    assert listed[0] == "INV-13"  # the attempt whose answer was lost
    assert re.fullmatch(r"INV-13~[0-9a-f]{6}", listed[1]) and listed[1] == current
    assert len(listed) == 2
    assert ", ".join(f"<code>{i}</code>" for i in listed) in page


def test_an_order_of_one_attempt_lists_its_one_id(admin_client, app, shop_key, charge):
    txn_id = charge(shop_key, "ORDER-1")
    page = admin_client.get(f"/admin/transactions/{txn_id}").get_data(as_text=True)
    assert used_ids(page) == ["shop-ORDER-1"]


def test_a_row_from_before_the_ids_were_kept_shows_no_list(admin_client, app, app_key, charge):
    txn_id = charge(app_key, "OLD-1")
    with app.app_context():
        db.session.get(Transaction, txn_id).midtrans_order_ids = None
        db.session.commit()
    page = admin_client.get(f"/admin/transactions/{txn_id}")
    assert page.status_code == 200
    assert "Midtrans order ids used" not in page.get_data(as_text=True)
