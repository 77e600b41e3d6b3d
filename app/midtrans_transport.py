"""How `midtransclient` reaches Midtrans: a `requests`-compatible transport over one pool of
kept-alive connections per process.

midtransclient's `HttpClient` calls `http_client.request(method, url, auth=..., data=...,
params=..., headers=..., proxies=..., allow_redirects=...)` and reads a `requests.Response`
(`status_code`, `text`, `json()`). `requests.Session.request` spends about as much CPU per call
as the HTTP exchange itself (merging settings, cookies, hooks); this transport prepares the
request and hands it straight to a `requests` adapter over a `urllib3.PoolManager`, so:
- the answer is still a `requests.Response` and failures are still `requests` exceptions
  (`Timeout`, `ConnectionError`, ...), which app/midtrans.py maps;
- one pool per process, shared by every thread (urllib3's pools are thread-safe), keeps
  connections alive between calls, whichever thread makes them;
- every call ends within its timeout, the whole call (app/deadlines.py): connect, send, and
  the answer to its last byte;
- TLS is verified; proxies from the environment are honoured only when one is configured
  (HTTPS_PROXY, https_proxy, ALL_PROXY), as `requests` would then; redirects are followed as
  `requests` follows them (Midtrans sends none).
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import default_headers

from .deadlines import Deadline, set_current_deadline, watched_pool_classes

# Connections kept per host: more than the threads that call Midtrans at once in one process
# (gunicorn's threads, the worker's); a call beyond it still gets a connection, not kept.
POOL_SIZE = 64
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY")


class _PooledAdapter(HTTPAdapter):
    """requests' adapter whose connections obey the calling thread's whole-call deadline."""

    def __init__(self):
        super().__init__(pool_connections=4, pool_maxsize=POOL_SIZE)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = watched_pool_classes()


class _Shared:
    """The process's adapter; a process forked from one that had it makes its own (a
    connection must never be shared by two processes)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._adapter: HTTPAdapter | None = None

    def adapter(self) -> HTTPAdapter:
        adapter = self._adapter
        if adapter is not None and self._pid == os.getpid():
            return adapter
        with self._lock:
            if self._adapter is None or self._pid != os.getpid():
                self._adapter, self._pid = _PooledAdapter(), os.getpid()
            return self._adapter

    def reset_after_fork(self) -> None:
        self._lock, self._adapter, self._pid = threading.Lock(), None, None


_shared = _Shared()
os.register_at_fork(after_in_child=_shared.reset_after_fork)


class MidtransTransport:
    """`request(...)` as `requests.Session.request` answers it, for midtransclient's
    `HttpClient.http_client`; each call is over within `timeout` seconds."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        # Reading proxy settings from the environment on every call is costly; do it only
        # when a proxy is configured (as the gateway always did).
        self.trust_env = any(os.environ.get(name) for name in PROXY_VARIABLES)

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        auth: Any = None,
        proxies: dict[str, str] | None = None,
        allow_redirects: bool = True,
        timeout: float | None = None,
    ) -> requests.Response:
        seconds = self.timeout if timeout is None else min(timeout, self.timeout)
        prepared = _prepare(method, url, params, data, headers, auth)
        settings = {"proxies": dict(proxies or {}), "verify": True, "cert": None}
        if self.trust_env:
            settings = self._session().merge_environment_settings(
                prepared.url, settings["proxies"], False, True, None
            )
        adapter = _shared.adapter()
        deadline = Deadline(seconds)
        set_current_deadline(deadline)
        try:
            response = adapter.send(prepared, timeout=seconds, **settings)
            if allow_redirects and response.is_redirect:
                response = self._follow(response, prepared, seconds, settings)
            response.content  # noqa: B018 (the whole answer, read within the deadline)
        except requests.RequestException as err:
            if deadline.expired:
                raise requests.Timeout(f"no whole answer within {seconds:g} s") from err
            raise
        else:
            if deadline.expired:  # cut mid-answer: what was read may look whole, but is not
                response.close()
                raise requests.Timeout(f"no whole answer within {seconds:g} s")
            return response
        finally:
            set_current_deadline(None)
            deadline.close()

    def _session(self) -> requests.Session:
        """A session over the shared adapter, for what only a session does (rarely used:
        proxies from the environment, redirects). Never closed: that would close the pool."""
        session = requests.Session()
        session.trust_env = self.trust_env
        adapter = _shared.adapter()
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    def _follow(self, response, prepared, seconds, settings) -> requests.Response:
        prepared._cookies = requests.cookies.RequestsCookieJar()
        history = [response]
        for hop in self._session().resolve_redirects(
            response, prepared, timeout=seconds, **settings
        ):
            history.append(hop)
        final = history.pop()
        final.history = history
        return final


# What requests.Session sends unless the call says otherwise (User-Agent, Accept-Encoding,
# Accept, Connection: keep-alive); midtransclient sets its own User-Agent and Accept.
_DEFAULT_HEADERS = default_headers()
# A URL `requests` would send as it is: lower-case scheme and host, a path of unreserved
# characters only (Midtrans's URLs, with the order ids the gateway makes).
_PLAIN_URL = re.compile(r"https?://[a-z0-9.-]+(?::[0-9]+)?/[A-Za-z0-9._~/-]*")
_headers_seen: dict[tuple, CaseInsensitiveDict] = {}  # each client sends one set, always


def _prepare(method, url, params, data, headers, auth) -> requests.PreparedRequest:
    """The request as `requests.Session.prepare_request` prepares it (tests/
    test_midtrans_transport.py compares them), without a cookie jar (the gateway keeps no
    cookies from Midtrans) or hooks; what is the same on every call is prepared once."""
    prepared = requests.PreparedRequest()
    prepared.prepare_method(method)
    if not params and _PLAIN_URL.fullmatch(url):
        prepared.url = url
    else:
        prepared.prepare_url(url, params)
    prepared.headers = _merged_headers(headers or {})
    if data is not None or prepared.method not in ("GET", "HEAD"):
        prepared.prepare_body(data, None)
    prepared.prepare_auth(auth, url)
    prepared.hooks = {"response": []}
    return prepared


def _merged_headers(headers: dict[str, str]) -> CaseInsensitiveDict:
    key = tuple(headers.items())
    merged = _headers_seen.get(key)
    if merged is None:
        merged = CaseInsensitiveDict(_DEFAULT_HEADERS)
        merged.update(headers)
        probe = requests.PreparedRequest()
        probe.prepare_headers(merged)  # checked as requests checks them
        merged = probe.headers
        if len(_headers_seen) < 64:
            _headers_seen[key] = merged
    return merged.copy()
