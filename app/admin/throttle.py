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

The second step of a login (a TOTP or recovery code, `app.admin_mfa`) is counted the same way
under the name `mfa:USERNAME` (no username has a colon), in the address's own bucket as well,
and in one more bucket for the account from every address together: 10 wrong codes cost
nothing, then the same waits, one forgotten every quiet 6 minutes. Only someone who knows the
password reaches that step, so this bucket cannot be used to keep the owner out by strangers,
and a guesser with many addresses gets a few codes an hour (a code is one in a million).
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.exc import IntegrityError

from ..database import writing
from ..extensions import db
from ..models import utcnow
from .models import LoginThrottle

ANY_USERNAME = ""  # the username of an address's own bucket
EVERY_ADDRESS = ""  # the address of an account's bucket for codes from anywhere (never an IP)
MFA_PREFIX = "mfa:"
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
CODES_OF_ACCOUNT = Rule(free=10, forget_every=timedelta(minutes=6))


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
    return _begin(_rules(_username(username), address_of(remote_addr)))


def begin_code_attempt(username: str, remote_addr: str | None) -> Attempt:
    """Count a second-step code check of `username` (see the module's text), like
    `begin_attempt`."""
    return _begin(_code_rules(_username(username), address_of(remote_addr)))


def _begin(rules: dict[tuple[str, str], Rule]) -> Attempt:
    try:
        with writing():
            return _count_attempt(rules)
    except IntegrityError:  # another worker made the same bucket first: count on it
        with writing():
            return _count_attempt(rules)


def _rules(username: str, address: str) -> dict[tuple[str, str], Rule]:
    return {(address, username): ACCOUNT_AT_ADDRESS, (address, ANY_USERNAME): ADDRESS}


def _code_rules(username: str, address: str) -> dict[tuple[str, str], Rule]:
    name = MFA_PREFIX + username
    return {
        (address, name): ACCOUNT_AT_ADDRESS,
        (address, ANY_USERNAME): ADDRESS,
        (EVERY_ADDRESS, name): CODES_OF_ACCOUNT,
    }


def _locked_buckets(keys) -> dict[tuple[str, str], LoginThrottle]:
    keys = list(keys)
    rows = db.session.execute(
        select(LoginThrottle)
        .where(
            or_(*(and_(LoginThrottle.address == a, LoginThrottle.username == u) for a, u in keys))
        )
        .order_by(LoginThrottle.id)  # every worker locks in the same order: no deadlock
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalars()
    return {(row.address, row.username): row for row in rows}


def _count_attempt(rules: dict[tuple[str, str], Rule]) -> Attempt:
    now = utcnow()
    buckets = _locked_buckets(rules)
    waits = [b.blocked_until - now for b in buckets.values() if _blocked(b, now)]
    if waits:
        return Attempt(wait=max(waits))
    longest = None
    for (address, name), rule in rules.items():
        bucket = buckets.get((address, name))
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
    _was_right(_rules(username, address), (address, username))


def code_was_right(username: str, remote_addr: str | None) -> None:
    """Like `password_was_right` for a second-step code; the account's bucket for codes from
    every address gets this attempt back too (not the others' failures)."""
    username, address = _username(username), address_of(remote_addr)
    _was_right(_code_rules(username, address), (address, MFA_PREFIX + username))


def _was_right(rules: dict[tuple[str, str], Rule], forget: tuple[str, str]) -> None:
    with writing():
        now = utcnow()
        buckets = _locked_buckets(rules)
        for key, bucket in buckets.items():
            if key == forget:
                db.session.delete(bucket)
                continue
            rule = rules[key]
            bucket.level = max(rule.leaked(bucket, now) - 1, 0.0)
            bucket.updated_at = now
            if rule.wait(bucket.level) is None:
                bucket.blocked_until = None


def unlock(username: str) -> int:
    """Forget every address's failures for `username` (passwords and second-step codes); how
    many addresses had some."""
    names = [_username(username), MFA_PREFIX + username]
    with writing():
        addresses = set(
            db.session.execute(
                select(LoginThrottle.address).where(LoginThrottle.username.in_(names))
            ).scalars()
        )
        db.session.execute(delete(LoginThrottle).where(LoginThrottle.username.in_(names)))
    return len(addresses - {EVERY_ADDRESS})
