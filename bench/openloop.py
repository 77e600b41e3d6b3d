"""An open-loop HTTP/1.1 load generator: requests start on a fixed schedule (rate per second)
over a pool of keep-alive connections, whether or not earlier ones have answered.

Latency is measured from the moment a request was *due*, so a server that falls behind shows it
in the percentiles instead of silently slowing the client down (wrk's closed loop cannot show
that: its clients wait). Prints one line `BENCH_RESULT {json}`.

    python -m bench.openloop --port 5000 --path /charge --mode charge --rate 100 --seconds 15 \\
        --connections 200 --header 'X-App-Code: shop' --header 'X-Api-Key: ...'
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter

REQUEST_TIMEOUT = 10.0
# Requests still unanswered this long after the last one was due are given up (and counted).
GRACE = 10.0


class Connection:
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.used = False

    async def open(self) -> Connection:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.used = False
        return self

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.writer = self.reader = None

    async def exchange(self, payload: bytes) -> int:
        """Send one request, read its whole answer; the HTTP status."""
        self.writer.write(payload)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionResetError("closed before answering")
        status = int(status_line.split()[1])
        length, close = 0, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip())
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        if length:
            await self.reader.readexactly(length)
        self.used = True
        if close:
            self.close()
        return status


def build(method: str, host: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def run(args) -> dict:
    loop = asyncio.get_running_loop()
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    pool = [Connection(args.host, args.port) for _ in range(args.connections)]
    await asyncio.gather(*(c.open() for c in pool))
    for conn in pool:
        idle.put_nowait(conn)

    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    reconnects = 0

    def payload(i: int) -> bytes:
        body = b""
        if args.mode == "charge":
            body = json.dumps({"order_id": f"{args.tag}-{i}", "amount": 10000}).encode()
        return build(args.method, f"{args.host}:{args.port}", args.path, headers, body)

    async def one(i: int, due: float) -> None:
        nonlocal reconnects
        conn = await idle.get()
        try:
            for attempt in range(2):
                try:
                    if conn.writer is None:
                        await conn.open()
                        reconnects += 1
                    status = await asyncio.wait_for(conn.exchange(payload(i)), REQUEST_TIMEOUT)
                    break
                except (ConnectionError, asyncio.IncompleteReadError) as err:
                    # A keep-alive connection the server closed meanwhile: open a new one once.
                    stale = conn.used and attempt == 0
                    conn.close()
                    if not stale:
                        raise err
            latencies.append(loop.time() - due)
            statuses[str(status)] += 1
            if status >= 400:
                errors["status"] += 1
        except TimeoutError:
            conn.close()
            errors["timeout"] += 1
            latencies.append(loop.time() - due)  # a lower bound: it never answered
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
            conn.close()
            errors["connection"] += 1
        finally:
            idle.put_nowait(conn)

    total = int(args.rate * args.seconds)
    start = loop.time() + 0.1
    tasks: dict[asyncio.Task, float] = {}
    for i in range(total):
        due = start + i / args.rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks[asyncio.create_task(one(i, due))] = due
    _, late = await asyncio.wait(tasks, timeout=GRACE)
    finished = loop.time()
    for task in late:
        task.cancel()
        latencies.append(finished - tasks[task])  # a lower bound: it never answered
    if late:
        errors["unfinished"] += len(late)
        await asyncio.wait(late)
    for conn in pool:
        conn.close()

    ordered = sorted(latencies)

    def pct(p: float) -> float:
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered))) - 1))]

    ok = sum(n for s, n in statuses.items() if int(s) < 400)
    return {
        "requests": len(latencies),
        "scheduled": total,
        "offered_rps": args.rate,
        "ok": ok,
        "schedule_s": total / args.rate,
        "wall_s": finished - start,
        "statuses": dict(statuses),
        "errors": dict(errors),
        "reconnects": reconnects,
        "latency_us": {
            "p50": pct(50) * 1e6,
            "p90": pct(90) * 1e6,
            "p95": pct(95) * 1e6,
            "p99": pct(99) * 1e6,
            "max": (ordered[-1] if ordered else 0) * 1e6,
            "mean": (sum(ordered) / len(ordered) if ordered else 0) * 1e6,
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.openloop", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--method", default="POST")
    parser.add_argument("--path", required=True)
    parser.add_argument("--mode", choices=("charge", "plain"), default="charge")
    parser.add_argument("--tag", default=f"ol{int(time.time())}")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--header", action="append", default=[], help="'Name: value'")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("only this machine (127.0.0.1) may be loaded")
    result = asyncio.run(run(args))
    print("BENCH_RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
