"""The only place that sends HTTP to client apps: Standard Webhooks signing, and an HTTP client
that refuses private, loopback and link-local addresses.

Server-side request forgery is the risk of letting clients choose a URL: a callback URL that
resolves to 127.0.0.1, 10.x or 169.254.169.254 would let anyone who can set one reach services
behind the gateway. The address is checked when the URL is set, and again when each connection
is opened, on the very address the socket connects to (so a DNS answer that changes between
the check and the connection, or a redirect, cannot slip through; redirects are not followed).
`CALLBACK_ALLOWED_HOSTS` lets named hosts or CIDR ranges through, for local demos and tests.
IPv6 addresses that carry an IPv4 address (IPv4-mapped and -compatible, NAT64, 6to4, Teredo)
are judged by the IPv4 address they lead to: on a network with NAT64, `64:ff9b::10.0.0.1`
reaches 10.0.0.1.

A client app's endpoint must not hold the worker: one attempt (name lookup, connect, send,
read) ends at `CALLBACK_TIMEOUT` however slowly the endpoint answers, and at most 64 KiB of
its answer is read (a socket timeout alone is per read: an endpoint dripping a byte at a time
would hold it forever; an unbounded read lets it fill the worker's memory).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import math
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .deadlines import Deadline, current_deadline, set_current_deadline

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
DELIVERY_TIMEOUT = 15.0
EXCERPT = 500  # characters of the answer kept in the delivery log
ANSWER_CAP = 64 * 1024  # bytes of the answer read at most; the connection is closed after
READ_CHUNK = 8 * 1024


class UnsafeCallbackURL(ValueError):
    """The URL is not http(s), or points at an address callbacks may not reach."""


def new_signing_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed with the secret's base64 part."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signature_header(secrets_in_use: list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """One signature per secret in use (two during a rotation), space-separated."""
    return " ".join(sign(s, msg_id, timestamp, body) for s in secrets_in_use)


# -- which addresses may be reached ---------------------------------------------------------


@dataclass(frozen=True)
class AddressPolicy:
    """Public addresses only, except the hosts and networks explicitly allowed."""

    allowed_hosts: frozenset[str] = frozenset()
    allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def parse(cls, setting: str) -> AddressPolicy:
        hosts, networks = set(), []
        for item in (part.strip() for part in setting.split(",")):
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                hosts.add(item.lower().strip("[]"))
        return cls(frozenset(hosts), tuple(networks))

    def address_allowed(self, host: str, address: str) -> bool:
        if host.lower().strip("[]") in self.allowed_hosts:
            return True
        return self.ip_allowed(ipaddress.ip_address(address.split("%")[0]))

    def ip_allowed(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        """Allowed networks pass; an IPv6 address carrying IPv4 ones is judged by all of them;
        anything else must be a global unicast address."""
        if any(ip in network for network in self.allowed_networks):
            return True
        if ip.version == 6:
            embedded = embedded_ipv4(ip)
            if embedded:
                return all(self.ip_allowed(v4) for v4 in embedded)
        return ip.is_global and not ip.is_multicast

    def resolve(self, host: str, port: int, *, timeout: float | None = None) -> list[str]:
        """The host's addresses, all of which must be allowed; raises UnsafeCallbackURL, or
        TimeoutError when the name has no answer within `timeout` seconds."""
        try:
            infos = _getaddrinfo(host, port, timeout)
        except socket.gaierror:
            raise UnsafeCallbackURL(f"cannot resolve {host}") from None
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        for address in addresses:
            if not self.address_allowed(host, address):
                raise UnsafeCallbackURL(
                    f"{host} resolves to {address}, a private, loopback or link-local address "
                    "(allow it with CALLBACK_ALLOWED_HOSTS)"
                )
        return addresses

    def check_url(self, url: str, *, require_https: bool = False, resolve: bool = True) -> str:
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise UnsafeCallbackURL("the callback URL must be an http(s) URL with a host")
        if parts.username or parts.password:
            raise UnsafeCallbackURL("the callback URL must not contain credentials")
        if require_https and parts.scheme != "https":
            if parts.hostname.lower() not in self.allowed_hosts:
                raise UnsafeCallbackURL("the callback URL must use https in production")
        if len(url) > 2000:
            raise UnsafeCallbackURL("the callback URL is too long")
        if resolve:
            self.resolve(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        return url


# IPv6 ranges whose addresses carry an IPv4 address, and where in the address it sits.
_IPV4_MAPPED = ipaddress.ip_network("::ffff:0:0/96")  # ::ffff:a.b.c.d
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # ::ffff:0:a.b.c.d (SIIT)
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # ::a.b.c.d (deprecated; also :: and ::1)
_NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: the operator picks a /48../96
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_TEREDO = ipaddress.ip_network("2001::/32")


def _rfc6052(ip: ipaddress.IPv6Address, prefix_length: int) -> ipaddress.IPv4Address:
    """The IPv4 address in an IPv4-embedded IPv6 address with a prefix of that length (the
    octet at bits 64-71 is skipped, RFC 6052 section 2.2)."""
    packed = ip.packed
    if prefix_length == 96:
        return ipaddress.IPv4Address(packed[12:])
    without_u = packed[:8] + packed[9:]
    start = prefix_length // 8
    return ipaddress.IPv4Address(without_u[start : start + 4])


def embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses a connection to `ip` may end up at: the one it carries, each
    possible one where the layout is the network's choice (64:ff9b:1::/48), Teredo's server
    and client; () for an address that carries none."""
    if ip in _IPV4_MAPPED or ip in _IPV4_TRANSLATED or ip in _IPV4_COMPATIBLE:
        return (ipaddress.IPv4Address(ip.packed[12:]),)
    if ip in _NAT64_WELL_KNOWN:
        return (_rfc6052(ip, 96),)
    if ip in _NAT64_LOCAL:
        return tuple(dict.fromkeys(_rfc6052(ip, n) for n in (48, 56, 64, 96)))
    if ip in _SIX_TO_FOUR:
        return (ip.sixtofour,)
    if ip in _TEREDO:
        return ip.teredo
    return ()


