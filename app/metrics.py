"""Prometheus metrics of the gateway (served by `GET /metrics`, see app/observability.py).

Plain prometheus_client objects, so modules that know nothing of Flask (midtrans, payments)
can count what they do. Under gunicorn, `PROMETHEUS_MULTIPROC_DIR` makes them add up across
workers.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

HTTP_REQUESTS = Counter(
    "gateway_http_requests_total", "HTTP requests answered", ["endpoint", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "gateway_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
MIDTRANS_CALLS = Counter(
    "gateway_midtrans_calls_total",
    "Calls to Midtrans by operation and outcome",
    ["operation", "outcome"],
)
MIDTRANS_LATENCY = Histogram(
    "gateway_midtrans_call_duration_seconds",
    "Time Midtrans took to answer",
    ["operation"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
NOTIFICATIONS = Counter(
    "gateway_notifications_total", "Midtrans notifications received by outcome", ["outcome"]
)


def record_midtrans_call(operation: str, outcome: str, seconds: float) -> None:
    MIDTRANS_CALLS.labels(operation, outcome).inc()
    MIDTRANS_LATENCY.labels(operation).observe(seconds)
