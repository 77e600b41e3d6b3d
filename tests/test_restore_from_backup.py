"""Issue 13 item 6, end to end: a restore from a backup older than some payments loses none.

Real processes throughout: the simulator, the gateway under gunicorn, the worker, and a client
app's callback receiver that verifies every callback with `standardwebhooks`. The backup is
taken and restored with the commands the README gives an operator (SQLite: the `.backup` API
while the gateway runs, the file copied back while it is stopped; PostgreSQL: `pg_dump -Fc`
and `pg_restore --clean`). After the backup, 10 orders are made and paid at the simulator:
7 while the gateway runs (their notifications were answered 200, so Midtrans will not send
them again by itself: they are resent, as from Midtrans's dashboard) and 3 while it is stopped
for the restore (the simulator's own retries bring those). Each must end paid at the gateway,
flagged "recovered", with a verified callback to the client, and the client's retry of
`/charge` for one of them answers its status.

Not in tests/e2e: that package keeps one gateway running on the test database for all its
tests, and restoring a backup into that database would pull its tables from under it.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import requests
from e2e.servers import Stack, post_charge, start_stack
from kit.endpoints import CallbackReceiver
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

pytestmark = pytest.mark.timeout(120)

PAID_WHILE_UP = 7
PAID_WHILE_DOWN = 3
AMOUNT = 125_000


# -- backup and restore, as the README tells an operator ---------------------------------------


def libpq_url(url: str) -> str:
    """The SQLAlchemy URL as pg_dump and pg_restore take it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{' '.join(argv[:2])} failed:\n{done.stdout}{done.stderr}"


def take_backup(url: str, backup: Path) -> None:
    """While the gateway runs."""
    if url.startswith("postgresql"):
        assert shutil.which("pg_dump"), "pg_dump is needed for the PostgreSQL run"
        run("pg_dump", "-Fc", "-f", str(backup), "--dbname", libpq_url(url))
    else:  # what `sqlite3 gateway.db ".backup FILE"` does: SQLite's online backup API
        source = sqlite3.connect(make_url(url).database)
        target = sqlite3.connect(backup)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()


def restore_backup(url: str, backup: Path) -> None:
    """While the gateway and the worker are stopped."""
    if url.startswith("postgresql"):
        run("pg_restore", "--clean", "--dbname", libpq_url(url), str(backup))
    else:
        database = Path(make_url(url).database)
        for leftover in (Path(f"{database}-wal"), Path(f"{database}-shm")):
            leftover.unlink(missing_ok=True)
        shutil.copyfile(backup, database)


# -- the stack ---------------------------------------------------------------------------------


@pytest.fixture
def restore_stack(tmp_path, served):
    """The simulator, gunicorn and the worker on one database, and an app `shop` whose
    callbacks go to a receiver that verifies each one."""
    receiver = served(CallbackReceiver())
    stack = start_stack(
        tmp_path,
        "--callback-url",
        receiver.url,
        name="Shop",
        CALLBACK_ALLOWED_HOSTS="127.0.0.1",
        GUNICORN_WORKERS="2",
        GUNICORN_THREADS="4",
        LOG_LEVEL="INFO",
    )
    try:
        receiver.secret = stack.signing_secret
        stack.start_worker()
        yield stack, receiver
    finally:
        stack.stop()


def stop_gateway(stack: Stack) -> None:
    """gunicorn and the worker stopped together, as the two systemd units are for a restore."""
    stack.stop_gateway()
    for worker in stack.workers:
        stack.stop_worker(worker)


def start_gateway(stack: Stack) -> None:
    stack.start_gateway()
    stack.start_worker()


def pay(simulator_url: str, order_id: str) -> None:
    paid = requests.post(
        f"{simulator_url}/_sim/transactions/shop-{order_id}/pay",
        json={"payment_type": "gopay"},
        timeout=10,
    )
    assert paid.status_code == 200, paid.text


def wait_for(what: str, check, timeout: float, stack: Stack) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout} s\n{stack.logs()}")
        time.sleep(0.2)


