"""Password-guessing throttle: slow a guesser down, never lock the owner out.

The policy (ASVS 5.0 6.1.1 and 6.3.1), for the login form and the account page's
current-password check alike. Every password check is counted in two leaky buckets, and an
address that is over either one waits before its next check:

- **this address, this username**: 4 failures in a row cost nothing; the 5th makes the
  address wait 30 seconds before its next try at this username, and each further failure
  doubles the wait (1, 2, 4, 8 minutes) up to 15 minutes. Once a wait is over, every quiet 10
  minutes forget one failure. So from one address a guesser gets about 6 tries an hour at an
  account in the long run, and an owner who mistyped 5 times waits 30 seconds.
- **this address, any username**: 19 failures cost nothing; the 20th starts the same waits
  (30 seconds doubling up to 15 minutes); once a wait is over, every quiet 3 minutes forget
  one failure (at most about 20 tries an hour from one address, whatever usernames it tries).

An IPv6 address counts by its /64 (a single host usually holds a whole /64); the address is
the one `PROXY_FIX_HOPS` makes of X-Forwarded-For behind a proxy. The per-address request
limit `RATELIMIT_LOGIN` (flask-limiter) stays on the login form as well.

Nothing is ever locked for good: every wait ends by itself, and failures from other addresses
never make the owner's address wait, so nobody can keep an admin out from elsewhere. A right
password forgets its address's failures for that username (not the address's own count);
`flask --app wsgi admins unlock USERNAME` forgets every address's failures for a username.
Usernames that exist and usernames that do not are counted alike, and a waiting address is
refused before any password is checked, so neither an answer nor its timing tells whether an
account exists or whether a password was right.

An attempt is counted *before* its (slow, argon2id) password check, in one write transaction,
so parallel requests cannot all slip in between a check and its count; a right password then
takes the attempt back.

What this does not stop: many addresses guessing at one account are each held to the rates
above. Against that stand argon2id and passwords of 12 characters or more.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from ..database import writing
from ..extensions import db
from ..models import utcnow
from .models import LoginThrottle

ANY_USERNAME = ""  # the username of an address's own bucket
FORGET_ROWS_AFTER = timedelta(days=1)  # an untouched bucket is empty long before this


@dataclass(frozen=True)
class Rule:
    """A leaky bucket: the `free`-th failure in a row makes the address wait `first_wait`,
    doubling with each further failure up to `max_wait`; after a wait, one failure is
    forgotten every quiet `forget_every`."""

    free: int
    forget_every: timedelta
    first_wait: timedelta = timedelta(seconds=30)
    max_wait: timedelta = timedelta(minutes=15)

    @property
    def max_level(self) -> float:
        """Failures beyond this are not stored: the wait is at its longest long before, and a
        quiet address is forgiven within a bounded time."""
        return float(self.free + 10)

    def leaked(self, bucket: LoginThrottle, now: datetime) -> float:
        """What is left of the bucket's failures now: they leak only after its wait is over,
        so retrying the moment a wait ends makes the next wait longer, not shorter."""
        since = max(bucket.updated_at, bucket.blocked_until or bucket.updated_at)
        elapsed = max((now - since).total_seconds(), 0.0)
        return max(0.0, bucket.level - elapsed / self.forget_every.total_seconds())

    def wait(self, level: float) -> timedelta | None:
        failures = math.ceil(level - 1e-6)  # a failure counts until it has leaked away
        if failures < self.free:
            return None
        return min(self.first_wait * 2 ** min(failures - self.free, 20), self.max_wait)


ACCOUNT_AT_ADDRESS = Rule(free=5, forget_every=timedelta(minutes=10))
ADDRESS = Rule(free=20, forget_every=timedelta(minutes=3))


@dataclass(frozen=True)
class Attempt:
    """What the throttle says before a password check."""

    wait: timedelta | None = None  # refused: check no password, ask to wait this long
    wait_if_wrong: timedelta | None = None  # allowed; if the password is wrong, the next
    # try from this address waits this long

    @property
    def refused(self) -> bool:
        return self.wait is not None


def address_of(remote_addr: str | None) -> str:
    """The address a bucket belongs to: an IPv4 address (also when written as IPv6), or the
    /64 network of an IPv6 one."""
    text = (remote_addr or "").strip()
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return text[:64] or "-"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _username(username: str) -> str:
    if not username:
        raise ValueError("an empty username would be the address's own bucket")
    return username[:80]


def begin_attempt(username: str, remote_addr: str | None) -> Attempt:
    """Count a password check of `username` from `remote_addr`, unless that address must
    still wait (then count nothing and say how long). A unit of work of its own."""
    username, address = _username(username), address_of(remote_addr)
    try:
        with writing():
            return _count_attempt(username, address)
    except IntegrityError:  # another worker made the same bucket first: count on it
        with writing():
            return _count_attempt(username, address)


def _rules(username: str) -> dict[str, Rule]:
    return {username: ACCOUNT_AT_ADDRESS, ANY_USERNAME: ADDRESS}


def _locked_buckets(address: str, usernames) -> dict[str, LoginThrottle]:
    rows = db.session.execute(
        select(LoginThrottle)
        .where(LoginThrottle.address == address, LoginThrottle.username.in_(list(usernames)))
        .order_by(LoginThrottle.id)  # every worker locks in the same order: no deadlock
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalars()
    return {row.username: row for row in rows}


def _count_attempt(username: str, address: str) -> Attempt:
    now = utcnow()
    rules = _rules(username)
    buckets = _locked_buckets(address, rules)
    waits = [b.blocked_until - now for b in buckets.values() if _blocked(b, now)]
    if waits:
        return Attempt(wait=max(waits))
    longest = None
    for name, rule in rules.items():
        bucket = buckets.get(name)
        if bucket is None:
            bucket = LoginThrottle(address=address, username=name, level=0.0, updated_at=now)
            db.session.add(bucket)
        bucket.level = min(rule.leaked(bucket, now) + 1, rule.max_level)
        bucket.updated_at = now
        wait = rule.wait(bucket.level)
        bucket.blocked_until = now + wait if wait else None
        if wait and (longest is None or wait > longest):
            longest = wait
    # Buckets nobody touched for a day are empty: forget them (the table stays small).
    db.session.execute(
        delete(LoginThrottle).where(LoginThrottle.updated_at < now - FORGET_ROWS_AFTER)
    )
    return Attempt(wait_if_wrong=longest)


def _blocked(bucket: LoginThrottle, now: datetime) -> bool:
    return bucket.blocked_until is not None and bucket.blocked_until > now


def password_was_right(username: str, remote_addr: str | None) -> None:
    """Forget this address's failures for `username`, and give the address its attempt back."""
    username, address = _username(username), address_of(remote_addr)
    with writing():
        now = utcnow()
        buckets = _locked_buckets(address, _rules(username))
        if username in buckets:
            db.session.delete(buckets[username])
        own = buckets.get(ANY_USERNAME)
        if own is not None:
            own.level = max(ADDRESS.leaked(own, now) - 1, 0.0)
            own.updated_at = now
            if ADDRESS.wait(own.level) is None:
                own.blocked_until = None


def unlock(username: str) -> int:
    """Forget every address's failures for `username`; how many addresses had some."""
    with writing():
        result = db.session.execute(
            delete(LoginThrottle).where(LoginThrottle.username == _username(username))
        )
    return result.rowcount or 0
