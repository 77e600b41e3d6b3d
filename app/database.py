"""Database engine behaviour that the rest of the code relies on.

SQLite: WAL (readers never block the writer), a busy timeout (writers queue instead of failing),
foreign keys on, and every transaction begins IMMEDIATE unless it is a `reading()` unit: it
takes the write lock up front, so several gunicorn workers queue on the busy timeout instead of
failing with "database is locked" when a read snapshot cannot be upgraded to a write
(SQLITE_BUSY_SNAPSHOT ignores the busy timeout, so a deferred transaction that writes fails
under concurrency, even a lone UPDATE). Reads are `reading()` units: a plain BEGIN that never
waits for a writer. Sessions do not expire objects on commit (see extensions.py), so reading an
attribute after a unit opens no transaction, and none is held across a call to Midtrans or a
client app; row locks re-read with `populate_existing`.

On SQLite the threads of one process also queue for the write lock on a Python lock
(`writing()`), in order, instead of each polling the database file: SQLite's busy handler
sleeps 1 to 100 ms between tries, so under concurrency most of a writer's wait was sleep
after the lock had already been freed. Processes still meet in the busy timeout.

PostgreSQL needs none of this: row locks (`SELECT ... FOR UPDATE`) do the same job there.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.orm import Session

from .extensions import db

SQLITE_BUSY_TIMEOUT_MS = 15_000
_READ_ONLY = "gateway_sqlite_read_only"
_DML = {"INSERT", "UPDATE", "DELETE", "REPLAC"}
_UNIT = "gateway_unit"  # session.info: "write" or "read" while a unit of work is open
# A SQLite engine's lock, which this process's writers queue on (see `writing()`).
_WRITERS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
log = logging.getLogger(__name__)


def configure_engine(engine: Engine) -> None:
    @event.listens_for(engine, "handle_error")
    def _discard_failed_connection(context):
        """A connection that failed at the database level is never reused: the next request
        gets a fresh one, so the gateway recovers by itself once the database does. (A
        SQLite connection opened while the file was read-only stays read-only forever; one
        that hit a full disk may keep a broken journal.) PostgreSQL's lost connections are
        recognised by the driver already; this adds SQLite's."""
        if (
            engine.dialect.name == "sqlite"
            and isinstance(context.sqlalchemy_exception, OperationalError)
            and "locked" not in str(context.original_exception)  # busy: the connection is fine
        ):
            # Every pooled connection may be in the same state: none made before now is
            # reused, so one failure after the fault clears is the last.
            context.is_disconnect = True
            context.invalidate_pool_on_disconnect = True

    if engine.dialect.name != "sqlite":
        return
    _WRITERS[engine] = threading.Lock()

    database_file = (
        engine.url.database if engine.url.database not in (None, "", ":memory:") else None
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, record):
        # SQLite opens a file it cannot write read-only, silently, and such a connection
        # stays read-only after the file is writable again: remember it, and trade it for a
        # fresh one once the file can be written (reads meanwhile still work).
        record.info["read_only"] = database_file is not None and not _writable(database_file)
        # Let SQLAlchemy's "begin" event emit BEGIN instead of pysqlite's implicit one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "checkout")
    def _on_checkout(_dbapi_connection, record, _proxy):
        if record.info.get("read_only") and _writable(database_file):
            raise DisconnectionError("opened read-only; the file is writable again")

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        write = not connection.get_execution_options().get(_READ_ONLY)
        connection.info["gateway_write"] = write
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    @event.listens_for(engine, "before_cursor_execute")
    def _check_write(connection, _cursor, statement, _params, _context, _many):
        if (
            connection.in_transaction()
            and not connection.info.get("gateway_write")
            and statement.lstrip()[:6].upper() in _DML
        ):
            log.error("write in a reading() unit (risks 'database is locked'): %.60s", statement)


def _writable(path: str) -> bool:
    """Whether this process could open the database file for writing (a missing file: SQLite
    creates it). Never by open() and close(): close() drops every POSIX lock this process
    holds on the file (SQLite's), so another process could delete the WAL under our feet.
    access() sees the read-only mount and the immutable flag, for root too."""
    return not os.path.exists(path) or os.access(path, os.W_OK)


def _fresh_transaction(**options) -> None:
    session = db.session()
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("a new transaction was requested with unsaved changes in the session")
    if session.in_transaction():
        session.commit()
    session.connection(execution_options=options)


def _begin_write() -> None:
    """Start a fresh write transaction (ending a read-only one still open, e.g. the API-key
    lookup). On SQLite it holds the write lock from its first statement; on PostgreSQL the
    caller locks the rows it changes with `SELECT ... FOR UPDATE`."""
    _fresh_transaction()


def _begin_read() -> None:
    """Start a transaction that only reads, so on SQLite it never waits for writers (a
    read-only one already open is kept). A write in it would risk "database is locked" (and is
    logged)."""
    session = db.session()
    if session.in_transaction() and not (session.new or session.dirty or session.deleted):
        connection = session.connection()
        if connection.get_execution_options().get(_READ_ONLY):
            return
    _fresh_transaction(**{_READ_ONLY: True})


@contextmanager
def writing() -> Iterator[Session]:
    """One unit of work that writes: a fresh write transaction (ending a read still open, e.g.
    the API-key lookup), committed when the block ends and rolled back if it raises.

    A `writing()` inside another joins it: only the outermost commits, so a service function
    never commits in the middle of its caller's unit. Never hold one across a call to
    Midtrans or a client app. Inside a `reading()` it is an error: end the read first (on
    SQLite a read cannot become a write without risking "database is locked")."""
    session = db.session()
    unit = session.info.get(_UNIT)
    if unit == "write":
        yield session
        return
    if unit == "read":
        raise RuntimeError("writing() inside reading(): end the read first")
    writers = _writers(session)
    if writers is not None and not writers.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
        raise OperationalError("BEGIN IMMEDIATE", None, sqlite3.OperationalError(_LOCKED))
    try:
        _begin_write()  # inside the try: a BEGIN that fails (database locked or down) is undone
        session.info[_UNIT] = "write"
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.info.pop(_UNIT, None)
        if writers is not None:
            writers.release()


_LOCKED = "database is locked (this process's writers queued longer than the busy timeout)"


def _writers(session: Session) -> threading.Lock | None:
    """The lock this process's writers to a SQLite database queue on (None: PostgreSQL)."""
    return _WRITERS.get(session.get_bind())


@contextmanager
def reading() -> Iterator[Session]:
    """One unit of work that only reads: on SQLite it never waits for writers. It ends when
    the block does, so no transaction stays open across a call to Midtrans or a client app.
    Inside any other unit it joins that one. Objects read keep their values afterwards."""
    session = db.session()
    if session.info.get(_UNIT):
        yield session
        return
    try:
        _begin_read()
        session.info[_UNIT] = "read"
        yield session
    except BaseException:
        session.rollback()
        raise
    else:
        if session.new or session.dirty or session.deleted:
            session.rollback()
            raise RuntimeError("a reading() unit changed objects: use writing()")
        session.commit()  # ends the read; there is nothing to write
    finally:
        session.info.pop(_UNIT, None)


def lock_row(model, row_id: int):
    """The row, locked for this write transaction and read afresh (another worker may have
    changed it since this session last saw it); None when there is no such row."""
    return db.session.execute(
        select(model)
        .where(model.id == row_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
