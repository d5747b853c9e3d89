"""What the app did to the emulator and what the emulator sent to the app, for assertions."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from dataclasses import field
from typing import Any


@dataclass(frozen=True)
class CallRecord:
    """One REST method call (an HTTP request, or one command inside a ``batch``)."""

    portal: str | None
    method: str
    params: dict[str, Any]
    status: int
    error: str | None
    time: float
    duration: float
    in_batch: bool = False
    user_id: int | None = None
    http_method: str = "POST"

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class DeliveryRecord:
    """One POST the portal made to the app (event, robot call, install, placement)."""

    portal: str
    kind: str  # "event" | "robot" | "installer" | "placement" | "app"
    name: str  # event code, robot code, placement code
    url: str
    form: dict[str, str]
    query: dict[str, str] = field(default_factory=dict)
    status: int | None = None
    error: str | None = None
    sent_at: float | None = None
    duration: float | None = None
    dropped: bool = False
    body: str = ""


class Recorder:
    """Append-only, lock-protected logs with simple filters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[CallRecord] = []
        self._deliveries: list[DeliveryRecord] = []
        self._http: dict[str | None, int] = {}

    def add_call(self, record: CallRecord) -> None:
        with self._lock:
            self._calls.append(record)

    def count_http(self, portal: str | None) -> None:
        with self._lock:
            self._http[portal] = self._http.get(portal, 0) + 1

    def http_requests(self, portal: str | None = None) -> int:
        with self._lock:
            if portal is None:
                return sum(self._http.values())
            return self._http.get(portal, 0)

    def add_delivery(self, record: DeliveryRecord) -> None:
        with self._lock:
            self._deliveries.append(record)

    def calls(
        self,
        method: str | None = None,
        portal: str | None = None,
        *,
        error: str | None = None,
        in_batch: bool | None = None,
    ) -> list[CallRecord]:
        with self._lock:
            rows = list(self._calls)
        return [
            r
            for r in rows
            if (method is None or r.method == method)
            and (portal is None or r.portal == portal)
            and (error is None or r.error == error)
            and (in_batch is None or r.in_batch == in_batch)
        ]

    def deliveries(
        self, kind: str | None = None, name: str | None = None, portal: str | None = None
    ) -> list[DeliveryRecord]:
        with self._lock:
            rows = list(self._deliveries)
        return [
            r
            for r in rows
            if (kind is None or r.kind == kind)
            and (name is None or r.name == name)
            and (portal is None or r.portal == portal)
        ]

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()
            self._deliveries.clear()
            self._http.clear()
