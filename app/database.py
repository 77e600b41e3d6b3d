"""Database engine behaviour that the rest of the code relies on.

SQLite: WAL (readers never block the writer), a busy timeout (writers queue instead of failing),
foreign keys on, and transactions that begin only when SQLAlchemy says so. A unit of work that
reads and then writes calls `begin_write()` first, which makes its BEGIN an IMMEDIATE one: the
write lock is taken up front, so several gunicorn workers queue on the busy timeout instead of
failing with "database is locked" when a read snapshot cannot be upgraded to a write.
PostgreSQL needs none of this: row locks (`SELECT ... FOR UPDATE`) do the same job there.
"""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.engine import Engine

from .extensions import db

SQLITE_BUSY_TIMEOUT_MS = 15_000
_IMMEDIATE = "gateway_sqlite_immediate"


def configure_engine(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy's "begin" event emit BEGIN instead of pysqlite's implicit one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        immediate = connection.get_execution_options().get(_IMMEDIATE)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def begin_write() -> None:
    """Open the session's transaction as a write transaction (IMMEDIATE on SQLite).

    Call it before the first statement of a unit of work that reads rows and then writes
    depending on what it read. A read-only transaction still open (e.g. the API-key lookup)
    is ended first; one holding unsaved changes is a programming error and raises.
    """
    session = db.session()
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("begin_write() called with unsaved changes in the session")
    if session.in_transaction():
        session.commit()
    session.connection(execution_options={_IMMEDIATE: True})
