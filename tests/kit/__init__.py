"""The shared test kit (imported as `kit`; the `tests` folder is on pytest's pythonpath).

- `kit.endpoints`: HTTP servers on 127.0.0.1 in a thread: `CallbackReceiver`, a client app's
  callback URL that verifies what the gateway signs, and `LocalServer` for other fakes.
- `support` (tests/support.py): constants, `signed()` Midtrans notifications, `charge()`,
  `make_app()`, Midtrans mocked with `responses`.
- `e2e.servers`: the gateway stack over real HTTP (simulator, gunicorn, worker), built on
  `bench.processes`, which starts every child process for the tests and the benchmark.
- tests/conftest.py: the noun fixtures (`app`, `client`, `app_key`, `callback_receiver`, ...).
"""
