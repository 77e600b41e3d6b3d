"""A PostgreSQL database of its own for one bench run: BENCH_DATABASE_URL names the server
(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres, any database the user may
connect to); the run creates `bench_<pid>_<time>` there and drops it at the end."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import make_url

VARIABLE = "BENCH_DATABASE_URL"


def configured() -> str | None:
    """BENCH_DATABASE_URL when it names a PostgreSQL server (else None; another scheme is an
    error, said plainly)."""
    url = os.environ.get(VARIABLE, "").strip()
    if not url:
        return None
    if not make_url(url).drivername.startswith("postgresql"):
        raise SystemExit(f"{VARIABLE} must be a postgresql+psycopg:// URL, not {url.split(':')[0]}")
    return url


@contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    """A new, empty database on that server for the block; its SQLAlchemy URL. Dropped after."""
    import psycopg

    url = make_url(server_url).set(drivername="postgresql+psycopg")
    name = f"bench_{os.getpid()}_{int(time.time())}"
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
