"""Database trouble is answered 503 with Retry-After, never 500, changes nothing, and clears
by itself once the database recovers, with no restart: a SQLite file that turns read-only
and back, a disk that fills and empties, a PostgreSQL connection that drops."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import responses
import support
from kit.endpoints import SocketServer
from sqlalchemy import text
from support import cli_for, make_app, signed, snap_ok, status_url

from app.extensions import db
from app.models import Notification, Transaction


@pytest.fixture
def sqlite_gateway(env, build_app, tmp_path, midtrans):
    """A gateway on its own SQLite file, with an app and a working Snap."""

    def build(folder: Path):
        flask_app = build_app({**env, "DATABASE_URL": f"sqlite:///{folder / 'gateway.db'}"})
        headers = make_app(cli_for(flask_app), "shop")
        snap_ok(midtrans)
        return flask_app.test_client(), headers

    return build


def charge(client, headers, order_id=None):
    """POST /charge of 5000 (a new order id unless given; Snap is set up once); the answer."""
    order_id = order_id or "O-" + uuid.uuid4().hex[:10]
    return support.charge(client, headers, None, order_id, 5000, expect=None)


def notification(order_id: str) -> bytes:
    body = {
        "order_id": order_id,
        "status_code": "200",
        "gross_amount": "5000.00",
        "transaction_status": "settlement",
        "transaction_id": "t-" + order_id,
    }
    return json.dumps(signed(body)).encode()


def under_load(client, headers, count: int = 24) -> list:
    """Charges and notifications from several threads at once: the answers."""

    def one(i):
        if i % 2:
            return charge(client, headers)
        raw = notification(f"nobody-{i}")
        return client.post("/notification", data=raw, content_type="application/json")

    with ThreadPoolExecutor(6) as pool:
        return list(pool.map(one, range(count)))


def assert_unavailable(answers):
    assert answers, "no answers"
    for answer in answers:
        assert answer.status_code == 503, (answer.status_code, answer.get_data(as_text=True))
        assert answer.json["error"]["code"] == "service_unavailable"
        assert answer.headers["Retry-After"] == "5"


def recovers(client, headers):
    """Once the fault clears, the gateway clears it too, on the same process: the first
    request or two may still meet a connection opened during the fault (503: retry), whose
    failure discards every such connection; then all succeed, under load too."""
    first = []
    while len(first) < 10 and 201 not in first:
        first.append(charge(client, headers).status_code)
    assert first[-1] == 201 and set(first) <= {201, 503}, first
    assert len(first) <= 3, first
    answers = under_load(client, headers)
    assert {a.status_code for a in answers} <= {200, 201}, [a.status_code for a in answers]


def rows(flask_app, model) -> int:
    with flask_app.app_context():
        count = db.session.query(model).count()
        db.session.commit()
        return count


def _chattr(flag: str, path: Path) -> bool:
    return subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0


def test_a_sqlite_file_that_turns_read_only_then_back_recovers_without_restart(
    sqlite_gateway, tmp_path, midtrans
):
    client, headers = sqlite_gateway(tmp_path)
    assert charge(client, headers).status_code == 201
    database = tmp_path / "gateway.db"
    if not _chattr("+i", database):
        pytest.skip("chattr +i is not available here (needs root and a supporting filesystem)")
    try:
        # Connections opened now open read-only, and SQLite keeps them read-only for good.
        with client.application.app_context():
            db.engine.dispose()
        before = rows(client.application, Transaction)
        answers = under_load(client, headers)
        assert_unavailable(answers)
        assert rows(client.application, Transaction) == before  # nothing was changed
    finally:
        _chattr("-i", database)

    recovers(client, headers)


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_is_503_and_clears_by_itself(sqlite_gateway, small_disk, midtrans):
    client, headers = sqlite_gateway(small_disk)
    for _ in range(5):  # the journal and shared memory exist before the disk fills
        assert charge(client, headers).status_code == 201
    filler = small_disk / "filler"
    # Unbuffered: a write the full disk refused leaves nothing for close() to retry.
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 65536)
        except OSError:
            pass
    try:
        answers = [charge(client, headers) for _ in range(20)]
        answers += under_load(client, headers, count=12)
        statuses = [a.status_code for a in answers]
        assert 500 not in statuses, statuses
        assert_unavailable([a for a in answers if a.status_code == 503])
        assert statuses.count(503) >= 10, statuses  # a full disk really refused writes
    finally:
        os.unlink(filler)

    recovers(client, headers)
    raw = notification("nobody-after")
    assert client.post("/notification", data=raw, content_type="application/json").json == {
        "status": "ok",
        "outcome": "unmatched",
    }
    assert rows(client.application, Notification) >= 1


class Proxy(SocketServer):
    """A TCP proxy to PostgreSQL on 127.0.0.1 that can drop every connection and refuse new
    ones, as a database restart or a network cut does."""

    def __init__(self, port: int):
        self.target = ("127.0.0.1", port)
        self.up = True
        self.sockets: list[socket.socket] = []
        super().__init__()

    def serve(self, client: socket.socket) -> None:
        if not self.up:
            client.close()
            return
        server = socket.create_connection(self.target)
        self.sockets += [client, server]
        threading.Thread(target=self._pipe, args=(server, client), daemon=True).start()
        self._pipe(client, server)

    @staticmethod
    def _pipe(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def cut(self):
        self.up = False
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.sockets.clear()

    def restore(self):
        self.up = True

    def close(self):
        self.cut()
        super().close()


@pytest.mark.skipif(
    not (os.environ.get("TEST_DATABASE_URL") or "").startswith("postgresql"),
    reason="PostgreSQL only (TEST_DATABASE_URL)",
)
def test_postgresql_going_away_is_503_and_comes_back(env, build_app, midtrans):
    from sqlalchemy.engine import make_url

    url = make_url(env["DATABASE_URL"])
    proxy = Proxy(url.port or 5432)
    try:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        flask_app = build_app({**env, "DATABASE_URL": proxied})
        headers = make_app(cli_for(flask_app), "shop")
        client = flask_app.test_client()
        snap_ok(midtrans)
        assert charge(client, headers, "PG-1").status_code == 201

        proxy.cut()
        answers = under_load(client, headers, count=12)
        answers.append(client.get("/status/PG-1", headers=headers))
        assert_unavailable(answers)

        proxy.restore()
        midtrans.add(
            responses.GET,
            status_url("shop-PG-1"),
            json={"status_code": "404", "status_message": "Transaction doesn't exist."},
            status=404,
        )
        assert client.get("/status/PG-1", headers=headers).status_code == 200
        assert charge(client, headers).status_code == 201
        with flask_app.app_context():
            assert db.session.execute(text("SELECT 1")).scalar() == 1
    finally:
        proxy.close()
