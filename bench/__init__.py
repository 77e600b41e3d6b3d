"""Benchmark of the gateway against the framework floor and the upstream, in one run.

    make bench                      # or: .venv/bin/python -m bench.run
    .venv/bin/python -m bench.profile   # where the gateway's CPU goes (py-spy)

One run starts the Midtrans simulator, the gateway under the shipped `gunicorn.conf.py` (a
fresh SQLite database migrated with `flask db upgrade`, an app made with `flask apps create`),
a do-nothing Flask app (`bench/floor.py`) under the same gunicorn settings, and loads each of
them from this machine with `wrk` (closed loop) and `bench/openloop.py` (open loop, fixed rate).
Ratios taken in the same run are what to compare between machines, not raw requests/s.
Results: `bench/results/latest.{json,md,png}` (git-ignored); `bench/REFERENCE.md` keeps one run.
"""
