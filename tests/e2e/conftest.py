"""End-to-end fixtures: one simulator and one gateway under real gunicorn (2 workers) for the
whole `tests/e2e` package, reached over real HTTP with `requests`."""

from __future__ import annotations

import time

import pytest
import requests
from e2e.servers import hooked_client_app, start_stack
from kit.endpoints import CallbackReceiver


@pytest.fixture(scope="package")
def stack(tmp_path_factory):
    running = start_stack(
        tmp_path_factory.mktemp("e2e"),
        GUNICORN_WORKERS="2",
        GUNICORN_THREADS="8",
        MIDTRANS_TIMEOUT="5",
    )
    yield running
    running.stop()


@pytest.fixture
def gateway(stack):
    """The running stack; the simulator's faults and latency are switched off afterwards."""
    yield stack
    requests.post(
        f"{stack.simulator_url}/_sim/config",
        json={"fault": None, "fault_count": None, "latency_ms": 0},
        timeout=5,
    ).raise_for_status()


@pytest.fixture
def client_with_callbacks(gateway, served):
    """A client app on the stack whose callbacks go to a verifying `CallbackReceiver`, with a
    worker delivering them: its headers and the receiver."""
    receiver = served(CallbackReceiver())
    code = f"cb{int(time.time() * 1000) % 10**8}"
    client_app, worker = hooked_client_app(gateway, receiver, code, "shop with callbacks")
    yield client_app.headers, receiver
    worker.stop()
