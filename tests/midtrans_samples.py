# ruff: noqa: E501 - signatures are 128 hex characters, kept whole to compare with the source
"""Midtrans's own signed sample notifications (BSD-3-Clause, PT Midtrans; from
veritrans/midtrans-agent-skills). Signed with the sandbox server key `SB-Mid-server-test`.
Copied here so the tests never read outside the project."""

FIXTURE_SERVER_KEY = "SB-Mid-server-test"

PAYMENT_LINK_NOTIFICATION = {
    "transaction_time": "2026-06-04 12:30:00",
    "transaction_status": "settlement",
    "transaction_id": "44444444-5555-6666-7777-888888888801",
    "status_message": "midtrans payment notification",
    "status_code": "200",
    "signature_key": "ca1da23ae0b49e6c149c0ac52804c5761a35d1ddce68d8b07bbbacd38740d1c19c8d1d9ae8adc17e12f5554dcab92a405fda6be6451f9c9397d883f7d71b9201",
    "settlement_time": "2026-06-04 12:30:25",
    "payment_type": "gopay",
    "order_id": "ORDER-payment-link-0001",
    "payment_link_id": "55555555-6666-7777-8888-999999999991",
    "merchant_id": "G000000000",
    "gross_amount": "275000.00",
    "fraud_status": "accept",
    "currency": "IDR",
}

RECURRING_NOTIFICATION_CARD = {
    "transaction_time": "2026-07-01 09:00:00",
    "transaction_status": "settlement",
    "transaction_id": "66666666-7777-8888-9999-aaaaaaaaaa01",
    "subscription_id": "77777777-8888-9999-aaaa-bbbbbbbbbb01",
    "status_message": "midtrans payment notification",
    "status_code": "200",
    "signature_key": "f43ba6958030a7d2d7b4ab9ed3a1c8ab4f89b57b1d608945667c61796c3c0791f20a54312303bc697069f91e8938dd910e21a5e3a40b3192b3d26681cf3e3979",
    "settlement_time": "2026-07-01 09:00:30",
    "payment_type": "credit_card",
    "order_id": "ORDER-RECUR-2026-07-01-cust-0001",
    "merchant_id": "G000000000",
    "masked_card": "481111-1114",
    "gross_amount": "150000.00",
    "fraud_status": "accept",
    "currency": "IDR",
    "card_type": "credit",
    "bank": "bni",
    "approval_code": "1626140000123",
    "metadata": {"merchant_subscription_id": "SUB-MERCH-0001"},
}

SNAP_NOTIFICATION_EXPIRE = {
    "transaction_time": "2026-05-27 16:30:00",
    "transaction_status": "expire",
    "transaction_id": "11111111-2222-3333-4444-555555555557",
    "status_message": "midtrans payment notification",
    "status_code": "202",
    "signature_key": "a51d1bd2aa8b1dca9228f3827cd641b6dadf52ebb9ed40fb45db6a06dbb33de7cde8e80caa93dfb5e6beeaaf44f698dc7f6f56edd46556eddaa2a774ff7692c6",
    "payment_type": "qris",
    "order_id": "ORDER-sandbox-0003",
    "merchant_id": "G000000000",
    "gross_amount": "50000.00",
    "currency": "IDR",
}

SNAP_NOTIFICATION_PARTIAL_REFUND = {
    "transaction_time": "2026-06-04 11:00:00",
    "transaction_status": "partial_refund",
    "transaction_id": "22222222-3333-4444-5555-666666666602",
    "status_message": "midtrans payment notification",
    "status_code": "200",
    "signature_key": "d115a0f55a40f2c60465006118c1e48f52c3baf5a953f8443221d84dea9a9ebd7ba20f7c76d2320dfcdd31c3de41a047f6b43a4075bea5f734dd8c5231268906",
    "settlement_time": "2026-06-04 11:00:20",
    "refund_amount": "50000.00",
    "refund_key": "merchant-refund-uuid-2026-06-04-002",
    "payment_type": "gopay",
    "order_id": "ORDER-partial-refund-0001",
    "merchant_id": "G000000000",
    "gross_amount": "150000.00",
    "fraud_status": "accept",
    "currency": "IDR",
}

SNAP_NOTIFICATION_PENDING = {
    "transaction_time": "2026-05-27 14:30:00",
    "transaction_status": "pending",
    "transaction_id": "11111111-2222-3333-4444-555555555556",
    "status_message": "midtrans payment notification",
    "status_code": "201",
    "signature_key": "db70270f6c27da2b564d4fffd9df3eeae578a7afba22bf5e6071711c7914d7a3d22ccaa533e864cf53742ca73c9e63016b0cbc1f97ee253a77b24b7a410d876a",
    "payment_type": "bank_transfer",
    "order_id": "ORDER-sandbox-0002",
    "merchant_id": "G000000000",
    "gross_amount": "75000.00",
    "currency": "IDR",
}

SNAP_NOTIFICATION_REFUND = {
    "transaction_time": "2026-06-04 10:30:00",
    "transaction_status": "refund",
    "transaction_id": "22222222-3333-4444-5555-666666666601",
    "status_message": "midtrans payment notification",
    "status_code": "200",
    "signature_key": "066b9923b82f27ba2aaa61bdea78133dcf3d442709a678c86dda29c6656c4cb9d11995e4357e074694e3da2e8d0e25d5afe0578df9f35d85a0365c197387d525",
    "settlement_time": "2026-06-04 10:30:15",
    "refund_amount": "150000.00",
    "refund_key": "merchant-refund-uuid-2026-06-04-001",
    "payment_type": "credit_card",
    "order_id": "ORDER-refund-0001",
    "merchant_id": "G000000000",
    "gross_amount": "150000.00",
    "fraud_status": "accept",
    "currency": "IDR",
}

SNAP_NOTIFICATION_SETTLEMENT = {
    "transaction_time": "2026-05-27 14:30:00",
    "transaction_status": "settlement",
    "transaction_id": "11111111-2222-3333-4444-555555555555",
    "status_message": "midtrans payment notification",
    "status_code": "200",
    "signature_key": "d65b4adf15335095fe1bfafe24964d48009dcc2989393e13570b0c9852ea60df0040b1a9646b9c9ef9433317f77acc8e387c59998dc20f5bd93fff93d23672e4",
    "payment_type": "credit_card",
    "order_id": "ORDER-sandbox-0001",
    "merchant_id": "G000000000",
    "gross_amount": "150000.00",
    "fraud_status": "accept",
    "currency": "IDR",
}
