# ruff: noqa: E501 - signatures are 128 hex characters, kept whole to compare with the source
"""Midtrans's own signed sample notifications (BSD-3-Clause, PT Midtrans; from
veritrans/midtrans-agent-skills), signed with the sandbox server key `SB-Mid-server-test`; and,
below them, Midtrans's documented Core API answers, each with its source. Copied here so the
tests never read outside the project."""

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


# Midtrans's documented Core API answers, copied as published (ids, times and amounts are the
# documents' own). Each says where it came from:
# - seed 001 = /work/shared/seeds/001_cae9d745615090f4.txt (Midtrans's card integration guide,
#   id/core-api/credit-card.md of the docs at docs.midtrans.com, archived in
#   github.com/rizdaprasetya/mt-alt-doc, commit 017e954);
# - seed 004 = /work/shared/seeds/004_9faceff76bf7132c.txt (Midtrans's GoPay POS guide,
#   also github.com/Midtrans/advanced-faq-site partner-gopay-pos.md);
# - mt-alt-doc = the same docs.midtrans.com archive, en/core-api/bank-transfer.md,
#   en/core-api/e-wallet.md, en/other/faq/gopay-pos.md, en/after-payment/get-status.md;
# - docs.midtrans.com/reference/permata-virtual-account-1 (the live API reference).
# The official clients (midtrans-python-client, -nodejs-client, -php) hold no further whole
# Core answers: their tests stub or call the sandbox.

CHARGE_BCA = {  # mt-alt-doc en/core-api/bank-transfer.md, "BCA" response
    "status_code": "201",
    "status_message": "Success, Bank Transfer transaction is created",
    "transaction_id": "be03df7d-2f97-4c8c-a53c-8959f1b67295",
    "order_id": "1571823229",
    "merchant_id": "G812785002",
    "gross_amount": "44000.00",
    "currency": "IDR",
    "payment_type": "bank_transfer",
    "transaction_time": "2019-10-23 16:33:49",
    "transaction_status": "pending",
    "va_numbers": [{"bank": "bca", "va_number": "812785002530231"}],
    "fraud_status": "accept",
}

VA_NUMBER_OBJECT_BCA = "91019021579"  # docs.midtrans.com/reference-link/va-number-object

CHARGE_BNI = {  # mt-alt-doc en/core-api/bank-transfer.md, "BNI" response
    "status_code": "201",
    "status_message": "Success, Bank Transfer transaction is created",
    "transaction_id": "2194a77c-a412-4fd8-8ec8-121ff64fbfee",
    "order_id": "1571823369",
    "merchant_id": "G812785002",
    "gross_amount": "44000.00",
    "currency": "IDR",
    "payment_type": "bank_transfer",
    "transaction_time": "2019-10-23 16:36:08",
    "transaction_status": "pending",
    "va_numbers": [{"bank": "bni", "va_number": "9888500212345678"}],
    "fraud_status": "accept",
}

CHARGE_BRI = {  # mt-alt-doc en/core-api/bank-transfer.md, "BRI" response
    "status_code": "201",
    "status_message": "Success, Bank Transfer transaction is created",
    "transaction_id": "9aed5972-5b6a-401e-894b-a32c91ed1a3a",
    "order_id": "1466323342",
    "gross_amount": "20000.00",
    "payment_type": "bank_transfer",
    "transaction_time": "2016-06-19 15:02:22",
    "transaction_status": "pending",
    "va_numbers": [{"bank": "bri", "va_number": "8578000000111111"}],
    "fraud_status": "accept",
    "currency": "IDR",
}

CHARGE_PERMATA = {  # docs.midtrans.com/reference/permata-virtual-account-1
    "status_code": "201",
    "status_message": "Success, PERMATA VA transaction is successful",
    "transaction_id": "6fd88567-62da-43ff-8fe6-5717e430ffc7",
    "order_id": "H17550",
    "gross_amount": "145000.00",
    "payment_type": "bank_transfer",
    "transaction_time": "2016-06-19 13:42:29",
    "transaction_status": "pending",
    "fraud_status": "accept",
    "permata_va_number": "8562000087926752",
    "expiry_time": "2017-01-09 09:56:44",
}

