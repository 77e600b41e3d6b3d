"""The only place that sends HTTP to client apps: Standard Webhooks signing, and an HTTP client
that refuses private, loopback and link-local addresses.

Server-side request forgery is the risk of letting clients choose a URL: a callback URL that
resolves to 127.0.0.1, 10.x or 169.254.169.254 would let anyone who can set one reach services
behind the gateway. The address is checked when the URL is set, and again when each connection
is opened, on the very address the socket connects to (so a DNS answer that changes between
the check and the connection, or a redirect, cannot slip through; redirects are not followed).
`CALLBACK_ALLOWED_HOSTS` lets named hosts or CIDR ranges through, for local demos and tests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
DELIVERY_TIMEOUT = 15.0
EXCERPT = 500


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
        ip = ipaddress.ip_address(address.split("%")[0])
        if host.lower().strip("[]") in self.allowed_hosts:
            return True
        if any(ip in network for network in self.allowed_networks):
            return True
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return ip.is_global and not ip.is_multicast

    def resolve(self, host: str, port: int) -> list[str]:
        """The host's addresses, all of which must be allowed; raises UnsafeCallbackURL."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
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


# -- an HTTP client that connects only to allowed addresses ---------------------------------


def _guarded_connection(base):
    class Guarded(base):
        policy: AddressPolicy = AddressPolicy()

        def _new_conn(self):
            # Resolve, check, and connect to the checked address itself.
            last_error: OSError | None = None
            for address in self.policy.resolve(self._dns_host, self.port):
                try:
                    return socket.create_connection((address, self.port), self.timeout)
                except OSError as err:
                    last_error = err
            raise urllib3.exceptions.NewConnectionError(self, f"cannot connect: {last_error}")

    return Guarded


class _GuardedAdapter(HTTPAdapter):
    def __init__(self, policy: AddressPolicy):
        http = type("GuardedHTTP", (_guarded_connection(HTTPConnection),), {"policy": policy})
        https = type("GuardedHTTPS", (_guarded_connection(HTTPSConnection),), {"policy": policy})
        self._pools = {
            "http": type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http}),
            "https": type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https}),
        }
        super().__init__(pool_maxsize=4, max_retries=0)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pools
        self.poolmanager.key_fn_by_scheme = dict(self.poolmanager.key_fn_by_scheme)


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


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class CallbackClient:
    """Posts signed events to client apps through the guarded connection."""

    def __init__(self, policy: AddressPolicy, *, timeout: float = DELIVERY_TIMEOUT):
        self.policy = policy
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False  # no proxies from the environment
        adapter = _GuardedAdapter(policy)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def deliver(
        self, url: str, *, msg_id: str, body: bytes, secrets_in_use: list[str]
    ) -> DeliveryResult:
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "midtrans-gateway-webhooks/1",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(secrets_in_use, msg_id, timestamp, body),
        }
        started = time.perf_counter()
        try:
            self.policy.check_url(url, resolve=False)
            response = self.session.post(
                url, data=body, headers=headers, timeout=self.timeout, allow_redirects=False
            )
        except UnsafeCallbackURL as err:
            return DeliveryResult(None, _ms(started), None, f"refused: {err}")
        except requests.Timeout:
            return DeliveryResult(None, _ms(started), None, f"no answer in {self.timeout:g} s")
        except requests.RequestException as err:
            return DeliveryResult(
                None, _ms(started), None, f"connection failed: {type(err).__name__}"
            )
        excerpt = response.text[:EXCERPT] if response.content else ""
        return DeliveryResult(
            response.status_code,
            _ms(started),
            excerpt,
            None,
            _retry_after(response.headers.get("Retry-After")),
        )


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
