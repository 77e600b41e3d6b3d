"""Chaos fixtures: a simulator that sends no notifications of its own, the gateway under real
gunicorn, the gateway's worker as a subprocess, and a direct view of the gateway's database
(`e2e.servers.start_stack(notify=False)`): these tests decide themselves which notifications
reach the gateway. The database is SQLite in a temporary folder, or PostgreSQL where
TEST_DATABASE_URL is set (its schema is emptied first).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import requests
from e2e.servers import Stack, start_stack


@pytest.fixture
def chaos_stack(tmp_path) -> Iterator:
    """A factory: `chaos_stack(*app_options, **gateway_env)` starts a silent simulator, a fresh
    database with one app `chaos` (prefix `chaos-`), and gunicorn; all stopped at teardown."""
    started: list[Stack] = []

    def start(*app_options: str, code: str = "chaos", **extra: str) -> Stack:
        workdir = tmp_path / f"stack{len(started)}"
        workdir.mkdir()
        stack = start_stack(
            workdir,
            *app_options,
            code=code,
            name=f"{code} (chaos)",
            notify=False,
            # A few hundred orders in a minute is the point, not the rate limit; nor is the
            # limit on forged notifications from one address (all come from 127.0.0.1).
            **{
                "RATELIMIT_PER_APP": "100000 per minute",
                "RATELIMIT_REJECTED_NOTIFICATIONS": "100000 per minute",
                **extra,
            },
        )
        started.append(stack)
        return stack

    yield start
    for stack in started:
        stack.stop()


class Http:
    """One `requests.Session` per thread (a session is not meant to be shared), every answer
    from the gateway kept so a test can say that none was a 5xx."""

    def __init__(self):
        self._local = threading.local()
        self._lock = threading.Lock()
        self.answers: list[tuple[str, str, int]] = []

    @property
    def session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.trust_env = False
        return session

    def request(self, method: str, url: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        answer = self.session.request(method, url, **kwargs)
        with self._lock:
            self.answers.append((method, url, answer.status_code))
        return answer

    def server_errors(self) -> list[tuple[str, str, int]]:
        with self._lock:
            return [a for a in self.answers if a[2] >= 500]


@pytest.fixture
def http() -> Iterator[Http]:
    yield Http()
