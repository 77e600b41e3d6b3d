"""Dashboard administrators: the rules shared by the command line and the dashboard.

Who may be an admin (a unique username of letters, digits and _ . @ -), how long a password
must be, creating one, changing a password, and clearing an admin's login throttling. A refusal
raises a `GatewayError` naming its field: the dashboard shows it at the field, `flask admins`
as one line. Only an argon2id hash of a password is stored, and it is made (slowly) before the
unit of work, never inside it.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .auth import hash_password
from .database import writing
from .errors import InvalidRequestError, NotFoundError
from .extensions import db
from .models import Admin

MIN_PASSWORD = 12
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@\-]{1,80}$")


class AdminExistsError(InvalidRequestError):
    """The username is taken (the dashboard says so in the admin's language)."""

    def __init__(self, username: str):
        super().__init__(f"an admin named {username!r} already exists", field="username")


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidRequestError(
            f"the password must be at least {MIN_PASSWORD} characters", field="password"
        )


def create_admin(*, username: str, password: str) -> Admin:
    """A new admin; refused for a username that is malformed or taken, or a short password."""
    if not USERNAME_RE.fullmatch(username):
        raise InvalidRequestError(
            "USERNAME may only contain letters, digits and _ . @ -", field="username"
        )
    check_password(password)
    password_hash = hash_password(password)
    try:
        with writing():
            if db.session.execute(select(Admin.id).where(Admin.username == username)).first():
                raise AdminExistsError(username)
            admin = Admin(username=username, password_hash=password_hash)
            db.session.add(admin)
    except IntegrityError:  # another one of that name was created at the same moment
        raise AdminExistsError(username) from None
    return admin


def set_password(admin: Admin, password: str) -> None:
    """Replace `admin`'s password (ending its other logins is the dashboard's part)."""
    check_password(password)
    password_hash = hash_password(password)
    with writing():
        admin.password_hash = password_hash


def unlock(username: str) -> int:
    """Forget every address's failed logins of admin `username`, so every address may try the
    account at once again; how many addresses had some."""
    # Imported here: the dashboard imports this module, so this one cannot import it first.
    from .admin import throttle

    if not username or not username.isprintable():
        raise NotFoundError(f"no admin named {username!r}")
    with writing():
        if not db.session.execute(select(Admin.id).where(Admin.username == username)).first():
            raise NotFoundError(f"no admin named {username!r}")
        return throttle.unlock(username)
