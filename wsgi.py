"""Entry point for gunicorn (`gunicorn wsgi:app`) and the CLI (`flask --app wsgi ...`).

A bad setting stops the process with one line naming it (what systemd's journal shows), not a
traceback.
"""

import sys

from app import create_app
from app.config import ConfigError

# gunicorn stops (instead of restarting the worker forever) when a worker exits with this code.
GUNICORN_APP_LOAD_ERROR = 4

try:
    app = create_app()
except ConfigError as err:
    print(f"Configuration error: {err}", file=sys.stderr, flush=True)
    sys.exit(GUNICORN_APP_LOAD_ERROR if "gunicorn.arbiter" in sys.modules else 1)
