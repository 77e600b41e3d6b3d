"""The shared test kit (imported as `kit`; the `tests` folder is on pytest's pythonpath). Every
helper shared between test files, and where it lives; use these rather than writing another.

- `kit.endpoints`: servers on 127.0.0.1 in a thread. `CallbackReceiver`: the one receiver of
  callbacks and notifications (verifies with `standardwebhooks` unless `verify=False`; queued
  `answers`: a status or (status, headers[, body]); `events()`, `statuses()`, `wait_for()`,
  `settled_since()`, `unverified()`). `LocalServer`: other HTTP fakes (`url`, `at(path)`,
  `arrived(count)`, `since()`). `SocketServer`: endpoints that misbehave below HTTP.
  `Received`: one request as it arrived. The `served` fixture closes them.
- `support` (tests/support.py): constants (`SERVER_KEY`, `API_BASE`, `SNAP_URL`, ...);
  Midtrans's side: `signed()` (the one signed-notification builder), `notification_for()`,
  `status_answer()` (a status answer by order id), `status_answer_for()` (the answer that
  agrees with a notification), `status_url()`, `snap_ok()`, `snap_rejects()`, `basic_auth()`;
  the client's side: `charge()` (the one POST /charge helper), `make_app()`, `user_app()`,
  `hook_app()` (an app with a callback URL: headers and signing secret); the app: `cli_for()`,
  `use_settings()`, `database_url()`, `reset_database()`.
- `midtrans_samples`: Midtrans's own sample notifications and answers.
- tests/conftest.py: the noun fixtures (`env`, `build_app`, `app`, `client`, `cli`, `app_key`,
  `shop_key`, `admin_user`, `admin_client`, `midtrans`, `served`) and `loopback_callbacks`
  (`env` allows callbacks to 127.0.0.1; a module: `pytest.mark.usefixtures(...)`).
- tests/admin: `admin.dashboard` (`PASSWORD`, `log_in()`, `token_for()`, `csrf_from()`,
  `table_snapshot()`, `settled()`, `GONE`) and its conftest's `post`, `charge` (an order's row
  id) and `receiver` (an unverified `CallbackReceiver`).
- tests/simulator/conftest.py: the simulator in-process (`app`, `client`, `auth`,
  `snap_order`, `card_token`, `wait_until`), its notification `receiver` (a `CallbackReceiver`) and
  `simulator_process` / `simulator_url` (`python -m simulator` as its own process).
- `e2e.servers`: the gateway stack over real HTTP (simulator, gunicorn, workers, its
  database): `start_stack()`, `hooked_client_app()`, `post_charge()`; built on
  `bench.processes`, which starts every child process for the tests and the benchmark.
  tests/e2e/conftest.py: `stack`, `gateway` and `client_with_callbacks` (a client app, its
  verifying receiver and a worker).
"""
