"""Password-guessing throttle (app/admin/throttle.py): a guesser is slowed down per address and
per address and username; nobody can keep the owner out from elsewhere; waits end by themselves.

Time is faked by replacing `utcnow` in app.admin.throttle (the throttle's only clock).
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
from admin.dashboard import PASSWORD, csrf_from
from sqlalchemy import select
from support import use_settings

import app.admin.sessions as sessions_module
import app.admin.throttle as throttle_module
from app.admin.models import AdminSession, AuditEntry, LoginThrottle
from app.extensions import db

OWNER = "198.51.100.7"
ATTACKER = "203.0.113.9"
WRONG = "wrong password!"
NEXT_IN_30 = "the next try is possible in 30 seconds"


class Clock:
    def __init__(self):
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(throttle_module, "utcnow", fake)
    return fake


@pytest.fixture(autouse=True)
def lenient_limiter(app):
    """RATELIMIT_LOGIN (flask-limiter, 10 a minute per address, real time) stays on the login
    form; it is raised here so that these tests see the throttle itself."""
    use_settings(app, ratelimit_login="10000 per minute")


@pytest.fixture
def checks(monkeypatch) -> list[str]:
    """The password hashes verified (argon2id): a stand-in for the time a login takes."""
    seen: list[str] = []
    real = sessions_module.verify_password

    def counting(password_hash: str, password: str) -> bool:
        seen.append(password_hash)
        return real(password_hash, password)

    monkeypatch.setattr(sessions_module, "verify_password", counting)
    return seen


def from_address(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def attempt(client, username: str = "root", password: str = PASSWORD, **kwargs):
    token = csrf_from(client.get("/admin/login", **kwargs).get_data(as_text=True))
    return client.post(
        "/admin/login",
        data={"csrf_token": token, "username": username, "password": password},
        **kwargs,
    )


def said(resp) -> str:
    """What the page tells the person (the flash messages and field errors), one string."""
    html = resp.get_data(as_text=True)
    found = re.findall(r'class="(?:flash [^"]*|error)"[^>]*>([^<]*)<', html)
    return " | ".join(found)


def test_failures_from_elsewhere_never_keep_the_owner_out(app, admin_user, clock):
    attacker = from_address(app, ATTACKER)
    answers = [attempt(attacker, "root", f"guess {i}") for i in range(50)]
    # The attacker's own address is slowed: 5 passwords checked, then 429s with Retry-After.
    assert [a.status_code for a in answers[:5]] == [401] * 5
    assert {a.status_code for a in answers[5:]} == {429}
    assert answers[5].headers["Retry-After"] == "30"
    assert "Try again in 30 seconds" in said(answers[5])
    # ...even with the right password, while it must wait.
    assert attempt(attacker, "root", PASSWORD).status_code == 429
    # The owner, from their own address, logs in at once: no delay at all.
    owner = from_address(app, OWNER)
    resp = attempt(owner)
    assert resp.status_code == 302 and resp.location == "/admin/"
    assert owner.get("/admin/").status_code == 200


def test_many_addresses_guessing_never_keep_the_owner_out(app, admin_user, clock):
    for i in range(50):
        assert (
            attempt(from_address(app, f"10.9.{i // 200}.{i % 200 + 1}"), "root", WRONG).status_code
            == 401
        )
    assert attempt(from_address(app, OWNER)).status_code == 302


def test_behind_a_proxy_the_forwarded_address_counts(env, build_app, cli, clock):
    proxied = build_app({**env, "PROXY_FIX_HOPS": "1"}, reset=False)
    use_settings(proxied, ratelimit_login="10000 per minute")
    cli("admins", "create", "root", "--password", PASSWORD)
    nginx = from_address(proxied, "127.0.0.1")  # every request comes from the proxy
    attacker = {"headers": {"X-Forwarded-For": ATTACKER}}
    for _ in range(5):
        assert attempt(nginx, "root", WRONG, **attacker).status_code == 401
    assert attempt(nginx, "root", PASSWORD, **attacker).status_code == 429
    assert attempt(nginx, headers={"X-Forwarded-For": OWNER}).status_code == 302


def test_failures_from_one_address_slow_that_address(app, admin_user, clock):
    slow = from_address(app, ATTACKER)
    for _ in range(4):
        resp = attempt(slow, "root", WRONG)
        assert resp.status_code == 401 and "the next try" not in said(resp)
    fifth = attempt(slow, "root", WRONG)
    assert fifth.status_code == 401
    assert "Wrong username or password." in said(fifth) and NEXT_IN_30 in said(fifth)
    refused = attempt(slow, "root", PASSWORD)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "30"
    # Each further failure doubles the wait: 1, 2, 4, 8 minutes, then at most 15.
    for seconds, wait in [
        (30, "30 seconds"),
        (60, "60 seconds"),
        (120, "2 minutes"),
        (240, "4 minutes"),
        (480, "8 minutes"),
        (900, "15 minutes"),
    ]:
        assert f"Try again in {wait}" in said(attempt(slow, "root", PASSWORD))
        clock.advance(seconds=seconds - 1)
        assert attempt(slow, "root", PASSWORD).status_code == 429
        clock.advance(seconds=1)  # the wait is over: the next try is checked (and wrong)
        assert attempt(slow, "root", WRONG).status_code == 401
    assert "Try again in 15 minutes" in said(attempt(slow, "root", PASSWORD))
    # Another address is not affected by any of it.
    assert attempt(from_address(app, OWNER)).status_code == 302


def test_failures_for_many_usernames_slow_their_address(app, admin_user, clock):
    spray = from_address(app, ATTACKER)
    for i in range(19):
        resp = attempt(spray, f"user{i}", WRONG)
        assert resp.status_code == 401 and "the next try" not in said(resp)
    assert NEXT_IN_30 in said(attempt(spray, "user19", WRONG))
    refused = attempt(spray, "root", PASSWORD)  # any username, a right password too
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "30"
    assert attempt(from_address(app, OWNER)).status_code == 302
    clock.advance(seconds=30)
    assert attempt(spray).status_code == 302


def fail(client, clock, times: int, username: str = "root") -> None:
    """`times` wrong passwords checked, waiting whenever the address is asked to."""
    for _ in range(times):
        resp = attempt(client, username, WRONG)
        if resp.status_code == 429:
            clock.advance(seconds=int(resp.headers["Retry-After"]))
            resp = attempt(client, username, WRONG)
        assert resp.status_code == 401


def test_the_wait_ends_and_the_failures_are_forgotten(app, admin_user, clock):
    slow = from_address(app, ATTACKER)
    fail(slow, clock, 8)
    assert "Try again in 4 minutes" in said(attempt(slow, "root", PASSWORD))
    # The owner who mistyped comes back later: the wait is over and the failures forgotten
    # (one every quiet 10 minutes after the wait).
    clock.advance(hours=1, minutes=25)
    for _ in range(4):
        resp = attempt(slow, "root", WRONG)
        assert resp.status_code == 401 and "the next try" not in said(resp)
    assert NEXT_IN_30 in said(attempt(slow, "root", WRONG))  # back at the first wait
    clock.advance(seconds=30)
    assert attempt(slow, "root", PASSWORD).status_code == 302


def test_one_failure_is_forgotten_every_quiet_ten_minutes(app, admin_user, clock):
    client = from_address(app, ATTACKER)
    for _ in range(4):
        attempt(client, "root", WRONG)
    clock.advance(minutes=10, seconds=1)  # 4 -> 3 failures remembered
    assert "the next try" not in said(attempt(client, "root", WRONG))  # 4
    assert NEXT_IN_30 in said(attempt(client, "root", WRONG))  # 5


def test_a_right_password_forgets_the_failures_of_its_address(app, admin_user, clock):
    client = from_address(app, OWNER)
    for _ in range(4):
        attempt(client, "root", WRONG)
    assert attempt(client).status_code == 302
    client.post("/admin/logout", data={"csrf_token": csrf_from(client.get("/admin/").text)})
    for _ in range(4):
        resp = attempt(client, "root", WRONG)
        assert resp.status_code == 401 and "the next try" not in said(resp)


def _answers(app, username: str, address: str) -> list[tuple]:
    client = from_address(app, address)
    seen = []
    for password in [WRONG] * 6 + [PASSWORD if username == "root" else WRONG]:
        resp = attempt(client, username, password)
        seen.append((resp.status_code, said(resp), resp.headers.get("Retry-After")))
    return seen


def test_known_and_unknown_usernames_get_the_same_answers(app, admin_user, clock, checks):
    known = _answers(app, "root", "192.0.2.1")
    known_checks = len(checks)
    unknown = _answers(app, "nobody", "192.0.2.2")
    assert known == unknown
    assert [status for status, *_ in known] == [401] * 5 + [429] * 2
    # The same work, so the same time: one argon2id verification for each of the 5 checked
    # attempts (a dummy hash for the unknown name), none while the address waits.
    assert known_checks == 5 and len(checks) == 10
    assert all(h.startswith("$argon2id$") for h in checks)
    with app.app_context():
        names = db.session.execute(
            select(LoginThrottle.username).where(LoginThrottle.username != "")
        ).scalars()
        assert sorted(names) == ["nobody", "root"]


def test_parallel_guesses_cannot_slip_past_the_count(app, admin_user, clock, checks):
    answers: list[int] = []
    start = threading.Barrier(12)

    def guess(i):
        client = from_address(app, ATTACKER)
        token = csrf_from(client.get("/admin/login").get_data(as_text=True))
        start.wait()
        resp = client.post(
            "/admin/login", data={"csrf_token": token, "username": "root", "password": f"g{i}"}
        )
        answers.append(resp.status_code)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(answers) == [401] * 5 + [429] * 7
    assert len(checks) == 5


def test_an_ipv6_address_counts_by_its_64(app, admin_user, clock):
    for host in range(1, 6):
        attempt(from_address(app, f"2001:db8:1:2::{host}"), "root", WRONG)
    assert attempt(from_address(app, "2001:db8:1:2:ffff::9")).status_code == 429
    assert attempt(from_address(app, "2001:db8:1:3::1")).status_code == 302


def test_the_throttle_is_shared_by_every_worker(env, build_app, admin_user, clock):
    """Two app instances (two gunicorn workers) on one database count failures together."""
    first = from_address(build_app(env, reset=False), ATTACKER)
    second = from_address(build_app(env, reset=False), ATTACKER)
    for client in (first, second, first, second, first):
        assert attempt(client, "root", WRONG).status_code == 401
    assert attempt(second, "root", PASSWORD).status_code == 429


def _change(client, current: str, new: str = "a brand new passphrase"):
    token = csrf_from(client.get("/admin/account").get_data(as_text=True))
    return client.post(
        "/admin/account",
        data={"csrf_token": token, "current": current, "new": new, "repeat": new},
    )


def test_the_current_password_check_is_throttled_the_same_way(app, admin_user, clock, checks):
    stolen = from_address(app, ATTACKER)
    assert attempt(stolen).status_code == 302  # a session someone else got hold of
    for _ in range(4):
        resp = _change(stolen, "a guess at it")
        assert resp.status_code == 400 and "The current password is wrong." in said(resp)
    fifth = _change(stolen, "a guess at it")
    assert "Too many wrong passwords: the next try is possible in 30 seconds" in said(fifth)
    before = len(checks)
    refused = _change(stolen, PASSWORD)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "30"
    assert "Too many wrong passwords. Try again in 30 seconds." in said(refused)
    assert len(checks) == before  # no password checked while waiting
    # The same count as the login form's: logging in as root from there waits too.
    assert attempt(from_address(app, ATTACKER), "root", PASSWORD).status_code == 429
    clock.advance(seconds=31)
    assert _change(stolen, PASSWORD).status_code == 302
    with app.app_context():
        details = db.session.execute(
            select(AuditEntry.detail).where(AuditEntry.action == "password_change")
        ).scalars()
        details = list(details)
    assert details.count("failed: wrong current password") == 4
    assert sum("refused unchecked" in (d or "") for d in details) == 1
    assert details[-1] is None  # the change itself


def test_unlock_lets_every_address_try_again(app, admin_user, cli, clock):
    for address in (ATTACKER, OWNER):
        for _ in range(5):
            attempt(from_address(app, address), "root", WRONG)
        assert attempt(from_address(app, address)).status_code == 429
    result = cli("admins", "unlock", "root")
    assert "Login throttling of root cleared (2 addresses" in result.output
    assert attempt(from_address(app, OWNER)).status_code == 302
    with app.app_context():
        assert db.session.execute(select(AdminSession)).first() is not None
        assert not db.session.execute(
            select(LoginThrottle).where(LoginThrottle.username == "root")
        ).first()
