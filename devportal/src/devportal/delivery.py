"""The queue server: POSTs events and robot calls to the app, the way Bitrix24's does.

Bitrix24 does not call handlers inside the transaction that changed the data: the change
is committed, a message goes to a queue, and a queue server POSTs it later (EN:
``api-reference/events/index.md``). Here a pool of worker threads plays that role.
Failures are recorded and **never retried** (as documented).

Test switches (all on :class:`DeliveryQueue`):

* ``mode``: ``"async"`` (default, background threads), ``"sync"`` (POST in the caller's
  thread before the action returns), ``"drop"`` (record as dropped, never send);
* ``duplicate = True``: every message is sent twice (at-least-once behaviour);
* ``hold()`` / ``release(order="fifo"|"reverse"|"shuffle")``: park messages and send them
  later in a chosen order (out-of-order delivery);
* ``drop_next(n)``: lose the next ``n`` messages;
* ``wait_idle(timeout)``: wait until nothing is queued or being sent.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from urllib.parse import urlencode

import requests

from devportal.recording import DeliveryRecord
from devportal.recording import Recorder

MODES = ("async", "sync", "drop")
EVENTS = "events"
BIZPROC = "bizproc"
ROUTES = {"robot": BIZPROC}  # delivery kind → lane; the rest go on EVENTS
USER_AGENT = "Bitrix24 Webhook Engine"


class DeliveryQueue:
    """Thread pool that POSTs ``application/x-www-form-urlencoded`` bodies to the app."""

    def __init__(
        self,
        recorder: Recorder,
        *,
        workers: int = 4,
        robot_workers: int = 2,
        timeout: float = 10.0,
    ) -> None:
        self.recorder = recorder
        self.routes = dict(ROUTES)
        self.timeout = timeout
        self.mode = "async"
        self.duplicate = False
        self._drop_next = 0
        self._held: list[tuple[DeliveryRecord, list[tuple[str, str]]]] | None = None
        self._queues: dict[
            str, queue.Queue[tuple[DeliveryRecord, list[tuple[str, str]]] | None]
        ] = {
            EVENTS: queue.Queue(),
            BIZPROC: queue.Queue(),
        }
        self._pending = 0
        self._cond = threading.Condition()
        self._local = threading.local()
        self._threads = [
            (lane, threading.Thread(target=self._run, args=(self._queues[lane],),
                                    name=f"devportal-{lane}-{i}", daemon=True))
            for lane, count in ((EVENTS, workers), (BIZPROC, robot_workers))
            for i in range(count)
        ]  # fmt: skip
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            for _, thread in self._threads:
                thread.start()

    def stop(self) -> None:
        if self._started:
            for lane, _ in self._threads:
                self._queues[lane].put(None)
            for _, thread in self._threads:
                thread.join(timeout=5)
            self._started = False

    # -- switches ---------------------------------------------------------------------------

    def drop_next(self, count: int) -> None:
        with self._cond:
            self._drop_next += count

    def hold(self) -> None:
        """Park every new message until :meth:`release`."""
        with self._cond:
            if self._held is None:
                self._held = []

    def release(self, order: str = "fifo", seed: int | None = None) -> int:
        """Send the parked messages in ``order``; returns how many."""
        with self._cond:
            held, self._held = self._held or [], None
        if order == "reverse":
            held.reverse()
        elif order == "shuffle":
            random.Random(seed).shuffle(held)
        elif order != "fifo":
            raise ValueError("order is fifo, reverse or shuffle")
        for record, pairs in held:
            self._dispatch(record, pairs)
        return len(held)

    # -- sending ----------------------------------------------------------------------------

    def submit(self, record: DeliveryRecord, pairs: list[tuple[str, str]]) -> None:
        """Queue one message (or send it now in ``sync`` mode)."""
        with self._cond:
            if self._drop_next > 0 or self.mode == "drop":
                if self._drop_next > 0:
                    self._drop_next -= 1
                record.dropped = True
                self.recorder.add_delivery(record)
                return
            if self._held is not None:
                self._held.append((record, pairs))
                return
        self._dispatch(record, pairs)

    def _dispatch(self, record: DeliveryRecord, pairs: list[tuple[str, str]]) -> None:
        copies = [record]
        if self.duplicate:
            copies.append(
                DeliveryRecord(
                    record.portal,
                    record.kind,
                    record.name,
                    record.url,
                    dict(record.form),
                    dict(record.query),
                )
            )
        for copy in copies:
            if self.mode == "sync" or not self._started:
                self.post(copy, pairs)
            else:
                with self._cond:
                    self._pending += 1
                self._queues[self.lane_of(copy.kind)].put((copy, pairs))

    def lane_of(self, kind: str) -> str:
        """The lane a delivery kind is sent on (see the module docstring)."""
        lane = self.routes.get(kind, EVENTS)
        return lane if lane in self._queues else EVENTS

    def post(
        self, record: DeliveryRecord, pairs: list[tuple[str, str]]
    ) -> requests.Response | None:
        """POST now, record the outcome, never raise."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        url = record.url
        if record.query:
            url += ("&" if "?" in url else "?") + urlencode(record.query)
        record.sent_at = time.time()
        response: requests.Response | None = None
        try:
            response = session.post(
                url,
                data=pairs,
                timeout=self.timeout,
                allow_redirects=False,
                headers={"User-Agent": USER_AGENT},
            )
            record.status = response.status_code
            record.body = response.text[:2000]
        except requests.RequestException as exc:
            record.error = f"{type(exc).__name__}: {exc}"[:500]
        record.duration = time.time() - record.sent_at
        self.recorder.add_delivery(record)
        return response

    def _run(self, lane: queue.Queue[tuple[DeliveryRecord, list[tuple[str, str]]] | None]) -> None:
        while True:
            item = lane.get()
            if item is None:
                return
            try:
                self.post(*item)
            finally:
                with self._cond:
                    self._pending -= 1
                    self._cond.notify_all()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """True once nothing is queued or in flight (held messages do not count)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    @property
    def pending(self) -> int:
        with self._cond:
            return self._pending
