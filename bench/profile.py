"""Where the gateway's time goes on its hot paths, sampled with py-spy under wrk load.

    .venv/bin/python -m bench.profile [--seconds 8] [--connections 8] [--cpu]

For each of POST /charge, GET /status and POST /notification (upstream at 0 ms) it samples the
gunicorn master and workers, idle waits included, at 1 client (no contention: close to the CPU
each request costs, plus its wait on the simulator) and at --connections clients (where requests
wait on each other: SQLite's write lock, the GIL, log handler locks). Only threads inside a
request are counted. Raw stacks and `summary.md` go to bench/results/profile/; the summary is
printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from . import load
from .run import RESULTS, start_stack, warm_up
from .stack import REPO

PYSPY = str(Path(sys.executable).parent / "py-spy")
KINDS = ("charge", "status", "notification")
REQUEST_FRAME = "handle_request (gunicorn/workers/gthread.py"

# label -> frame substrings; a sample counts for a label when any frame of its stack matches.
CATEGORIES = {
    "HTTP call to Midtrans (midtransclient + the pooled transport)": [
        "MidtransTransport.request (app/midtrans_transport.py"
    ],
    "midtransclient, its whole call (the HTTP call above included)": [
        "(midtransclient/",
    ],
    "SQLAlchemy: Session.commit / flush": ["commit (sqlalchemy/orm/session.py"],
    "SQLAlchemy: Session.execute (ORM queries)": ["execute (sqlalchemy/orm/session.py"],
    "SQLAlchemy: Session.get": ["get (sqlalchemy/orm/session.py"],
    "SQLite BEGIN / BEGIN IMMEDIATE (reading()/writing())": ["_fresh_transaction (app/"],
    "pool checkout + pre_ping": ["_checkout (sqlalchemy/pool/base.py", "_do_ping"],
    "auth: app lookup, key hash, last_used (authenticate_app)": ["authenticate_app (app/auth.py"],
    "API key hashing (hash_api_key)": ["hash_api_key (app/auth.py"],
    "notification signature (sha512)": ["signature_matches (app/midtrans.py"],
    "outbox: callback payload (enqueue_update)": ["enqueue_update (app/payments/callbacks.py"],
    "app logging (logging + redaction)": ["logging/__init__.py", "app/logs.py"],
    "gunicorn access log": ["access (gunicorn/glogging.py"],
    "observability hooks": ["app/observability.py"],
    "admin hooks on every request (security headers, i18n)": ["app/admin/"],
    "JSON encode/decode": ["json/encoder.py", "json/decoder.py", "json/provider.py"],
    "charge parsing (schemas)": ["app/schemas.py"],
}


def record(master: int, seconds: int, out: Path, *, idle: bool = True) -> None:
    argv = [PYSPY, "record", "--pid", str(master), "--subprocesses", "--format", "raw"]
    argv += ["--rate", "200", "--duration", str(seconds), "--output", str(out)]
    # --idle: py-spy's idle detection misses threads blocked in C (SQLite's busy wait), so
    # keep every sample and select the request threads afterwards. Without it (--cpu): only
    # samples of threads running on a CPU, which is what server CPU per request is made of.
    argv += ["--idle"] if idle else []
    subprocess.run(argv, check=True, capture_output=True)


def read_stacks(path: Path) -> Counter[str]:
    stacks: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if count.isdigit():
            stacks[stack] += int(count)
    return stacks


def shares(stacks: Counter[str]) -> tuple[int, dict[str, float]]:
    total = sum(stacks.values()) or 1
    result = {}
    for label, needles in CATEGORIES.items():
        hit = sum(n for s, n in stacks.items() if any(needle in s for needle in needles))
        result[label] = hit / total
    return total, result


def top_sites(stacks: Counter[str], limit: int = 12) -> list[tuple[str, float]]:
    """Where time is spent: the innermost frame of the gateway's own code, and the frame
    actually running (or waiting) under it."""
    total = sum(stacks.values()) or 1
    sites: Counter[str] = Counter()
    for stack, count in stacks.items():
        frames = stack.split(";")
        ours = [f for f in frames if "(app/" in f]
        leaf = _short(frames[-1])
        sites[f"{ours[-1] if ours else '(outside app/)'} <- {leaf}"] += count
    return [(name, n / total) for name, n in sites.most_common(limit)]


def inclusive(stacks: Counter[str], limit: int = 25) -> list[tuple[str, float]]:
    """The functions whose calls (callees included) hold the largest share of the samples."""
    total = sum(stacks.values()) or 1
    held: Counter[str] = Counter()
    for stack, count in stacks.items():
        for frame in {_short(f).split(":")[0] for f in stack.split(";")}:
            held[frame] += count
    skip = (
        "process ",
        "gunicorn/",
        "threading.py",
        "concurrent/",
        "flask/app.py",
        "werkzeug/",
        "<module>",
    )
    found = [(f, n / total) for f, n in held.most_common() if not any(x in f for x in skip)]
    return found[:limit]


def _short(frame: str) -> str:
    for marker in ("site-packages/", "/lib/python3.11/", str(REPO) + "/"):
        if marker in frame:
            head, _, tail = frame.partition("(")
            return head + "(" + tail.split(marker, 1)[-1]
    return frame


def request_stacks(path: Path) -> Counter[str]:
    """Samples of threads inside a request (idle waits included), not idle pool threads."""
    return Counter({s: n for s, n in read_stacks(path).items() if REQUEST_FRAME in s})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="count only samples running on a CPU (not waits), and list the functions that "
        "hold the most of it",
    )
    args = parser.parse_args(argv)
    if not Path(PYSPY).exists():
        raise SystemExit(
            f"py-spy is missing: {sys.executable} -m pip install -r requirements-dev.txt"
        )
    out_dir = RESULTS / "profile"
    out_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="midtrans-profile-"))
    stack = None
    what = "CPU: running only" if args.cpu else "wall time: running or waiting"
    lines = [
        f"# Gateway profile (py-spy, upstream 0 ms, {args.seconds} s per recording, {what})",
        "",
    ]
    try:
        stack = start_stack(workdir, floor=False)
        warm_up(stack)
        master = stack.servers["gateway"].pid
        port = stack.ports["gateway"]
        for kind in KINDS:
            _, endpoint, config = stack.kinds[kind]
            lines += [f"## {endpoint}", ""]
            for clients in (1, args.connections):
                raw = out_dir / f"{kind}-c{clients}.txt"
                env = {f"BENCH_{k.upper()}": v for k, v in config.items()}
                env["BENCH_TAG"] = f"p{kind[0]}{clients}x{int(time.time())}"
                wrk = subprocess.Popen(
                    [
                        load.require_wrk(),
                        "-t",
                        "1",
                        "-c",
                        str(clients),
                        "-d",
                        f"{args.seconds + 2}s",
                        "--timeout",
                        "10s",
                        "-s",
                        str(load.WRK_LUA),
                        f"http://127.0.0.1:{port}",
                    ],
                    env={**os.environ, **env},
                    stdout=subprocess.DEVNULL,
                )
                time.sleep(1)
                record(master, args.seconds, raw, idle=not args.cpu)
                wrk.wait()
                load.drain(stack.servers["gateway"])
                stacks = request_stacks(raw)
                total, found = shares(stacks)
                lines += [
                    f"### {clients} client(s): {total} samples of request threads ({what})",
                    "",
                    "| where | share |",
                    "|---|--:|",
                ]
                lines += [f"| {k} | {v:.0%} |" for k, v in found.items() if v >= 0.005]
                lines += ["", "| gateway frame <- running/waiting frame | share |", "|---|--:|"]
                lines += [f"| `{k}` | {v:.1%} |" for k, v in top_sites(stacks)]
                if args.cpu:
                    lines += ["", "| function (its callees included) | share |", "|---|--:|"]
                    lines += [f"| `{k}` | {v:.1%} |" for k, v in inclusive(stacks)]
                lines.append("")
        summary = "\n".join(lines)
        (out_dir / "summary.md").write_text(summary)
        print(summary)
        print(f"Raw stacks and summary in {out_dir}")
        return 0
    finally:
        if stack is not None:
            stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
