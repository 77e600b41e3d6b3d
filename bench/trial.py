"""The gateway with trial changes applied from outside app/, to measure a proposed fix before
anyone edits the code: `BENCH_GATEWAY_APP=bench.trial:app BENCH_TRIAL=no_expire make bench`.

BENCH_TRIAL is a comma-separated list of:
  no_expire    sessions keep loaded attributes after commit (expire_on_commit=False), so
               reading an order after its commit opens no new (BEGIN IMMEDIATE) transaction
  quiet_logs   the root logger at WARNING (no "midtrans ... ok in N ms" line per call)
"""

import logging
import os

from app.extensions import db
from wsgi import app

TRIALS = {t.strip() for t in os.environ.get("BENCH_TRIAL", "").split(",") if t.strip()}

if "no_expire" in TRIALS:
    with app.app_context():
        db.session.remove()
        db.session.configure(expire_on_commit=False)
if "quiet_logs" in TRIALS:
    logging.getLogger().setLevel(logging.WARNING)
