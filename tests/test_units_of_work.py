"""Units of work (`app.database.writing` / `reading`), on SQLite and on PostgreSQL: a change
commits at the end of its `writing()` block or not at all, a service function's unit inside
another's joins it, and a read ends with its block. What is committed is read back over a
connection of its own, as another gunicorn worker would see it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app import apps
from app.database import reading, writing
from app.extensions import db
from app.models import App


def new_app(code: str) -> App:
    return App(code=code, name=code, key_hash="0" * 64, key_hint="0000…", order_prefix=f"{code}-")


def committed(sql: str) -> list[tuple]:
    """What another connection sees (a plain driver connection: no BEGIN IMMEDIATE, which on
    SQLite would wait for the unit's write lock)."""
    other = db.engine.raw_connection()
    try:
        cursor = other.cursor()
        cursor.execute(sql)
        rows = [tuple(row) for row in cursor.fetchall()]
        other.rollback()
        return rows
    finally:
        other.close()


def committed_codes() -> set[str]:
    return {code for (code,) in committed("SELECT code FROM apps")}


def in_transaction() -> bool:
    return db.session().in_transaction()


def test_a_write_commits_when_its_block_ends(app):
    with app.app_context():
        with writing() as session:
            session.add(new_app("one"))
            session.flush()
            assert committed_codes() == set()  # flushed, not committed: nobody else sees it
        assert committed_codes() == {"one"}
        assert not in_transaction()


def test_a_write_that_raises_changes_nothing_and_the_session_goes_on(app):
    with app.app_context():
        with pytest.raises(ValueError, match="boom"), writing() as session:
            session.add(new_app("lost"))
            session.flush()
            raise ValueError("boom")
        assert committed_codes() == set()
        with writing() as session:  # nothing left behind blocks the next unit
            session.add(new_app("kept"))
        assert committed_codes() == {"kept"}


def test_a_write_inside_a_write_joins_it_and_only_the_outermost_commits(app):
    with app.app_context():
        with writing() as outer:
            outer.add(new_app("outer"))
            with writing() as inner:
                assert inner is outer
                inner.add(new_app("inner"))
            assert committed_codes() == set()  # the inner block's end committed nothing
        assert committed_codes() == {"outer", "inner"}


def test_a_service_functions_unit_inside_a_failing_unit_is_undone_with_it(app):
    """`apps.set_active` writes in a unit of its own; called inside the caller's unit it joins
    it, so the caller failing afterwards undoes it too: no commit in the middle."""
    with app.app_context():
        with writing() as session:
            session.add(new_app("shop"))
        with reading() as session:
            app_id = session.execute(select(App.id).where(App.code == "shop")).scalar_one()
        with pytest.raises(RuntimeError, match="after"), writing():
            apps.set_active(app_id, False)
            raise RuntimeError("the caller fails after the service call")
        assert committed("SELECT active FROM apps WHERE code = 'shop'") in ([(True,)], [(1,)])


def test_a_write_inside_a_read_is_refused(app):
    with app.app_context():
        with pytest.raises(RuntimeError, match="inside reading"), reading():
            with writing() as session:
                session.add(new_app("never"))
        assert committed_codes() == set()


def test_a_read_inside_a_write_joins_it(app):
    with app.app_context():
        with writing() as session:
            session.add(new_app("w"))
            with reading() as read:
                assert read is session
                assert read.execute(select(App.code)).scalars().all() == ["w"]
            assert committed_codes() == set()  # the read's end did not commit the write
        assert committed_codes() == {"w"}


def test_a_read_ends_with_its_block_and_its_objects_keep_their_values(app):
    with app.app_context():
        with writing() as session:
            session.add(new_app("shop"))
        with reading() as session:
            shop = session.execute(select(App).where(App.code == "shop")).scalar_one()
            assert in_transaction()
        assert not in_transaction()  # no transaction held past the block
        assert (shop.code, shop.order_prefix, shop.active) == ("shop", "shop-", True)
        assert not in_transaction()  # reading them opened none either


def test_a_read_that_changes_objects_is_refused_and_the_change_dropped(app):
    with app.app_context():
        with writing() as session:
            session.add(new_app("shop"))
        with pytest.raises(RuntimeError, match="use writing"), reading() as session:
            session.execute(select(App).where(App.code == "shop")).scalar_one().name = "renamed"
        assert committed("SELECT name FROM apps WHERE code = 'shop'") == [("shop",)]


def test_a_read_that_raises_ends_too(app):
    with app.app_context():
        with pytest.raises(LookupError), reading() as session:
            session.execute(select(App)).all()
            raise LookupError("not found")
        assert not in_transaction()
        with writing() as session:  # and a write may start at once
            session.add(new_app("next"))
        assert committed_codes() == {"next"}


def test_on_sqlite_a_read_never_takes_the_write_lock(app):
    """A `reading()` is a plain BEGIN: it goes on while another connection holds the write
    lock (a write unit would wait for it)."""
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            pytest.skip("SQLite only: PostgreSQL readers never wait for writers")
        with writing() as session:
            session.add(new_app("shop"))
        with db.engine.connect() as other:
            other.exec_driver_sql("UPDATE apps SET name = 'busy'")  # BEGIN IMMEDIATE: locked
            with reading() as session:
                assert session.execute(select(App.name)).scalar_one() == "shop"
            other.rollback()
