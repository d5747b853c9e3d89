"""Prometheus metrics: events in, jobs failed, timers pending, escalations, REST calls.

REST calls, limit hits, escalations and job failures happen in the RQ workers, events in the
gunicorn workers: with ``PROMETHEUS_MULTIPROC_DIR`` set (the same directory for the web app
and the workers on a host, emptied at deploy), every process writes its counters there and
``/metrics`` sums them (prometheus_client's multiprocess mode). Without it, ``/metrics`` shows
this process's counters only (tests, the demo). The ``/metrics`` page itself is a view of
:mod:`b24app.health`: this module is below the REST client that counts its calls here, so it
imports nothing of the app.
"""

from __future__ import annotations

import hmac
import os
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import Gauge
from prometheus_client import multiprocess

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS_IN = Counter("b24app_events_total", "Bitrix24 events accepted", ["event"], registry=REGISTRY)
REQUESTS_REJECTED = Counter(
    "b24app_requests_rejected_total", "Inbound requests rejected", ["status"], registry=REGISTRY
)
JOBS_FAILED = Counter("b24app_jobs_failed_total", "Jobs that raised", ["job"], registry=REGISTRY)
TIMERS_PENDING = Gauge(
    "b24app_timers_pending",
    "Pending SLA/reminder timers",
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)
ESCALATIONS_SENT = Counter(
    "b24app_notifications_sent_total",
    "SLA reminders/escalations sent",
    ["level"],
    registry=REGISTRY,
)
# No per-portal labels: a member_id label would enumerate the tenants to whoever reads
# /metrics and grow without bound; per-portal detail is in the REST log (rest_log table).
REST_CALLS = Counter(
    "b24app_rest_calls_total", "Outbound REST calls", ["outcome"], registry=REGISTRY
)
REST_LIMIT_HITS = Counter(
    "b24app_rest_limit_hits_total",
    "QUERY_LIMIT_EXCEEDED / OPERATION_TIME_LIMIT answers",
    registry=REGISTRY,
)


def presents_token(authorization: str | None, expected: str) -> bool:
    """``Authorization: Bearer <expected>`` (compared in constant time); never with no token
    configured. The one check of /metrics and of /health's details."""
    header = authorization or ""
    presented = header[7:].strip() if header[:7].lower() == "bearer " else ""
    return bool(expected and presented) and hmac.compare_digest(
        presented.encode(), expected.encode()
    )


def exposed_registry() -> CollectorRegistry:
    """All processes' metrics in multiprocess mode, else this process's registry."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def count_failed_job(job: Any, exc_type: type[BaseException], *_: Any) -> bool:
    """RQ exception handler: count every job that raised, by function name; RQ goes on to
    its default handling (retry or failed registry)."""
    JOBS_FAILED.labels(getattr(job, "func_name", "unknown").rsplit(".", 1)[-1]).inc()
    return True