def _getaddrinfo(host: str, port: int, timeout: float | None) -> list:
    """getaddrinfo, given up after `timeout` seconds (TimeoutError). The lookup runs on in
    a daemon thread until the resolver's own timeout: getaddrinfo cannot be interrupted."""
    try:
        ipaddress.ip_address(host.split("%")[0])
        literal = True
    except ValueError:
        literal = False
    if timeout is None or literal:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    outcome: dict = {}

    def lookup() -> None:
        try:
            outcome["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as err:
            outcome["error"] = err

    thread = threading.Thread(target=lookup, name="callback-dns", daemon=True)
    thread.start()
    thread.join(max(timeout, 0.0))
    if thread.is_alive():
        raise TimeoutError(f"no DNS answer for {host} in {timeout:.1f} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["infos"]


# -- an HTTP client that connects only to allowed addresses ---------------------------------


def _guarded_connection(base):
    class Guarded(base):
        policy: AddressPolicy = AddressPolicy()

        def _new_conn(self):
            # Resolve, check, and connect to the checked address itself, within the deadline.
            deadline: Deadline | None = current_deadline()
            try:
                addresses = self.policy.resolve(
                    self._dns_host, self.port, timeout=deadline.left() if deadline else None
                )
            except TimeoutError as err:
                raise urllib3.exceptions.ConnectTimeoutError(self, str(err)) from None
            last_error: OSError | None = None
            for address in addresses:
                timeout = deadline.left() if deadline else self.timeout
                if deadline and timeout <= 0:
                    raise urllib3.exceptions.ConnectTimeoutError(self, "deadline reached")
                try:
                    sock = socket.create_connection((address, self.port), timeout)
                except TimeoutError:
                    raise urllib3.exceptions.ConnectTimeoutError(
                        self, f"no connection to {address} in time"
                    ) from None
                except OSError as err:
                    last_error = err
                    continue
                if deadline:
                    deadline.watch(sock)
                return sock
            raise urllib3.exceptions.NewConnectionError(self, f"cannot connect: {last_error}")

    return Guarded


class _GuardedAdapter(HTTPAdapter):
    def __init__(self, pools: dict[str, type]):
        self._pools = pools
        super().__init__(pool_connections=1, pool_maxsize=1, max_retries=0)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pools
        self.poolmanager.key_fn_by_scheme = dict(self.poolmanager.key_fn_by_scheme)


def _guarded_pools(policy: AddressPolicy) -> dict[str, type]:
    http = type("GuardedHTTP", (_guarded_connection(HTTPConnection),), {"policy": policy})
    https = type("GuardedHTTPS", (_guarded_connection(HTTPSConnection),), {"policy": policy})
    return {
        "http": type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http}),
        "https": type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https}),
    }


