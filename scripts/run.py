"""`make run`: the whole gateway on this machine in one command, ready to try.

On a fresh clone (no MIDTRANS_SERVER_KEY anywhere) it:
  1. writes `.env` with a random SECRET_KEY (an existing `.env` is never overwritten; one that
     lacks a SECRET_KEY gets one appended),
  2. creates or migrates the database (`flask --app wsgi db upgrade`); with the simulator and
     no DATABASE_URL it is instance/simulator.db, so pretend orders never mix with real ones;
     the simulator's settings go into a marked block at the end of `.env`, so that
     `flask --app wsgi ...` in this folder works on the same database as the running gateway,
  3. creates an admin `admin` and a client app `demo` when they are missing, and keeps their
     secrets in `instance/demo-credentials.txt` (mode 0600), since the gateway shows a key once,
  4. starts the Midtrans simulator, the gateway under gunicorn (gunicorn.conf.py) and, when the
     gateway has one, the background worker, wired together with environment variables,
  5. waits until /readyz answers, checks that the demo key it kept still works (an admin may
     have rotated it in the dashboard), and prints the URLs and a curl command to try.

With a real MIDTRANS_SERVER_KEY (in `.env` or the environment) it talks to Midtrans instead:
the sandbox, or production when MIDTRANS_IS_PRODUCTION=true, and starts no simulator.

Ctrl-C (or SIGTERM) stops every process it started. Ports: PORT (default 5000) for the gateway,
SIMULATOR_PORT (default 5001) for the simulator.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from dotenv import dotenv_values

REPO = Path(__file__).resolve().parent.parent
ENV_FILE = REPO / ".env"
CREDENTIALS_FILE = REPO / "instance" / "demo-credentials.txt"
SIMULATOR_DATABASE = REPO / "instance" / "simulator.db"
PYTHON = sys.executable

# The simulator is a local stand-in for Midtrans; its key guards nothing real.
SIMULATOR_KEY = "SB-Mid-server-local"
# The client key card tokens are made with (GET /config gives it to the payment page).
SIMULATOR_CLIENT_KEY = "SB-Mid-client-local"
ADMIN_USERNAME = "admin"
DEMO_APP = "demo"
READY_TIMEOUT = 60
STOP_TIMEOUT = 40  # above gunicorn's graceful_timeout, so in-flight payments can finish

NEW_ENV_FILE = """\
# Settings of midtrans-gateway (every setting is described in .env.example).
# Written by `make run`; real environment variables win over this file.
SECRET_KEY={secret_key}

