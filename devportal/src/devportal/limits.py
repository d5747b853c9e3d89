"""Rate limiting (leaky bucket per portal) and injected faults.

The bucket follows EN:``limits.md``: each HTTP request adds one unit, the bucket drains at
``rate`` units per second, and a request that would overflow ``burst`` is refused with
``503 QUERY_LIMIT_EXCEEDED`` (the refused request does not fill the bucket). A ``batch``
is one HTTP request and so one unit. :meth:`LeakyBucket.prefill` models another integration
of the portal (a second app, a webhook) that already used part of the shared bucket.

:class:`OperatingTime` models the per-method time budget (EN:``limits.md``): the server time a
method used over a sliding 10-minute window (ten 1-minute buckets); over ``limit`` the next
call of that method answers ``429 OPERATION_TIME_LIMIT`` until the oldest bucket drops out
(``operating_reset_at``). Every answer's ``time`` block carries ``operating`` and
``operating_reset_at`` of the method. Whether a ``batch`` is billed to ``batch`` or to its
inner commands is ``batch_billing`` (the docs say commands, the JS SDK also keys on batch).
The server time a call uses is its real duration, or a synthetic ``costs[method]`` (seconds)
so tests and benches reach the limit without waiting ten minutes.

Faults are test switches: "the next N requests" or "requests for T seconds", for one portal
or all, optionally for one method, answer with a chosen failure instead of running.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field

FAULT_KINDS = (
    "query_limit",  # 503 QUERY_LIMIT_EXCEEDED
    "operation_time_limit",  # 429 OPERATION_TIME_LIMIT
    "internal_error",  # 500 INTERNAL_SERVER_ERROR
    "expired_token",  # 401 expired_token
    "invalid_token",  # 401 invalid_token
    "overload",  # 503 OVERLOAD_LIMIT
    "hang",  # no answer for ``hang_seconds``, then the connection is closed
)


class LeakyBucket:
    """Thread-safe leaky bucket: ``take()`` is True when the request may pass."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._level = 0.0
        self._last = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self._clock()
            self._level = max(0.0, self._level - (now - self._last) * self.rate)
            self._last = now
            if self._level + 1 > self.burst:
                return False
            self._level += 1
            return True

    def prefill(self, level: float) -> None:
        """Set the fill level now (another client of the portal used ``level`` slots)."""
        with self._lock:
            self._level = float(max(0.0, min(level, self.burst)))
            self._last = self._clock()

    @property
    def level(self) -> float:
        with self._lock:
            now = self._clock()
            return max(0.0, self._level - (now - self._last) * self.rate)

    def reset(self) -> None:
        with self._lock:
            self._level = 0.0
            self._last = self._clock()


BATCH_BILLING = ("commands", "batch", "both")


class OperatingTime:
    """Per-method server time over a sliding window (ten buckets of ``window / 10``)."""

    def __init__(
        self,
        limit: float = 480.0,
        window: float = 600.0,
        clock: Callable[[], float] = time.time,
        batch_billing: str = "commands",
    ) -> None:
        if batch_billing not in BATCH_BILLING:
            raise ValueError(f"batch_billing must be one of {BATCH_BILLING}")
        self.limit = limit
        self.window = window
        self.slot = window / 10
        self.batch_billing = batch_billing
        self.costs: dict[str, float] = {}
        self._clock = clock
        self._lock = threading.Lock()
        self._used: dict[str, dict[int, float]] = {}

    def _buckets(self, method: str, now: float) -> dict[int, float]:
        current = int(now // self.slot)
        buckets = self._used.setdefault(method, {})
        for key in [k for k in buckets if k <= current - 10]:
            del buckets[key]
        return buckets

    def cost(self, method: str, duration: float) -> float:
        """The server time billed for one call of ``method`` that took ``duration``."""
        return self.costs.get(method, duration)

    def add(self, method: str, seconds: float) -> None:
        if seconds <= 0:
            return
        with self._lock:
            now = self._clock()
            buckets = self._buckets(method, now)
            key = int(now // self.slot)
            buckets[key] = buckets.get(key, 0.0) + seconds

    def operating(self, method: str) -> float:
        with self._lock:
            return sum(self._buckets(method, self._clock()).values())

    def reset_at(self, method: str) -> int:
        """When the oldest bucket drops out (now + window when nothing was used)."""
        with self._lock:
            now = self._clock()
            buckets = self._buckets(method, now)
            oldest = min(buckets) if buckets else int(now // self.slot)
            return int((oldest + 10) * self.slot)

    def blocked(self, method: str) -> bool:
        return self.operating(method) >= self.limit

    def block(self, method: str) -> dict[str, float]:
        """The ``time`` fields of an answer for ``method``."""
        return {
            "operating": round(self.operating(method), 6),
            "operating_reset_at": self.reset_at(method),
        }

    def reset(self) -> None:
        with self._lock:
            self._used.clear()


@dataclass
class Fault:
    """One injected failure rule; ``remaining`` None = unlimited until ``until``."""

    kind: str
    portal: str | None = None
    method: str | None = None
    remaining: int | None = None
    until: float | None = None
    hang_seconds: float = 65.0
    hits: int = field(default=0)

    def matches(self, portal: str | None, method: str | None, now: float) -> bool:
        if self.until is not None and now >= self.until:
            return False
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.portal is not None and portal != self.portal:
            return False
        return self.method is None or method == self.method


class Faults:
    """The registry of injected faults, consulted once per REST/OAuth request."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def inject(
        self,
        kind: str,
        *,
        count: int | None = None,
        seconds: float | None = None,
        portal: str | None = None,
        method: str | None = None,
        hang_seconds: float = 65.0,
    ) -> Fault:
        """Make the next ``count`` requests (or all for ``seconds``) fail with ``kind``.

        With neither ``count`` nor ``seconds`` the fault stays until :meth:`clear`.
        ``portal`` is a slug (None = every portal and the OAuth server); ``method`` a REST
        method name or ``"oauth.token"`` (None = any).
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {FAULT_KINDS}")
        fault = Fault(
            kind=kind,
            portal=portal,
            method=method,
            remaining=count,
            until=None if seconds is None else self._clock() + seconds,
            hang_seconds=hang_seconds,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, portal: str | None, method: str | None) -> Fault | None:
        """The first active fault for this request (consuming one of its ``count``)."""
        now = self._clock()
        with self._lock:
            for fault in self._faults:
                if fault.matches(portal, method, now):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    fault.hits += 1
                    return fault
        return None

    def clear(self, portal: str | None = None) -> None:
        with self._lock:
            self._faults = [f for f in self._faults if portal is not None and f.portal != portal]