CHARGE_ECHANNEL = {  # mt-alt-doc en/core-api/bank-transfer.md, "Mandiri Bill" response
    "status_code": "201",
    "status_message": "OK, Mandiri Bill transaction is successful",
    "transaction_id": "abb2d93f-dae3-4183-936d-4145423ad72f",
    "order_id": "1571823332",
    "merchant_id": "G812785002",
    "gross_amount": "44000.00",
    "currency": "IDR",
    "payment_type": "echannel",
    "transaction_time": "2019-10-23 16:35:31",
    "transaction_status": "pending",
    "fraud_status": "accept",
    "bill_key": "778347787706",
    "biller_code": "70012",
}

CHARGE_QRIS = {  # mt-alt-doc en/other/faq/gopay-pos.md (the POS guide's QRIS answer)
    "status_code": "201",
    "status_message": "QRIS transaction is created",
    "transaction_id": "1015a919-b03f-450a-bc85-b38202a79a96",
    "order_id": "order102",
    "merchant_id": "G490526303",
    "gross_amount": "789000.00",
    "currency": "IDR",
    "payment_type": "qris",
    "transaction_time": "2021-06-23 15:25:24",
    "transaction_status": "pending",
    "fraud_status": "accept",
    "actions": [
        {
            "name": "generate-qr-code",
            "method": "GET",
            "url": "https://api.midtrans.com/v2/qris/1015a919-b03f-450a-bc85-b38202a79a96/qr-code",
        }
    ],
    "qr_string": "00020101021226620014COM.GO-JEK.WWW011993600914349052630340210G4905263030303UKE51440014ID.CO.QRIS.WWW0215AID0607336128660303UKE5204341453033605802ID5904Test6007BANDUNG6105402845409789000.0062475036c032f87c-f773-4619-aefa-675e1f06f9210703A016304A623",
    "acquirer": "gopay",
}

CHARGE_GOPAY_POS = {  # seed 004, "Charge API Response"
    "status_code": "201",
    "status_message": "GO-PAY billing created",
    "transaction_id": "e48447d1-cfa9-4b02-b163-2e915d4417ac",
    "order_id": "SAMPLE-ORDER-ID-01",
    "gross_amount": "10000.00",
    "payment_type": "gopay",
    "transaction_time": "2017-10-04 12:00:00",
    "transaction_status": "pending",
    "actions": [
        {
            "name": "generate-qr-code",
            "method": "GET",
            "url": "https://api.midtrans.com/v2/gopay/e48447d1-cfa9-4b02-b163-2e915d4417ac/qr-code",
        },
        {
            "name": "deeplink-redirect",
            "method": "GET",
            "url": "gojek://gopay/merchanttransfer?tref=1509110800474199656LMVO&amount=10000&activity=GP:RR&callback_url=someapps://callback?order_id=SAMPLE-ORDER-ID-01",
        },
        {
            "name": "get-status",
            "method": "GET",
            "url": "https://api.midtrans.com/v2/e48447d1-cfa9-4b02-b163-2e915d4417ac/status",
        },
        {
            "name": "cancel",
            "method": "POST",
            "url": "https://api.midtrans.com/v2/e48447d1-cfa9-4b02-b163-2e915d4417ac/cancel",
            "fields": [],
        },
    ],
    "channel_response_code": "200",
    "channel_response_message": "Success",
    "currency": "IDR",
}

CHARGE_GOPAY = {  # mt-alt-doc en/core-api/e-wallet.md, the GoPay charge answer (2019)
    "status_code": "201",
    "status_message": "GO-PAY transaction is created",
    "transaction_id": "231c79c5-e39e-4993-86da-cadcaee56c1d",
    "order_id": "order-101h-1570513296",
    "gross_amount": "44000.00",
    "currency": "IDR",
    "payment_type": "gopay",
    "transaction_time": "2019-10-08 12:41:36",
    "transaction_status": "pending",
    "fraud_status": "accept",
    "actions": [
        {
            "name": "generate-qr-code",
            "method": "GET",
            "url": "https://api.sandbox.veritrans.co.id/v2/gopay/231c79c5-e39e-4993-86da-cadcaee56c1d/qr-code",
        },
        {
            "name": "deeplink-redirect",
            "method": "GET",
            "url": "https://simulator.sandbox.midtrans.com/gopay/ui/checkout?referenceid=Y0xwjoQ9uy&callback_url=someapps%3A%2F%2Fcallback%3Forder_id%3Dorder-101h-1570513296",
        },
        {
            "name": "get-status",
            "method": "GET",
            "url": "https://api.sandbox.veritrans.co.id/v2/231c79c5-e39e-4993-86da-cadcaee56c1d/status",
        },
        {
            "name": "cancel",
            "method": "POST",
            "url": "https://api.sandbox.veritrans.co.id/v2/231c79c5-e39e-4993-86da-cadcaee56c1d/cancel",
        },
    ],
}