# Leave MIDTRANS_SERVER_KEY empty to try everything against the local Midtrans simulator.
# Set it (from the Midtrans dashboard) to talk to the Midtrans sandbox; production needs
# MIDTRANS_IS_PRODUCTION=true as well (real money!).
# MIDTRANS_SERVER_KEY=SB-Mid-server-REDACTED
# MIDTRANS_CLIENT_KEY=SB-Mid-client-REDACTED
# MIDTRANS_IS_PRODUCTION=false
"""

# The block of `.env` that `make run` owns: rewritten by every run with the simulator, removed
# by a run against Midtrans itself. What the user writes outside it is never touched.
BLOCK_START = "# >>> make run: the local Midtrans simulator >>>"
BLOCK_END = "# <<< make run <<<"
BLOCK_COMMENT = """\
# Written by `make run`, so that `flask --app wsgi ...` in this folder uses the same database
# and Midtrans simulator as the gateway it runs. Every `make run` rewrites this block, and
# removes it once MIDTRANS_SERVER_KEY is set above (then Midtrans itself is used). Settings
# above take over at the next `make run`; do not edit the block itself.
"""
# Asked for with the demo key: a valid key gets 404 (no such order; nothing is looked up, as
# `:` is never part of an order id), a refused one 401.
KEY_CHECK_PATH = "/status/make-run:key-check"

CREDENTIALS_HEADER = """\
# Written by `make run` for local trying-out: the gateway shows these secrets only once and
# keeps only their hashes, so `make run` keeps them here to print them again. Delete this file
# (and rotate: flask --app wsgi apps rotate-key demo) if this machine is not yours alone.
"""


class Stop(Exception):
    """Raised by the SIGINT/SIGTERM handler to leave the main loop."""


def main() -> int:
    sys.stdout.reconfigure(line_buffering=True)
    os.chdir(REPO)  # the gateway reads `.env` from its working directory
    ensure_env_file()
    settings = read_settings()  # .env without make run's block, and the real environment
    port = int(settings.get("PORT") or 5000)
    simulator_port = int(settings.get("SIMULATOR_PORT") or 5001)
    use_simulator = not settings.get("MIDTRANS_SERVER_KEY", "").strip()
    gateway_url = f"http://127.0.0.1:{port}"
    simulator_url = f"http://127.0.0.1:{simulator_port}"

    check_port_free(port, "PORT")
    if use_simulator:
        check_port_free(simulator_port, "SIMULATOR_PORT")
    env = gateway_env(settings, port, simulator_url if use_simulator else None)
    write_env_block(wiring(env))

    migrate(env)
    credentials = read_credentials()
    ensure_admin(env, credentials)
    if use_simulator or not is_production(settings):
        ensure_demo_app(env, credentials)
    write_credentials(credentials)

    signal.signal(signal.SIGINT, raise_stop)
    signal.signal(signal.SIGTERM, raise_stop)
    children = Children()
    try:
        if use_simulator:
            children.start("simulator", simulator_command(simulator_port, port), env)
            wait_until_ok(f"{simulator_url}/_sim/config", children)
        children.start("gateway", [PYTHON, "-m", "gunicorn", "-c", "gunicorn.conf.py"], env)
        if worker_available(env):
            children.start("worker", flask_command("worker"), env)
        wait_until_ok(f"{gateway_url}/readyz", children)
        key_warning = check_demo_key(env, credentials, gateway_url)
        print_banner(
            settings,
            credentials,
            gateway_url,
            simulator_url if use_simulator else None,
            key_warning=key_warning,
        )
        return watch(children)
    except Stop:
        print("\nStopping ...")
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        children.stop_all()


def raise_stop(signum, _frame):
    raise Stop(signal.Signals(signum).name)


# -- settings ----------------------------------------------------------------------------------


def ensure_env_file() -> None:
    """Create `.env` with a random SECRET_KEY, or add one to an `.env` that has none."""
    if not ENV_FILE.exists():
        ENV_FILE.write_text(NEW_ENV_FILE.format(secret_key=secrets.token_hex(32)))
        ENV_FILE.chmod(0o600)
        print(f"Created {ENV_FILE.name} with a random SECRET_KEY.")
        return
    if dotenv_values(ENV_FILE).get("SECRET_KEY"):
        return
    text = ENV_FILE.read_text()
    separator = "" if text.endswith("\n") or not text else "\n"
    ENV_FILE.write_text(f"{text}{separator}SECRET_KEY={secrets.token_hex(32)}\n")
    print(f"Added a random SECRET_KEY to {ENV_FILE.name}.")


def read_settings() -> dict[str, str]:
    """The user's settings: `.env` (without the block make run writes) overlaid with the real
    environment (real variables win, as in the gateway)."""
    text = without_block(ENV_FILE.read_text()) if ENV_FILE.exists() else ""
    from_file = dotenv_values(stream=io.StringIO(text))
    return {**{k: v for k, v in from_file.items() if v is not None}, **os.environ}


def without_block(text: str) -> str:
    """`.env`'s text without make run's block."""
    pattern = rf"(?ms)^{re.escape(BLOCK_START)}$.*?^{re.escape(BLOCK_END)}$\n?"
    return re.sub(pattern, "", text)


def dotenv_quote(value: str) -> str:
    """`value` (a URL, a path) so that python-dotenv reads it back: quoted if it has spaces."""
    if re.fullmatch(r"[\w.:/@,+=-]*", value):
        return value
    return "'" + value.replace("'", "\\'") + "'"


def write_env_block(values: dict[str, str]) -> None:
    """Put `values` (what make run gives its children on top of the user's settings) into make
    run's block at the end of `.env`, where they win over the lines above for `flask --app wsgi`
    as they do for the children; no values: no block."""
    text = without_block(ENV_FILE.read_text())
    if values:
        lines = "".join(f"{name}={dotenv_quote(value)}\n" for name, value in values.items())
        if text and not text.endswith("\n\n"):  # a blank line before the block
            text += "\n" if text.endswith("\n") else "\n\n"
        text = f"{text}{BLOCK_START}\n{BLOCK_COMMENT}{lines}{BLOCK_END}\n"
    if text != ENV_FILE.read_text():
        ENV_FILE.write_text(text)


def is_production(settings: dict[str, str]) -> bool:
    return settings.get("MIDTRANS_IS_PRODUCTION", "").strip().lower() in {"1", "true", "yes", "on"}


def gateway_env(settings: dict[str, str], port: int, simulator_url: str | None) -> dict[str, str]:
    """The environment of every child: the caller's, plus the wiring to the simulator."""
    env = dict(os.environ)
    env["GUNICORN_BIND"] = f"127.0.0.1:{port}"
    if simulator_url:
        env.update(
            MIDTRANS_SERVER_KEY=SIMULATOR_KEY,
            MIDTRANS_CLIENT_KEY=SIMULATOR_CLIENT_KEY,
            MIDTRANS_IS_PRODUCTION="false",
            MIDTRANS_API_BASE_URL=simulator_url,
            MIDTRANS_SNAP_BASE_URL=f"{simulator_url}/snap/v1",
            MIDTRANS_NOTIFICATION_URL=f"http://127.0.0.1:{port}/notification",
        )
        # Let a demo client app on this machine receive payment callbacks.
        if not settings.get("CALLBACK_ALLOWED_HOSTS", "").strip():
            env["CALLBACK_ALLOWED_HOSTS"] = "127.0.0.1,::1,localhost"
        # Orders made against the simulator exist nowhere else: keep them out of the database
        # the gateway uses with real Midtrans (unless DATABASE_URL says otherwise).
        if not settings.get("DATABASE_URL", "").strip():
            env["DATABASE_URL"] = f"sqlite:///{SIMULATOR_DATABASE}"
    return env


def wiring(env: dict[str, str]) -> dict[str, str]:
    """What the children get on top of the real environment (but the port to listen on)."""
    return {k: v for k, v in env.items() if k != "GUNICORN_BIND" and os.environ.get(k) != v}


def check_port_free(port: int, name: str) -> None:
    with socket.socket() as probe:
        # Like the servers themselves: a port only in TIME_WAIT after a restart counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            sys.exit(f"Port {port} is already in use: stop what uses it or set {name}=<port>.")


# -- database and accounts ---------------------------------------------------------------------


def flask_program() -> str:
    """How to call `flask` from this folder: the virtual environment's, if make run uses one."""
    program = Path(PYTHON).parent / "flask"
    if not program.exists():
        return "flask"
    try:
        return str(program.relative_to(REPO))
    except ValueError:
        return "flask"


def flask_command(*args: str) -> list[str]:
    return [PYTHON, "-m", "flask", "--app", "wsgi", *args]


def run_flask(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(flask_command(*args), env=env, capture_output=True, text=True)


def migrate(env: dict[str, str]) -> None:
    done = run_flask(env, "db", "upgrade")
    if done.returncode != 0:
        sys.exit(f"Database migration failed:\n{done.stdout}{done.stderr}")
    print("Database is up to date.")


def read_credentials() -> dict[str, str]:
    if not CREDENTIALS_FILE.exists():
        return {}
    return {k: v for k, v in dotenv_values(CREDENTIALS_FILE).items() if v}


def write_credentials(credentials: dict[str, str]) -> None:
    CREDENTIALS_FILE.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{name}={value}\n" for name, value in credentials.items()]
    descriptor = os.open(CREDENTIALS_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(CREDENTIALS_HEADER + "".join(lines))
    CREDENTIALS_FILE.chmod(0o600)


def ensure_admin(env: dict[str, str], credentials: dict[str, str]) -> None:
    """Create `admin` (with the stored password, if a previous run made one) unless it exists."""
    password = credentials.get("admin_password") or secrets.token_urlsafe(12)
    done = run_flask(env, "admins", "create", ADMIN_USERNAME, "--password", password)
    if done.returncode == 0:
        credentials["admin_username"] = ADMIN_USERNAME
        credentials["admin_password"] = password
        print(f"Created the admin {ADMIN_USERNAME!r}.")
    elif "already exists" not in done.stderr + done.stdout:
        sys.exit(f"Could not create the admin:\n{done.stdout}{done.stderr}")


def check_demo_key(
    env: dict[str, str], credentials: dict[str, str], gateway_url: str
) -> str | None:
    """Ask the running gateway whether the kept demo key still works. A warning when it does
    not (the app was disabled, or its key rotated in the dashboard), and a rotated key is
    forgotten, so no curl that answers 401 is printed, now or next time."""
    key = credentials.get("demo_api_key")
    if not key:
        return None
    request = urllib.request.Request(
        gateway_url + KEY_CHECK_PATH, headers={"X-App-Code": DEMO_APP, "X-Api-Key": key}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            status = answer.status
    except urllib.error.HTTPError as error:
        status = error.code
    except (urllib.error.URLError, OSError):
        return None
    if status != 401:
        return None
    if demo_app_state(env) == "disabled":
        return (
            f"  WARNING: the client app {DEMO_APP!r} is disabled, so this key is refused (401)."
            f"\n  Enable it in the dashboard (App Keys) or with: flask --app wsgi apps enable "
            f"{DEMO_APP}"
        )
    del credentials["demo_api_key"]
    write_credentials(credentials)
    kept_in = CREDENTIALS_FILE.relative_to(REPO)
    return (
        f"  WARNING: the key of {DEMO_APP!r} kept in {kept_in} was refused (401): it was\n"
        "  rotated, probably in the dashboard, and is forgotten now. Use the key the dashboard\n"
        "  showed, or make a new one in this folder (the current key then stops working):\n"
        f"    flask --app wsgi apps rotate-key {DEMO_APP}\n"
        f"  and add it as demo_api_key=... to {kept_in} to see it here next time."
    )


def demo_app_state(env: dict[str, str]) -> str | None:
    """The demo app's state as `flask --app wsgi apps list` shows it: active or disabled."""
    listing = run_flask(env, "apps", "list")
    for line in listing.stdout.splitlines():
        if line.split()[:1] == [DEMO_APP]:
            found = re.search(r"\s(active|disabled)\s", line[20:])
            return found.group(1) if found else None
    return None


def ensure_demo_app(env: dict[str, str], credentials: dict[str, str]) -> None:
    """Create the client app `demo` (keeping a stored key, if any) unless it exists."""
    listing = run_flask(env, "apps", "list")
    if listing.returncode != 0:
        sys.exit(f"Could not list the apps:\n{listing.stdout}{listing.stderr}")
    if any(line.split()[:1] == [DEMO_APP] for line in listing.stdout.splitlines()):
        return
    args = ["apps", "create", DEMO_APP, "--name", "Demo shop (make run)"]
    if credentials.get("demo_api_key"):
        args += ["--api-key", credentials["demo_api_key"]]
    done = run_flask(env, *args)
    if done.returncode != 0:
        sys.exit(f"Could not create the demo app:\n{done.stdout}{done.stderr}")
    credentials["demo_app_code"] = DEMO_APP
    credentials["demo_api_key"] = done.stdout.strip().splitlines()[-1]
    print(f"Created the client app {DEMO_APP!r}.")


# -- processes ---------------------------------------------------------------------------------


class Children:
    """The processes this script started, each in its own session so that only this script
    decides when (and in which order) they stop."""

    def __init__(self):
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.processes[name] = subprocess.Popen(argv, env=env, start_new_session=True)

    def exited(self) -> tuple[str, int] | None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                return name, process.returncode
        return None

    def stop_all(self) -> None:
        """SIGTERM the newest first (gunicorn finishes in-flight requests); SIGKILL laggards."""
        running = [(n, p) for n, p in reversed(self.processes.items()) if p.poll() is None]
        for _name, process in running:
            process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for name, process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop in {STOP_TIMEOUT} s; killing it.")
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def simulator_command(simulator_port: int, gateway_port: int) -> list[str]:
    return [
        PYTHON,
        "-m",
        "simulator",
        "--port",
        str(simulator_port),
        "--notification-url",
        f"http://127.0.0.1:{gateway_port}/notification",
        "--server-key",
        SIMULATOR_KEY,
        "--client-key",
        SIMULATOR_CLIENT_KEY,
    ]


def worker_available(env: dict[str, str]) -> bool:
    return run_flask(env, "worker", "--help").returncode == 0


def wait_until_ok(url: str, children: Children) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if (ended := children.exited()) is not None:
            sys.exit(f"{ended[0]} stopped while starting (exit code {ended[1]}); see its output.")
        if time.monotonic() > deadline:
            sys.exit(f"{url} did not answer 200 within {READY_TIMEOUT} s.")
        time.sleep(0.2)


def watch(children: Children) -> int:
    """Wait for Ctrl-C; if a child dies on its own, stop the others and fail."""
    while (ended := children.exited()) is None:
        time.sleep(0.5)
    print(f"{ended[0]} stopped unexpectedly (exit code {ended[1]}); stopping the others.")
    return 1


# -- what the user sees ------------------------------------------------------------------------


def describe_midtrans(settings: dict[str, str], simulator_url: str | None) -> str:
    if simulator_url:
        return f"local simulator at {simulator_url} (no real money; you play the customer)"
    custom = settings.get("MIDTRANS_API_BASE_URL", "").strip()
    if custom:
        return f"the Midtrans API at {custom} (MIDTRANS_API_BASE_URL)"
    if is_production(settings):
        return "Midtrans PRODUCTION (api.midtrans.com): REAL MONEY"
    return "Midtrans sandbox (api.sandbox.midtrans.com)"


def print_banner(
    settings: dict[str, str],
    credentials: dict[str, str],
    gateway_url: str,
    simulator_url: str | None,
    *,
    key_warning: str | None = None,
) -> None:
    admin_password = credentials.get("admin_password", "(set earlier; not stored here)")
    lines = [
        "",
        "midtrans-gateway is running. Ctrl-C stops everything.",
        "",
        f"  Midtrans:   {describe_midtrans(settings, simulator_url)}",
        f"  Gateway:    {gateway_url}",
    ]
    if simulator_url:
        lines.append(f"  Simulator:  {simulator_url}/_sim/")
    if simulator_url and not settings.get("DATABASE_URL", "").strip():
        lines.append(
            f"  Database:   {SIMULATOR_DATABASE.relative_to(REPO)} (simulator orders only)"
        )
    lines += [
        f"  Admin:      {gateway_url}/admin/  (user {ADMIN_USERNAME}, password {admin_password})",
        f"  Commands:   {flask_program()} --app wsgi apps list  (in this folder: the same "
        "database, through .env)",
        "",
    ]
    key = credentials.get("demo_api_key")
    if key:
        order_id = f"DEMO-{int(time.time())}"
        lines += [
            "  Client app headers (kept in instance/demo-credentials.txt):",
            f"    X-App-Code: {DEMO_APP}",
            f"    X-Api-Key: {key}",
            "",
            "Create a payment link:",
            f"  curl -sS -X POST {gateway_url}/charge \\",
            f"    -H 'X-App-Code: {DEMO_APP}' -H 'X-Api-Key: {key}' \\",
            "    -H 'Content-Type: application/json' \\",
            f'    -d \'{{"order_id": "{order_id}", "amount": 150000}}\'',
            "Open its redirect_url, pay, then ask for the status:",
            f"  curl -sS {gateway_url}/status/{order_id} \\",
            f"    -H 'X-App-Code: {DEMO_APP}' -H 'X-Api-Key: {key}'",
        ]
        if key_warning:
            lines += ["", key_warning]
    elif is_production(settings) and not simulator_url:
        lines.append("  No demo app in production: flask --app wsgi apps create CODE --name NAME")
    elif key_warning:
        lines.append(key_warning)
    else:
        lines.append(
            f"  The app {DEMO_APP!r} exists but its key is not stored here: "
            f"flask --app wsgi apps rotate-key {DEMO_APP}"
        )
    print("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
