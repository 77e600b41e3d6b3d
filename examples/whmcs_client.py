"""A billing system's side of the gateway (WHMCS-style), in Python with `requests`.

    GATEWAY_URL=http://localhost:5000 APP_CODE=biling API_KEY=... \\
        python examples/whmcs_client.py pay INV-2026-001 150000
    python examples/whmcs_client.py status INV-2026-001
    python examples/whmcs_client.py refund INV-2026-001 --amount 50000 --reason "one item returned"

`pay` is also how a reopened invoice gets paid: when the invoice's last link is dead (expired,
cancelled), the same call answers a new link; a paid invoice is never charged again.
Each command prints one JSON object: what the billing system would store.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid

import requests


class Gateway:
    def __init__(self, url: str, app_code: str, api_key: str, timeout: float = 30):
        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.session.headers.update({"X-App-Code": app_code, "X-Api-Key": api_key})
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        answer = self.session.request(method, self.url + path, json=body, timeout=self.timeout)
        data = answer.json()
        if answer.status_code >= 400:
            error = data["error"]
            raise GatewayError(answer.status_code, error["code"], error["message"])
        return data

    def pay(self, invoice_id: str, amount: int, email: str | None = None) -> dict:
        """A payment link for the invoice: the one it has while it can be paid, else a new one.
        A paid invoice is never charged again: the answer says `"outcome": "paid"`."""
        body = {"order_id": invoice_id, "amount": amount}
        if email:
            body["customer_details"] = {"email": email}
        return self._call("POST", "/charge", body)

    def status(self, invoice_id: str) -> dict:
        return self._call("GET", f"/status/{invoice_id}")

    def refund(
        self, invoice_id: str, amount: int | None, reason: str, refund_key: str | None
    ) -> dict:
        """Refund part or all of a paid invoice. Keep `refund_key` with the credit note: sending
        it again (a retry after a timeout) never refunds twice."""
        body = {"reason": reason, "refund_key": refund_key or uuid.uuid4().hex}
        if amount is not None:
            body["amount"] = amount
        return self._call("POST", f"/transactions/{invoice_id}/refund", body)


class GatewayError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    pay = commands.add_parser("pay")
    pay.add_argument("invoice_id")
    pay.add_argument("amount", type=int)
    pay.add_argument("--email")
    status = commands.add_parser("status")
    status.add_argument("invoice_id")
    refund = commands.add_parser("refund")
    refund.add_argument("invoice_id")
    refund.add_argument("--amount", type=int)
    refund.add_argument("--reason", default="refund")
    refund.add_argument("--key", dest="refund_key")
    args = parser.parse_args(argv)

    gateway = Gateway(
        os.environ.get("GATEWAY_URL", "http://localhost:5000"),
        os.environ["APP_CODE"],
        os.environ["API_KEY"],
    )
    try:
        if args.command == "pay":
            result = gateway.pay(args.invoice_id, args.amount, args.email)
        elif args.command == "status":
            result = gateway.status(args.invoice_id)
        else:
            result = gateway.refund(args.invoice_id, args.amount, args.reason, args.refund_key)
    except GatewayError as err:
        print(json.dumps({"error": err.code, "message": err.message}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
