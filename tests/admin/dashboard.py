"""Helpers for the dashboard tests (imported as `admin.dashboard`)."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from support import status_answer

PASSWORD = "correct horse battery staple"

_TOKEN = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = _TOKEN.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def token_for(client, path: str = "/admin/login") -> str:
    resp = client.get(path)
    assert resp.status_code == 200, resp.status_code
    return csrf_from(resp.get_data(as_text=True))


def log_in(client, username: str = "root", password: str = PASSWORD):
    token = token_for(client, "/admin/login")
    return client.post(
        "/admin/login",
        data={"csrf_token": token, "username": username, "password": password},
    )


def table_snapshot(app) -> dict:
    """Every row of every table, but the session's last-seen time (reading pages moves it)."""
    from sqlalchemy import select

    from app.extensions import db

    with app.app_context():
        tables = {}
        for table in db.metadata.sorted_tables:
            columns = [c for c in table.columns if c.name != "last_seen_at"]
            rows = db.session.execute(select(*columns).order_by(*table.primary_key.columns))
            tables[table.name] = [tuple(r) for r in rows]
        db.session.commit()
        return tables


def settled(order_id: str, amount: int, status: str = "settlement", **extra) -> dict:
    """A Midtrans status answer for `order_id` (Midtrans's order id)."""
    return status_answer(order_id, status, amount=amount, **{"status_code": "200", **extra})


class Receiver:
    """A client app's callback endpoint on 127.0.0.1 answering queued statuses (then 204)."""

    def __init__(self):
        self.received: list[tuple[dict, bytes]] = []
        self.answers: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                status = receiver.answers.pop(0) if receiver.answers else 204
                reply = b"gone for good" if status == 410 else b""
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/midtrans-updates"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
