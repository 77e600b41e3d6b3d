"""Admins' second factor (MFA): TOTP codes from an authenticator app, and recovery codes.

- **Enrolment**: a new secret is kept unconfirmed until the admin types a code made from it;
  only then is MFA on, and 10 recovery codes are made and shown once.
- **A TOTP code** (6 digits, 30-second steps) is accepted for the step before, the current
  and the next one (clock drift), and never twice: the step of the last code used is stored,
  and a code of that step or an earlier one is refused (a code seen over a shoulder or in a
  proxy log cannot be replayed).
- **A recovery code** (16 letters and digits) works once; only its SHA-256 is stored (with
  80 random bits, the hash cannot be reversed by guessing).
- **Reset** (`flask admins reset-mfa USERNAME`) removes an admin's secret and recovery codes.
- **Required for every admin**: a gateway-wide setting; an admin without MFA then can only
  set it up, nothing else.

The TOTP secret is stored as is: the gateway has no encryption key of its own, and one derived
from SECRET_KEY would make every admin's MFA unusable the day SECRET_KEY changes. It is shown
only while the admin sets it up.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
from sqlalchemy import delete, func, or_, select, update

from .database import reading, writing
from .errors import InvalidRequestError, NotFoundError
from .extensions import db
from .models import Admin, AdminMfa, AdminRecoveryCode, GatewaySetting, utcnow

ISSUER = "midtrans-gateway"
RECOVERY_CODES = 10
RECOVERY_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # 32 signs, no 0/o, 1/l/i look-alikes
RECOVERY_LENGTH = 16  # 80 bits
REQUIRE_MFA = "require_mfa"
ENROLMENT_FRESH = timedelta(hours=1)  # an unconfirmed secret older than this is replaced
_TOTP_RE = re.compile(r"^\d{6}$")


@dataclass(frozen=True)
class MfaState:
    enabled_at: datetime | None
    codes_left: int

    @property
    def enabled(self) -> bool:
        return self.enabled_at is not None


@dataclass(frozen=True)
class Enrolment:
    secret: str
    uri: str  # otpauth://totp/midtrans-gateway:<username>?secret=...&issuer=midtrans-gateway


def _hash_code(code: str) -> str:
    return hashlib.sha256(code.encode("ascii")).hexdigest()


def normalize_code(text: str | None) -> str:
    """A typed code without spaces and dashes, lower case (recovery codes are shown grouped)."""
    return "".join(ch for ch in (text or "") if ch not in " -\t").lower()[:64]


def _row(admin_id: int) -> AdminMfa | None:
    return db.session.get(AdminMfa, admin_id, populate_existing=True)


def state(admin_id: int) -> MfaState:
    with reading():
        row = _row(admin_id)
        left = db.session.execute(
            select(func.count(AdminRecoveryCode.id)).where(
                AdminRecoveryCode.admin_id == admin_id, AdminRecoveryCode.used_at.is_(None)
            )
        ).scalar_one()
    enabled_at = row.enabled_at if row is not None else None
    return MfaState(enabled_at, left if enabled_at else 0)


def is_enabled(admin_id: int) -> bool:
    with reading():
        row = _row(admin_id)
        return row is not None and row.enabled_at is not None


def begin_enrolment(admin: Admin) -> Enrolment:
    """The secret an admin is setting up (the same one until confirmed, for an hour, so
    reloading the page keeps the QR code the admin may already have scanned). Refused when
    MFA is already on."""
    with writing():
        row = _row(admin.id)
        if row is not None and row.enabled_at is not None:
            raise InvalidRequestError("two-factor sign-in is already on", field="code")
        if row is not None and utcnow() - row.created_at > ENROLMENT_FRESH:
            db.session.delete(row)  # shown long ago: maybe to someone else too
            db.session.flush()
            row = None
        if row is None:
            row = AdminMfa(admin_id=admin.id, secret=pyotp.random_base32())
            db.session.add(row)
        secret = row.secret
    uri = pyotp.TOTP(secret).provisioning_uri(name=admin.username, issuer_name=ISSUER)
    return Enrolment(secret, uri)


def _matching_step(secret: str, code: str, now: float) -> int | None:
    """The time-step (the one before, now, the next) whose code is `code`, or None."""
    totp = pyotp.TOTP(secret)
    current = int(now) // totp.interval
    found = None
    for step in (current - 1, current, current + 1):  # valid_window=1, each compared alike
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step
    return found


def _take_step(admin_id: int, secret: str, code: str, *, enabled: bool) -> bool:
    """Accept `code` once: the step is stored only if no code of it or a later step was used,
    in one conditional UPDATE (two requests with the same code cannot both pass)."""
    step = _matching_step(secret, code, time.time())
    if step is None:
        return False
    changes = {"last_step": step}
    if not enabled:
        changes["enabled_at"] = utcnow()
    result = db.session.execute(
        update(AdminMfa)
        .where(
            AdminMfa.admin_id == admin_id,
            AdminMfa.secret == secret,
            AdminMfa.enabled_at.is_not(None) if enabled else AdminMfa.enabled_at.is_(None),
            or_(AdminMfa.last_step.is_(None), AdminMfa.last_step < step),
        )
        .values(**changes)
    )
    return result.rowcount == 1


def _new_codes(admin_id: int) -> list[str]:
    """Replace every recovery code of the admin by 10 new ones (inside a unit of work)."""
    codes = [
        "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_LENGTH))
        for _ in range(RECOVERY_CODES)
    ]
    db.session.execute(delete(AdminRecoveryCode).where(AdminRecoveryCode.admin_id == admin_id))
    db.session.add_all(AdminRecoveryCode(admin_id=admin_id, code_hash=_hash_code(c)) for c in codes)
    return [format_code(c) for c in codes]


def format_code(code: str) -> str:
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def confirm_enrolment(admin: Admin, code: str | None) -> list[str]:
    """Turn MFA on with a code from the new secret; the 10 recovery codes, to show once."""
    code = normalize_code(code)
    with writing():
        row = _row(admin.id)
        if row is None or row.enabled_at is not None:
            raise InvalidRequestError("start setting up two-factor sign-in again", field="code")
        if not _TOTP_RE.fullmatch(code) or not _take_step(
            admin.id, row.secret, code, enabled=False
        ):
            raise InvalidRequestError("the code is wrong", field="code")
        return _new_codes(admin.id)


def verify_totp(admin_id: int, code: str | None) -> bool:
    """A right TOTP code never used before (MFA on)."""
    code = normalize_code(code)
    if not _TOTP_RE.fullmatch(code):
        return False
    with writing():
        row = _row(admin_id)
        if row is None or row.enabled_at is None:
            return False
        return _take_step(admin_id, row.secret, code, enabled=True)


def use_recovery_code(admin_id: int, code: str | None) -> bool:
    """A recovery code of this admin not used yet; it is used up by this call."""
    code = normalize_code(code)
    if len(code) != RECOVERY_LENGTH or not code.isalnum() or not code.isascii():
        return False
    with writing():
        if not is_enabled(admin_id):
            return False
        result = db.session.execute(
            update(AdminRecoveryCode)
            .where(
                AdminRecoveryCode.admin_id == admin_id,
                AdminRecoveryCode.code_hash == _hash_code(code),
                AdminRecoveryCode.used_at.is_(None),
            )
            .values(used_at=utcnow())
        )
        return result.rowcount == 1


def check_second_factor(admin_id: int, code: str | None) -> str | None:
    """How `code` proved the second factor: "totp", "recovery", or None (wrong)."""
    if _TOTP_RE.fullmatch(normalize_code(code)):
        return "totp" if verify_totp(admin_id, code) else None
    return "recovery" if use_recovery_code(admin_id, code) else None


def looks_like_totp(text: str | None) -> bool:
    return bool(_TOTP_RE.fullmatch(normalize_code(text)))


def new_recovery_codes(admin_id: int) -> list[str]:
    """10 new recovery codes (the old ones stop working); MFA must be on."""
    with writing():
        if not is_enabled(admin_id):
            raise InvalidRequestError("two-factor sign-in is off", field="proof")
        return _new_codes(admin_id)


def disable(admin_id: int) -> bool:
    """Remove the admin's secret and recovery codes; whether MFA was on."""
    with writing():
        was_on = is_enabled(admin_id)
        db.session.execute(delete(AdminRecoveryCode).where(AdminRecoveryCode.admin_id == admin_id))
        db.session.execute(delete(AdminMfa).where(AdminMfa.admin_id == admin_id))
    return was_on


