"""What `make bench-cluster` (bench/cluster.py) runs in its own process beside the gateways:
a client app's callback receiver and the recorder of the simulator's notifications (HTTP servers
on 127.0.0.1), a PostgreSQL database and a Redis database of the run's own, and the CPU
accounting of the processes on this machine."""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import redis
import requests

from .processes import Process

POSTGRES = "postgresql://postgres@127.0.0.1:5432"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_MARKER = "bench_cluster:owner"
TICKS = os.sysconf("SC_CLK_TCK")


# -- recorders in this process ---------------------------------------------------------------


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes
    start: float  # time.monotonic() when the request was read
    end: float = 0.0  # when the answer was sent


class Recorder:
    """An HTTP server on 127.0.0.1 keeping every POST; `answer(hit)` gives its status after
    `hold` seconds."""

    def __init__(self, hold: float = 0.0, answer=None):
        self.hits: list[Hit] = []
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hit = Hit(self.path, dict(self.headers.items()), body, time.monotonic())
                if hold:
                    time.sleep(hold)
                status = answer(hit) if answer else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                hit.end = time.monotonic()
                with recorder.arrived:
                    recorder.hits.append(hit)
                    recorder.arrived.notify_all()

            def log_message(self, *_args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Notifications(Recorder):
    """Where the simulator posts its notifications: kept by Midtrans order id."""

    def bodies(self, order_id: str, count: int, timeout: float = 10) -> list[dict]:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                found = [json.loads(h.body) for h in self.hits if order_id.encode() in h.body]
                found = [b for b in found if b.get("order_id") == order_id]
                if len(found) >= count or time.monotonic() > deadline:
                    return found
                self.arrived.wait(0.2)


# -- PostgreSQL and Redis ---------------------------------------------------------------------


class Database:
    """A database of this run's own on the local PostgreSQL."""

    def __init__(self):
        self.name = f"bench_cluster_{os.getpid()}"
        self.url = f"{POSTGRES}/{self.name}"
        self._admin("CREATE DATABASE {}")
        self.connection = psycopg.connect(self.url, autocommit=True)

    def _admin(self, statement: str) -> None:
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
            admin.execute(statement.format(self.name))

    def rows(self, sql: str, *params) -> list[tuple]:
        return self.connection.execute(sql, params).fetchall()

    def value(self, sql: str, *params):
        return self.rows(sql, *params)[0][0]

    def sessions(self) -> int:
        """Connections ever opened to this database (PostgreSQL 14+; reported with a delay of
        up to a second)."""
        return (
            self.value("SELECT sessions FROM pg_stat_database WHERE datname = %s", self.name) or 0
        )

    def backends(self) -> list[int]:
        """The PostgreSQL processes serving this database (the gateways', the workers')."""
        return [
            pid
            for (pid,) in self.rows(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                self.name,
            )
        ]

    def watch_connections(self, stop: threading.Event, every: float = 0.25) -> threading.Thread:
        """Sample how many connections the run holds (`peak_connections`) until `stop`."""
        self.peak_connections = 0
        watcher = psycopg.connect(self.url, autocommit=True)

        def sample() -> None:
            with watcher:
                while not stop.wait(every):
                    count = watcher.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (self.name,)
                    ).fetchone()[0]
                    self.peak_connections = max(self.peak_connections, count - 2)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        return thread

    def drop(self) -> None:
        self.connection.close()
        self._admin("DROP DATABASE IF EXISTS {} WITH (FORCE)")


class RedisDb:
    """An empty Redis database (by number), marked as this run's: the rate limits' storage.
    Every key in it is this run's, and deleted at the end."""

    def __init__(self):
        for number in range(15, 0, -1):
            client = redis.Redis(REDIS_HOST, REDIS_PORT, db=number)
            if client.dbsize() == 0 and client.set(REDIS_MARKER, os.getpid(), nx=True):
                self.number, self.client = number, client
                self.uri = f"redis://{REDIS_HOST}:{REDIS_PORT}/{number}"
                return
            client.close()
        raise SystemExit("no empty Redis database (1..15) at 127.0.0.1:6379 for the run")

    def clean(self) -> int:
        keys = list(self.client.scan_iter(count=500))
        if keys:
            self.client.delete(*keys)
        self.client.close()
        return len(keys)


# -- HTTP clients (one keep-alive session a thread) --------------------------------------------

_local = threading.local()


def session() -> requests.Session:
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    return _local.session


# -- CPU --------------------------------------------------------------------------------------


def cpu_ticks(pids: list[int]) -> dict[int, int]:
    """utime + stime of each process, in clock ticks (a process gone is left out)."""
    found = {}
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        found[pid] = int(fields[11]) + int(fields[12])
    return found


def cpu_of(processes: list[Process]) -> float:
    return sum(p.cpu_seconds() for p in processes if p is not None)


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def machine_busy() -> float:
    """CPU seconds every process on the machine has spent (not idle, not waiting on I/O)."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / TICKS
