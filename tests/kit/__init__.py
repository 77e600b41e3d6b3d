"""The shared test kit (imported as `kit`; the `tests` folder is on pytest's pythonpath).

- `kit.endpoints`: servers on 127.0.0.1 in a thread: `CallbackReceiver` (a client app's
  callback URL that verifies what the gateway signs), `LocalServer` (other HTTP fakes) and
  `SocketServer` (endpoints that misbehave below HTTP); the `served` fixture closes them.
- `support` (tests/support.py): constants; `signed()` and `notification_for()`, Midtrans's
  notifications signed; `snap_ok()`, `snap_rejects()`, `charge()`; `cli_for()`, `make_app()`,
  `user_app()`, `hook_app()` (an app with a callback URL).
- `e2e.servers`: the gateway stack over real HTTP (simulator, gunicorn, workers, its
  database), `post_charge()`; built on `bench.processes`, which starts every child process
  for the tests and the benchmark.
- tests/conftest.py: the noun fixtures (`app`, `client`, `cli`, `app_key`, `shop_key`,
  `admin_user`, `admin_client`, `midtrans`, `served`).
"""
