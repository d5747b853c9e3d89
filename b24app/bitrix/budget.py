"""A portal's REST budget beyond the leaky bucket: its plan, priorities, method time.

* **Plan** — the bucket's size depends on the portal's licence (EN:``limits.md``: Enterprise
  5 req/s / 250, every other plan 2 / 50). ``app.info`` answers ``LICENSE`` (``ru_ent250``,
  ``de_ent10000``, ``ru_pro``…); :func:`store_plan` keeps the plan in Redis for
  :data:`PLAN_TTL` and :func:`plan_is_stale` tells the daily refresh when to read it again.
  An unknown plan falls back to the standard figures (the safe side).
* **Priority** — who is waiting for a request: a workflow (robot answer), a manager (SLA
  reminder), or nobody in particular (bulk reads). :func:`rest_priority` sets it for the
  calls made inside a ``with`` block; the bucket (:mod:`.ratelimit`) lets bulk calls use only
  part of the bucket and makes them yield while an urgent call waits.
* **Method time** — every answer's ``time`` block carries ``operating`` (server seconds the
  method used over the last 10 minutes) and ``operating_reset_at``. :class:`OperatingMeter`
  keeps the last figures per method in Redis (shared by all workers) and tells the client
  how long to hold back a call so the method never reaches ``OPERATION_TIME_LIMIT``. A
  ``batch`` is accounted both ways: the outer answer under ``batch`` (the JS SDK keys a
  batch's time on the batch) and each ``result_time[cmd]`` under its own method (the docs
  bill the commands); before a batch both ``batch`` and every inner method are checked.

Nothing here imports Flask.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import json
import re
import time
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from typing import TYPE_CHECKING

from redis import Redis
from redis.exceptions import RedisError

if TYPE_CHECKING:
    from b24app.bitrix.client import BitrixClient
    from b24app.config import Settings

PLAN_PREFIX = "b24app:plan:"
PLAN_TTL = 3 * 86400  # kept 3 days; re-read after 1 (a missed refresh keeps the last plan)
PLAN_MAX_AGE = 86400
STANDARD = "standard"
ENTERPRISE = "enterprise"
OPERATING_PREFIX = "b24app:operating:"
_ENTERPRISE = re.compile(r"(^|_)ent", re.IGNORECASE)


class Priority(enum.IntEnum):
    """Who waits for a REST call; lower goes first."""

    URGENT = 0  # a workflow waits (bizproc.event.send), an SLA reminder/escalation is due
    NORMAL = 1  # a person waits on a page, install/registration
    BULK = 2  # event fetches, backfill, reports: nobody waits for one request


_priority: contextvars.ContextVar[Priority] = contextvars.ContextVar(
    "b24app_rest_priority", default=Priority.NORMAL
)


def current_priority() -> Priority:
    return _priority.get()


@contextmanager
def rest_priority(priority: Priority) -> Iterator[None]:
    """Calls made inside the block take the bucket at ``priority``."""
    token = _priority.set(priority)
    try:
        yield
    finally:
        _priority.reset(token)


def urgent_rest() -> contextlib.AbstractContextManager[None]:
    """Robot answers, SLA reminders/escalations, client reminders."""
    return rest_priority(Priority.URGENT)


def bulk_rest() -> contextlib.AbstractContextManager[None]:
    """Event fetches, backfill, reports."""
    return rest_priority(Priority.BULK)


# -- the plan -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PortalPlan:
    family: str  # ``standard`` or ``enterprise``
    license: str
    checked_at: float


def plan_family(license: str | None) -> str:
    """``enterprise`` for Enterprise licences (``ru_ent250``, ``de_ent10000``, ``ent``)."""
    return ENTERPRISE if license and _ENTERPRISE.search(license.strip()) else STANDARD


def limits_for(family: str | None, settings: Settings) -> tuple[float, int]:
    """The bucket (rate, burst) of a plan family; the standard figures when unknown."""
    if family == ENTERPRISE:
        return float(settings.rest_rate_enterprise), int(settings.rest_burst_enterprise)
    return float(settings.rest_rate), int(settings.rest_burst)


def load_plan(redis: Redis, member_id: str) -> PortalPlan | None:
    try:
        raw = redis.hgetall(PLAN_PREFIX + member_id)
    except RedisError:
        return None
    if not raw:
        return None
    data = {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}

    def text(key: str) -> str:
        value = data.get(key) or b""
        return value.decode() if isinstance(value, bytes) else str(value)

    try:
        checked = float(text("checked_at") or 0)
    except ValueError:
        checked = 0.0
    return PortalPlan(text("family") or STANDARD, text("license"), checked)


def store_plan(redis: Redis, member_id: str, license: str, now: float | None = None) -> PortalPlan:
    plan = PortalPlan(plan_family(license), license, time.time() if now is None else now)
    key = PLAN_PREFIX + member_id
    redis.hset(
        key,
        mapping={"family": plan.family, "license": license, "checked_at": str(plan.checked_at)},
    )
    redis.expire(key, PLAN_TTL)
    return plan


def plan_is_stale(plan: PortalPlan | None, now: float | None = None) -> bool:
    return plan is None or (time.time() if now is None else now) - plan.checked_at >= PLAN_MAX_AGE


def refresh_plan(client: BitrixClient) -> PortalPlan:
    """Read the portal's licence from ``app.info`` (one request) and store its plan."""
    info = client.call("app.info") or {}
    license = ""
    if isinstance(info, dict):
        license = str(info.get("LICENSE") or info.get("LICENSE_FAMILY") or "")
    return store_plan(client.redis, client.member_id, license)