def reset(username: str) -> bool:
    """`flask admins reset-mfa`: remove `username`'s MFA; whether it was on."""
    if not username or not username.isprintable():
        raise NotFoundError(f"no admin named {username!r}")
    with writing():
        admin_id = db.session.execute(
            select(Admin.id).where(Admin.username == username)
        ).scalar_one_or_none()
        if admin_id is None:
            raise NotFoundError(f"no admin named {username!r}")
        return disable(admin_id)


def required() -> bool:
    """Whether every admin must use MFA (the dashboard's setting; off until set)."""
    with reading():
        value = db.session.execute(
            select(GatewaySetting.value).where(GatewaySetting.key == REQUIRE_MFA)
        ).scalar_one_or_none()
    return value == "on"


def set_required(on: bool) -> bool:
    """Change the setting; whether it changed."""
    value = "on" if on else "off"
    with writing():
        row = db.session.get(GatewaySetting, REQUIRE_MFA, with_for_update=True)
        if row is None:
            db.session.add(GatewaySetting(key=REQUIRE_MFA, value=value))
            return on
        if row.value == value:
            return False
        row.value, row.updated_at = value, utcnow()
        return True


def must_enrol(admin_id: int) -> bool:
    """Whether the admin must set MFA up before doing anything else."""
    with reading():
        return required() and not is_enabled(admin_id)


def enabled_admin_ids() -> set[int]:
    with reading():
        return set(
            db.session.execute(
                select(AdminMfa.admin_id).where(AdminMfa.enabled_at.is_not(None))
            ).scalars()
        )
