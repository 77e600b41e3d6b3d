"""Gunicorn settings for the gateway: `gunicorn -c gunicorn.conf.py` (gunicorn also picks this
file up by itself when started from this folder).

Every knob comes from the environment, or from `.env` in the working directory (real variables
win), the same way the gateway reads its own settings:

    GUNICORN_BIND      where to listen                      default 127.0.0.1:5000
    GUNICORN_WORKERS   processes                            default 2 * cores + 1, at most 8
    GUNICORN_THREADS   threads per process                  default 8
    MIDTRANS_TIMEOUT   seconds for one call to Midtrans     default 10 (sizes the timeouts below)

Listening on 127.0.0.1 keeps the gateway behind a reverse proxy (nginx) on a VPS; set
GUNICORN_BIND=0.0.0.0:5000 only to serve clients directly.
"""

import multiprocessing
import os
from pathlib import Path

from dotenv import load_dotenv

load_dotenv(Path.cwd() / ".env", override=False)


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    value = int(raw)
    if value < 1:
        raise ValueError(f"{name} must be at least 1")
    return value


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


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


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Remove the private metrics folder made above (never one that was configured)."""
    if _private_metrics_dir:
        import shutil

        shutil.rmtree(_private_metrics_dir, ignore_errors=True)
