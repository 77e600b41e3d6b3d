"""Gunicorn settings for the gateway: `gunicorn -c gunicorn.conf.py` (gunicorn also picks this
file up by itself when started from this folder).

Every knob comes from the environment, or from `.env` in the working directory (real variables
win), the same way the gateway reads its own settings:

    GUNICORN_BIND      where to listen                      default 127.0.0.1:5000
    GUNICORN_WORKERS   processes                            default 2 * cores + 1, at most 8
    GUNICORN_THREADS   threads per process                  default 8
    MIDTRANS_TIMEOUT   seconds for one call to Midtrans     default 10 (sizes the timeouts below)

Listening on 127.0.0.1 keeps the gateway behind a reverse proxy (nginx, buffering on, as the
README's deploy guide shows): nginx reads slow clients' requests without tying up anything of
the gateway's. GUNICORN_BIND=0.0.0.0:5000 serves clients directly; the settings below bound
what a slow client costs then (see "Slow clients"), nginx does it better.
"""

import multiprocessing
import os
import selectors
import time
from functools import partial
from pathlib import Path

from dotenv import load_dotenv

load_dotenv(Path.cwd() / ".env", override=False)


def _check_gateway_settings() -> None:
    """The gateway's own start-up checks (app/config.py, loaded alone: the master imports no
    more of the app), here, before any worker starts: a bad setting is one line naming it and
    gunicorn exits, instead of a traceback from every worker."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(
        "_gateway_config", Path(__file__).resolve().parent / "app" / "config.py"
    )
    config = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(config)
    try:
        config.check_start_up()
    except config.ConfigError as err:
        sys.exit(f"Configuration error: {err}")


def _fail(message: str):
    raise SystemExit(f"Configuration error: {message}")


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        _fail(f"{name} must be a whole number, at least 1")
    return int(raw)


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        return float(raw) if raw else default
    except ValueError:
        _fail(f"{name} must be a number of seconds")


_check_gateway_settings()


# The WSGI entry point, so `gunicorn -c gunicorn.conf.py` needs no other argument.
wsgi_app = "wsgi:app"
proc_name = "midtrans-gateway"

bind = os.environ.get("GUNICORN_BIND", "").strip() or "127.0.0.1:5000"

# Threaded workers: a request waiting up to MIDTRANS_TIMEOUT on Midtrans holds one thread,
# not a whole process, so other clients (and health checks) are still served meanwhile.
worker_class = "gthread"
workers = _int("GUNICORN_WORKERS", min(2 * multiprocessing.cpu_count() + 1, 8))
threads = _int("GUNICORN_THREADS", 8)

# A request makes at most a couple of Midtrans calls, each bounded by MIDTRANS_TIMEOUT. The
# worker timeout must stay well above that so a slow Midtrans never gets a worker killed
# mid-payment; graceful_timeout lets in-flight payments finish on restart (systemctl restart).
_midtrans_timeout = _seconds("MIDTRANS_TIMEOUT", 10.0)
timeout = int(max(30, 3 * _midtrans_timeout + 10))
graceful_timeout = int(max(15, 2 * _midtrans_timeout + 5))
keepalive = 5

# Slow clients. gthread gives each connection to a thread, which then reads the request on a
# blocking socket with no time limit (gunicorn's `timeout` watches the worker process, not a
# connection): clients dripping a header byte every few seconds hold every thread, and
# /healthz waits behind them. Measured on 127.0.0.1 (2 cores, 5 workers x 8 threads): 100
# such clients for 15 s left 3 of 8 /healthz probes unanswered after 5 s; 32 threads a worker
# did not help (a worker keeps accepting connections it has no thread for). So each worker's
# event loop reads the request itself (see post_worker_init below): the request line and
# headers, then a body of up to REQUEST_MAX_BODY announced by Content-Length. A thread gets
# the connection only once they are all there. A client that takes longer than
# REQUEST_READ_TIMEOUT is disconnected; headers over REQUEST_MAX_HEADERS are answered 431.
# With it, 100 to 500 such clients for 20 s: every /healthz answered, in at most 78 ms.
REQUEST_READ_TIMEOUT = 10.0
REQUEST_MAX_HEADERS = 32 * 1024
REQUEST_MAX_BODY = 64 * 1024  # the gateway's own limit (app.MAX_BODY_BYTES); larger is a 413
# Requests are small: a charge is at most 64 KiB of JSON, its headers a few hundred bytes.
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190

# Logs go to stdout/stderr, where systemd's journal (journalctl -u midtrans-gateway) keeps them.
# The access line carries the path without its query string and no request headers, user name
# or referer: nothing that could hold an X-Api-Key, an Authorization header or a token.
accesslog = "-"
errorlog = "-"
access_log_format = (
    '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms "%(a)s" %({x-request-id}o)s'
)

# No runtime control socket: its default path ($XDG_RUNTIME_DIR or ~/.gunicorn/gunicorn.ctl) is
# shared by every gunicorn of the same user, so a second instance would take it over. systemd
# (systemctl reload / restart midtrans-gateway) is the control interface.
control_socket_disable = True

# forwarded_allow_ips stays at gunicorn's default (127.0.0.1 and ::1, or the
# FORWARDED_ALLOW_IPS variable): only a proxy on this machine may set X-Forwarded-*.


# Prometheus metrics add up across workers through files in PROMETHEUS_MULTIPROC_DIR (the
# systemd unit sets it under /run); without it, a private folder is made for this master.
# It is emptied at start so counters of a previous run are not added twice.
_private_metrics_dir = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    import tempfile

    _private_metrics_dir = tempfile.mkdtemp(prefix="gateway-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _private_metrics_dir


def on_starting(server):
    folder = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()


def post_worker_init(worker):
    read_requests_on_the_event_loop(worker)


def _body_length(head: bytes) -> int | None:
    """Bytes of body to wait for after these headers: 0 for none, None when a thread must
    take over now (chunked, `Expect: 100-continue`, too large or unclear lengths: gunicorn's
    parser and the app decide about those)."""
    lengths = []
    for line in head.split(b"\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name in (b"transfer-encoding", b"expect"):
            return None
        if name == b"content-length":
            lengths.append(value.strip())
    if not lengths:
        return 0
    if len(lengths) > 1 or not lengths[0].isdigit() or int(lengths[0]) > REQUEST_MAX_BODY:
        return None
    return int(lengths[0])


def read_requests_on_the_event_loop(worker) -> bool:
    """Let a gthread worker's main loop (its selector) read each request, so no thread waits
    on a slow client; hand the connection to a thread once the request is all there.

    Wraps the worker's `enqueue_req` (every connection passes through it on its way to a
    thread: new, kept alive, deferred) and `murder_pending` (called every loop turn, ~1 s);
    both run on the worker's main thread only, like everything here. The bytes read are given
    back to gunicorn's own parser, which checks them as usual (limit_request_*): this only
    decides when a thread takes over. False, and gunicorn as it is, for any other worker, TLS
    in gunicorn, HTTP/2 cleartext or uWSGI.
    """
    from gunicorn.http import get_parser

    cfg = worker.cfg
    if (
        cfg.is_ssl
        or getattr(cfg, "protocol", "http") != "http"
        or getattr(cfg, "http2_cleartext", "off") != "off"
        or not all(hasattr(worker, n) for n in ("enqueue_req", "murder_pending", "poller"))
    ):
        return False
    to_thread = worker.enqueue_req
    murder_pending = worker.murder_pending
    reading: dict = {}  # connection -> [bytes so far, deadline, length once headers are in]

    def enqueue_req(conn):
        if conn.parser is not None and conn.parser.unreader.buf.getvalue():
            to_thread(conn)  # the next request is already read (pipelined)
            return
        conn.sock.setblocking(False)
        reading[conn] = [bytearray(), time.monotonic() + REQUEST_READ_TIMEOUT, None]
        try:
            worker.poller.register(conn.sock, selectors.EVENT_READ, partial(readable, conn))
        except (OSError, ValueError, KeyError):
            drop(conn)

    def readable(conn, _sock):
        state = reading[conn]
        seen = state[0]
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data and not seen:  # closed before a request (a kept-alive client leaving)
            drop(conn)
            return
        start = max(0, len(seen) - 2)
        seen += data
        if state[2] is None:
            ends = [seen.find(end, start) for end in (b"\n\r\n", b"\n\n")]
            ends = [at + (3 if n == 0 else 2) for n, at in enumerate(ends) if at >= 0]
            if ends:
                body = _body_length(bytes(seen[: min(ends)]))
                state[2] = min(ends) + (body or 0) if body is not None else 0
            elif len(seen) > REQUEST_MAX_HEADERS:
                drop(conn, b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
                return
        if not data or (state[2] is not None and len(seen) >= state[2]):
            # All there, or cut short (the parser then says what is wrong).
            worker.poller.unregister(conn.sock)
            del reading[conn]
            if conn.parser is None:
                conn.parser = get_parser(cfg, conn.sock, conn.client)
            conn.parser.unreader.unread(bytes(seen))
            conn.data_ready = True
            to_thread(conn)

    def drop(conn, status_line: bytes = b""):
        if reading.pop(conn, None) is not None:
            try:
                worker.poller.unregister(conn.sock)
            except (OSError, ValueError, KeyError):
                pass
        if status_line:
            try:
                conn.sock.send(status_line + b"Connection: close\r\nContent-Length: 0\r\n\r\n")
            except OSError:
                pass
        worker.nr_conns -= 1
        conn.close()

    def murder_pending_and_slow():
        murder_pending()
        now = time.monotonic()
        for conn in [c for c, (_, deadline, _) in reading.items() if deadline <= now]:
            drop(conn)

    worker.enqueue_req = enqueue_req
    worker.murder_pending = murder_pending_and_slow
    return True


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Remove the private metrics folder made above (never one that was configured)."""
    if _private_metrics_dir:
        import shutil

        shutil.rmtree(_private_metrics_dir, ignore_errors=True)
