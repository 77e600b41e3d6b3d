"""`python -m simulator`: serve the simulator with Werkzeug's threaded server, one process."""

import argparse
import logging
import os

from werkzeug.serving import ThreadedWSGIServer

from . import create_app
from .settings import DEFAULT_CLIENT_KEY, DEFAULT_SERVER_KEY


class _Server(ThreadedWSGIServer):
    """A thread per connection and a listen backlog deep enough for a burst of 200+ clients."""

    request_queue_size = 1024


def main(argv: list[str] | None = None) -> None:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    parser.add_argument("--host", default=env("SIMULATOR_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env("SIMULATOR_PORT", "5001")))
    parser.add_argument("--server-key", default=env("SIMULATOR_SERVER_KEY", DEFAULT_SERVER_KEY))
    parser.add_argument("--client-key", default=env("SIMULATOR_CLIENT_KEY", DEFAULT_CLIENT_KEY))
    parser.add_argument("--notification-url", default=env("SIMULATOR_NOTIFICATION_URL"))
    parser.add_argument("--latency-ms", type=int, default=int(env("SIMULATOR_LATENCY_MS", "0")))
    parser.add_argument(
        "--time-factor",
        type=float,
        default=float(env("SIMULATOR_TIME_FACTOR", "1")),
        help="multiplies notification retry waits, e.g. 0.001 runs 6 hours in 22 seconds",
    )
    parser.add_argument("--log-requests", action="store_true", help="log every HTTP request")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if not args.log_requests:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = create_app(
        {
            "SERVER_KEY": args.server_key,
            "CLIENT_KEY": args.client_key,
            "NOTIFICATION_URL": args.notification_url,
            "LATENCY_MS": args.latency_ms,
            "TIME_FACTOR": args.time_factor,
        }
    )
    server = _Server(args.host, args.port, app)
    logging.info("Midtrans simulator on http://%s:%s (dashboard /_sim/)", args.host, server.port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.server_close()


if __name__ == "__main__":
    main()