# -- method time ----------------------------------------------------------------------------


def command_methods(params: Mapping[str, Any]) -> list[str]:
    """The method of every command of a ``batch`` request's ``cmd`` (``method?query``)."""
    cmd = params.get("cmd")
    values = cmd.values() if isinstance(cmd, dict) else cmd if isinstance(cmd, list) else []
    return [str(v).split("?", 1)[0].strip().lower() for v in values]


@dataclass
class MethodTime:
    operating: float
    reset_at: float
    cost: float  # server seconds one call adds (last positive increment seen)
    next_at: float  # earliest start of the next call while pacing


class OperatingMeter:
    """The last ``time.operating`` figures per method of one portal, in Redis.

    Pacing: below ``pace_from`` × limit nothing is held back. Above it the calls of the
    method are spaced so that what is left up to ``ceiling`` × limit lasts until
    ``operating_reset_at``; at the ceiling the method waits for the reset. The limit is a
    setting (480 s in the docs' example, "set by the Bitrix24 configuration").
    """

    def __init__(
        self,
        redis: Redis,
        member_id: str,
        limit: float = 480.0,
        *,
        pace_from: float = 0.5,
        ceiling: float = 0.9,
        clock: Any = time.time,
    ) -> None:
        self.redis = redis
        self.key = OPERATING_PREFIX + member_id
        self.limit = float(limit)
        self.pace_from = pace_from
        self.ceiling = ceiling
        self.clock = clock

    def get(self, method: str) -> MethodTime | None:
        try:
            raw = self.redis.hget(self.key, method)
        except RedisError:
            return None
        return self._parse(raw)

    def _parse(self, raw: Any) -> MethodTime | None:
        if not raw:
            return None
        try:
            data = json.loads(raw)
            state = MethodTime(
                float(data["operating"]),
                float(data["reset_at"]),
                float(data.get("cost") or 0.0),
                float(data.get("next_at") or 0.0),
            )
        except (ValueError, KeyError, TypeError):
            return None
        if self.clock() >= state.reset_at:  # the window moved on: the figure is stale
            return None
        return state

    def _put(self, method: str, state: MethodTime) -> None:
        try:
            self.redis.hset(self.key, method, json.dumps(state.__dict__))
            self.redis.expire(self.key, 900)
        except RedisError:
            pass

    def record(self, method: str, timing: Any) -> None:
        """Note an answer's ``time`` block (``operating``, ``operating_reset_at``)."""
        if not isinstance(timing, Mapping):
            return
        try:
            operating = float(timing["operating"])
            reset_at = float(timing["operating_reset_at"])
        except (KeyError, TypeError, ValueError):
            return  # no figure is better than a made-up 0
        if operating < self.pace_from * self.limit / 2:
            # Far from pacing: no Redis round trip per call. A higher figure stored earlier
            # expires at its ``operating_reset_at``, which is when the figure can drop.
            return
        before = self.get(method)
        cost = before.cost if before is not None else 0.0
        if before is not None and operating > before.operating:
            cost = operating - before.operating
        next_at = before.next_at if before is not None else 0.0
        state = MethodTime(operating, reset_at, cost, next_at)
        now = self.clock()
        interval = self._interval(state, now)
        if interval > 0:
            state.next_at = max(next_at, now + interval)
        self._put(method, state)

    def _interval(self, state: MethodTime, now: float) -> float:
        window = max(0.0, state.reset_at - now)
        soft = self.pace_from * self.limit
        hard = self.ceiling * self.limit
        if state.operating < soft:
            return 0.0
        if state.operating >= hard:
            return window
        cost = state.cost or (state.operating / 100.0)
        return min(window, window * cost / (hard - state.operating))

    def delay(self, method: str) -> float:
        """Seconds to hold a call of ``method`` back (0 = go)."""
        return self._delay(self.get(method))

    def max_delay(self, methods: list[str]) -> float:
        """:meth:`delay` of the slowest of ``methods`` (a batch and its commands), read in
        one Redis round trip instead of one per method."""
        try:
            raws = self.redis.hmget(self.key, methods) if methods else []
        except RedisError:
            return 0.0
        return max((self._delay(self._parse(raw)) for raw in raws), default=0.0)

    def _delay(self, state: MethodTime | None) -> float:
        if state is None:
            return 0.0
        now = self.clock()
        if state.operating >= self.ceiling * self.limit:
            return max(0.0, state.reset_at - now)
        return max(0.0, state.next_at - now)
