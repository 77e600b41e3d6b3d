"""app.admins: the one set of admin-account rules behind `flask admins` and the dashboard."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app import admins
from app.admin.forms import AdminCreateForm, PasswordChangeForm
from app.auth import verify_password
from app.errors import InvalidRequestError, NotFoundError
from app.extensions import db
from app.models import Admin

GOOD = "x" * admins.MIN_PASSWORD


def _count() -> int:
    return db.session.execute(select(func.count()).select_from(Admin)).scalar_one()


@pytest.mark.parametrize(
    ("username", "password", "field"),
    [
        ("bad name", GOOD, "username"),
        ("ops\n", GOOD, "username"),  # a line break after the name is no part of a username
        ("", GOOD, "username"),
        ("u" * 81, GOOD, "username"),
        ("ops", GOOD[:-1], "password"),
    ],
)
def test_create_refuses_a_bad_username_or_short_password_and_writes_nothing(
    app, username, password, field
):
    with app.app_context():
        with pytest.raises(InvalidRequestError) as refused:
            admins.create_admin(username=username, password=password)
        assert refused.value.details["field"] == field
        assert _count() == 0


def test_create_then_a_second_of_the_same_name_is_refused(app):
    with app.app_context():
        made = admins.create_admin(username="ops", password=GOOD)
        assert verify_password(made.password_hash, GOOD)
        with pytest.raises(admins.AdminExistsError, match="an admin named 'ops' already exists"):
            admins.create_admin(username="ops", password=GOOD + "y")
        assert _count() == 1
        stored = db.session.execute(select(Admin)).scalar_one()
        assert verify_password(stored.password_hash, GOOD)


def test_set_password_refuses_a_short_one_and_stores_a_long_one(app):
    with app.app_context():
        admin = admins.create_admin(username="ops", password=GOOD)
        with pytest.raises(InvalidRequestError):
            admins.set_password(admin, "short")
        admins.set_password(admin, GOOD + "new")
        db.session.expire_all()
        stored = db.session.execute(select(Admin)).scalar_one()
        assert verify_password(stored.password_hash, GOOD + "new")


def test_unlock_of_no_such_admin_is_not_found(app):
    with app.app_context():
        for name in ("ghost", "", "bad\x00name"):
            with pytest.raises(NotFoundError, match="no admin named"):
                admins.unlock(name)
        admins.create_admin(username="ops", password=GOOD)
        assert admins.unlock("ops") == 0


def test_the_dashboard_forms_use_the_same_minimum_and_pattern(app):
    """One rule: the forms refuse what `create_admin` and `set_password` refuse."""
    short = GOOD[:-1]
    with app.test_request_context(method="POST"):
        app.config["WTF_CSRF_ENABLED"] = False
        form = AdminCreateForm(data={"username": "ops", "password": short, "repeat": short})
        assert not form.validate() and form.password.errors
        form = AdminCreateForm(data={"username": "bad name", "password": GOOD, "repeat": GOOD})
        assert not form.validate() and form.username.errors
        form = AdminCreateForm(data={"username": "ops", "password": GOOD, "repeat": GOOD})
        assert form.validate(), form.errors
        form = PasswordChangeForm(data={"current": "old", "new": short, "repeat": short})
        assert not form.validate() and form.new.errors