@dataclass(frozen=True)
class DeliveryResult:
    status_code: int | None
    latency_ms: int
    excerpt: str | None
    error: str | None
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delay-seconds or an HTTP-date), never
    negative, possibly infinite; None when absent or not understood. The caller bounds it."""
    if not value or "_" in value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            when = parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds):
        return None
    return max(0.0, seconds)


class CallbackClient:
    """Posts signed events to client apps through the guarded connection. Each attempt uses
    its own session and connection (closed afterwards), so several threads can deliver at
    once and every socket an attempt uses is under that attempt's deadline."""

    def __init__(self, policy: AddressPolicy, *, timeout: float = DELIVERY_TIMEOUT):
        self.policy = policy
        self.timeout = timeout
        self._pools = _guarded_pools(policy)

    def _session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # no proxies from the environment
        adapter = _GuardedAdapter(self._pools)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    def deliver(
        self, url: str, *, msg_id: str, body: bytes, secrets_in_use: list[str]
    ) -> DeliveryResult:
        """One attempt, over within `timeout` seconds whatever the endpoint does; never raises."""
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "midtrans-gateway-webhooks/1",
            "Accept-Encoding": "identity",  # the answer is read raw, never decompressed
            "Connection": "close",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(secrets_in_use, msg_id, timestamp, body),
        }
        started = time.perf_counter()
        deadline = Deadline(self.timeout)
        set_current_deadline(deadline)
        session = self._session()
        try:
            return self._attempt(session, url, headers, body, deadline, started)
        finally:
            set_current_deadline(None)
            session.close()
            deadline.close()

    def _attempt(self, session, url, headers, body, deadline, started) -> DeliveryResult:
        try:
            self.policy.check_url(url, resolve=False)
            left = max(deadline.left(), 0.001)
            response = session.post(
                url,
                data=body,
                headers=headers,
                timeout=(left, left),
                allow_redirects=False,
                stream=True,
            )
        except UnsafeCallbackURL as err:
            return DeliveryResult(None, _ms(started), None, f"refused: {err}")
        except Exception as err:
            return DeliveryResult(None, _ms(started), None, self._failure(err, deadline))
        try:
            answer, note = _read_answer(response, deadline)
        finally:
            response.close()
        excerpt = answer.decode(response.encoding or "utf-8", errors="replace")[:EXCERPT]
        if note:
            excerpt = f"{excerpt} [{note}]" if excerpt else f"[{note}]"
        return DeliveryResult(
            response.status_code,
            _ms(started),
            excerpt,
            None,
            parse_retry_after(response.headers.get("Retry-After")),
        )

    def _failure(self, err: Exception, deadline: Deadline) -> str:
        if deadline.expired or isinstance(err, requests.Timeout):
            return f"no answer in {self.timeout:g} s"
        if isinstance(err, requests.RequestException):
            return f"connection failed: {type(err).__name__}"
        log.warning("callback attempt failed unexpectedly", exc_info=True)
        return f"failed: {type(err).__name__}"


def _read_answer(response: requests.Response, deadline: Deadline) -> tuple[bytes, str | None]:
    """At most ANSWER_CAP bytes of the body, read until the deadline; the rest is never read
    (the caller closes the connection). A note says why the body was cut, if it was."""
    kept = bytearray()
    cut = f"answer cut at the {deadline.seconds:g} s limit"
    try:
        while True:
            if deadline.left() <= 0:
                return bytes(kept), cut
            chunk = response.raw.read1(READ_CHUNK, decode_content=False)
            if not chunk:  # the end, or the deadline shut the connection
                return bytes(kept), cut if deadline.expired else None
            room = ANSWER_CAP - len(kept)
            if len(chunk) > room:
                kept += chunk[:room]
                return bytes(kept), f"answer longer than {ANSWER_CAP // 1024} KiB, not read further"
            kept += chunk
    except Exception as err:
        if deadline.expired:
            return bytes(kept), cut
        return bytes(kept), f"answer broken off: {type(err).__name__}"


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