CHARGE_CARD_3DS = {  # seed 001, "Respon API Charge" (authentication: true)
    "status_code": "201",
    "status_message": "Success, Credit Card transaction is successful",
    "transaction_id": "0bb563a9-ebea-41f7-ae9f-d99ec5f9700a",
    "order_id": "order102",
    "redirect_url": "https://api.sandbox.veritrans.co.id/v2/token/rba/redirect/481111-1114-0bb563a9-ebea-41f7-ae9f-d99ec5f9700a",
    "gross_amount": "789000.00",
    "currency": "IDR",
    "payment_type": "credit_card",
    "transaction_time": "2019-08-27 15:50:54",
    "transaction_status": "pending",
    "fraud_status": "accept",
    "masked_card": "481111-1114",
    "bank": "bni",
    "card_type": "credit",
}

CARD_3DS_RESULT = {  # seed 001, "JSON Response 3DS Authenticate" (the charge once 3DS is done)
    "status_code": "200",
    "status_message": "Success, Credit Card transaction is successful",
    "transaction_id": "226ba26f-b050-4fc5-aa25-b7f8169bc67b",
    "order_id": "order102",
    "gross_amount": "789000.00",
    "currency": "IDR",
    "payment_type": "credit_card",
    "transaction_time": "2019-08-27 17:22:08",
    "transaction_status": "capture",
    "fraud_status": "accept",
    "approval_code": "1566901334936",
    "eci": "05",
    "masked_card": "481111-1114",
    "bank": "bni",
    "card_type": "credit",
    "channel_response_code": "00",
    "channel_response_message": "Approved",
}

STATUS_CARD = {  # mt-alt-doc en/after-payment/get-status.md, GET /v2/{id}/status sample
    "masked_card": "48111111-1114",
    "approval_code": "1578569243927",
    "bank": "bni",
    "eci": "05",
    "channel_response_code": "00",
    "channel_response_message": "Approved",
    "transaction_time": "2020-01-09 18:27:19",
    "gross_amount": "10000.00",
    "currency": "IDR",
    "order_id": "Postman-1578568851",
    "payment_type": "credit_card",
    "signature_key": "16d6f84b2fb0468e2a9cf99a8ac4e5d803d42180347aaa70cb2a7abb13b5c6130458ca9c71956a962c0827637cd3bc7d40b21a8ae9fab12c7c3efe351b18d00a",
    "status_code": "200",
    "transaction_id": "57d5293c-e65f-4a29-95e4-5959c3fa335b",
    "transaction_status": "settlement",
    "fraud_status": "accept",
    "settlement_time": "2020-01-10 16:15:31",
    "status_message": "Success, transaction is found",
    "merchant_id": "M004123",
    "card_type": "credit",
    "three_ds_version": "2",
    "challenge_completion": True,
}

NOTIFICATION_QRIS_SETTLEMENT = {  # mt-alt-doc en/other/faq/gopay-pos.md; the guide says the
    # status API answers "in a form of JSON like" this one: no qr_string, no actions
    "transaction_type": "on-us",
    "transaction_time": "2021-06-23 15:45:42",
    "transaction_status": "settlement",
    "transaction_id": "1015a919-b03f-450a-bc85-b38202a79a96",
    "status_message": "midtrans payment notification",
    "status_code": "200",
    "signature_key": "5d40504728eb96686bd5926299768a6496547f70dbd1e19d583ef4e780fe9dd5c38d0db45ec0f06dafa5c56caa6cf8358ead1523882b5fb3e102c52345d41850",
    "settlement_time": "2021-06-23 15:46:00",
    "payment_type": "qris",
    "order_id": "order102",
    "merchant_id": "G490526303",
    "issuer": "gopay",
    "gross_amount": "789000.00",
    "fraud_status": "accept",
    "currency": "IDR",
    "acquirer": "gopay",
}

# docs.midtrans.com/docs/what-does-error-code-411-message-token-id-is-missing-invalid-or-timed-out-mean
TOKEN_INVALID = ("411", "Token id is missing, invalid, or timed out")