def test_payments_made_after_the_backup_are_recovered_after_a_restore(restore_stack, tmp_path):
    stack, receiver = restore_stack
    gateway, simulator_url, headers = stack.gateway_url, stack.simulator_url, stack.headers
    started = time.monotonic()
    url = stack.env["DATABASE_URL"]
    backup = tmp_path / "gateway.backup"
    take_backup(url, backup)

    orders = [f"INV-{n:02d}" for n in range(PAID_WHILE_UP + PAID_WHILE_DOWN)]
    for order_id in orders:
        post_charge(gateway, headers, order_id, AMOUNT)
    paid_up, paid_down = orders[:PAID_WHILE_UP], orders[PAID_WHILE_UP:]
    for order_id in paid_up:
        pay(simulator_url, order_id)
    # Acknowledged and applied before the restore: Midtrans has no reason to send them again.
    wait_for(
        "the payments made before the restore were applied",
        lambda: receiver.settled_since(started) >= set(paid_up),
        30,
        stack,
    )

    stop_gateway(stack)
    restore_backup(url, backup)
    # Midtrans retries a notification nobody answered, after 1 min, 5 min, 30 min...: here
    # after 0.6 s, 3.6 s, 21.6 s... from the payment.
    requests.post(
        f"{simulator_url}/_sim/config", json={"time_factor": 0.01}, timeout=5
    ).raise_for_status()
    for order_id in paid_down:
        pay(simulator_url, order_id)
    restored = time.monotonic()
    start_gateway(stack)

    for order_id in orders:  # the restored database knows none of them
        answer = requests.get(f"{gateway}/status/{order_id}", headers=headers, timeout=10)
        assert answer.status_code == 404 or order_id in paid_down, answer.text

    # Resend, as from Midtrans's dashboard: the very notifications the gateway acknowledged.
    sent = requests.get(f"{simulator_url}/_sim/notifications", timeout=10).json()
    resend = [
        n["body"]
        for n in sent
        if n["status"] == 200
        and n["body"]["transaction_status"] == "settlement"
        and n["body"]["order_id"] in {f"shop-{o}" for o in paid_up}
    ]
    assert len(resend) == PAID_WHILE_UP, sent
    for body in resend:
        answer = requests.post(f"{gateway}/notification", json=body, timeout=30)
        assert answer.status_code == 200, answer.text

    wait_for(
        "a verified settlement callback for every order",
        lambda: receiver.settled_since(restored) >= set(orders),
        50,
        stack,
    )
    assert not receiver.unverified()

    for order_id in orders:
        status = requests.get(f"{gateway}/status/{order_id}", headers=headers, timeout=10)
        assert status.status_code == 200, status.text
        body = status.json()
        assert (body["outcome"], body["paid"], body["amount"]) == ("paid", True, AMOUNT), body

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT id, order_id, flag, amount, status FROM transactions ORDER BY order_id"
                )
            ).all()
            sources = conn.execute(
                text("SELECT transaction_id, source FROM transaction_events")
            ).all()
    finally:
        engine.dispose()
    assert [row.order_id for row in rows] == orders
    for row in rows:
        assert row.flag and row.flag.startswith("recovered"), row
        assert (row.amount, str(row.status)) == (AMOUNT, "settlement"), row
        assert "recovery" in {str(s.source) for s in sources if s.transaction_id == row.id}

    # The client, never having heard back, retries its /charge: it gets the payment's status.
    retry = post_charge(gateway, headers, orders[0], AMOUNT, expect=200)
    assert (retry.json()["order_id"], retry.json()["outcome"]) == (orders[0], "paid")

    # The orders paid while the gateway was down came by Midtrans's own retries.
    log = requests.get(f"{simulator_url}/_sim/notifications", timeout=10).json()
    retried = {
        n["body"]["order_id"]
        for n in log
        if n["attempt"] > 1
        and n["status"] == 200
        and n["body"]["transaction_status"] == "settlement"
    }
    assert retried == {f"shop-{o}" for o in paid_down}, log
    took = time.monotonic() - started
    print(f"restore test on {make_url(url).get_backend_name()}: {took:.1f} s")
