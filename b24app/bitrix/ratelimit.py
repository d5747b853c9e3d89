"""A leaky bucket per portal in Redis, shared by every web and worker process.

Bitrix24 counts HTTP requests per portal in a leaky bucket (2 req/s drain, 50 deep; 5/250
on Enterprise) and refuses the overflow with ``503 QUERY_LIMIT_EXCEEDED``.
A per-process throttle cannot keep N workers under one shared limit, so the bucket state
lives in Redis and is updated by one Lua script (atomic, no read-modify-write race). The
script reads Redis' own clock, so processes on hosts with skewed clocks still agree.

``acquire()`` either takes a slot (returns 0) or returns how long to wait before a slot
frees up; :meth:`LeakyBucket.wait` sleeps and tries again.

Two additions for a bucket shared with strangers and with urgent work (issue 14):

* :meth:`LeakyBucket.fill` — after a ``QUERY_LIMIT_EXCEEDED`` the portal's bucket is full
  whatever ours said (another app, a webhook, a second installation use it too), so ours is
  set full and every process paces at the drain rate from there instead of retrying blind.
* priorities — ``BULK`` takes a slot only while the bucket is below ``burst - reserve`` and no
  ``URGENT`` caller is waiting (an urgent caller that has to wait raises a short-lived flag
  ``<key>:urgent``); ``URGENT``/``NORMAL`` may use the whole bucket. So a saturating import
  always leaves ``reserve`` slots for a robot answer or an SLA reminder, and once those
  are used up the drain goes to the urgent calls first.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

KEY_PREFIX = "b24app:bucket:"

# KEYS[1] bucket hash, KEYS[2] "an urgent caller waits" flag; ARGV rate (units/s), burst
# (capacity), cost, priority (0 urgent, 1 normal, 2 bulk), reserve (slots bulk may not use),
# mode ("take", "fill" or "peek": the wait "take" would answer, changing nothing).
# Returns "0" when the units were taken, else the seconds to wait (as a string: Lua numbers
# become Redis integers and would lose the fraction).
_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local prio = tonumber(ARGV[4]) or 1
local reserve = tonumber(ARGV[5]) or 0
local mode = ARGV[6] or 'take'
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'level', 'ts')
local level = tonumber(state[1]) or 0
local ts = tonumber(state[2]) or now
if now > ts then
  level = math.max(0, level - (now - ts) * rate)
else
  now = ts
end
local ttl = math.ceil(burst / rate * 1000) + 1000
if mode == 'fill' then
  level = math.max(level, burst)
  redis.call('HSET', KEYS[1], 'level', tostring(level), 'ts', tostring(now))
  redis.call('PEXPIRE', KEYS[1], ttl)
  return '0'
end
local limit = burst
if prio >= 2 then
  limit = math.max(1, burst - reserve)
  if redis.call('EXISTS', KEYS[2]) == 1 then
    return tostring(math.max((level + cost - limit) / rate, 1 / rate))
  end
end
if mode == 'peek' then
  return tostring(math.max(0, (level + cost - limit) / rate))
end
if level + cost <= limit then
  level = level + cost
  redis.call('HSET', KEYS[1], 'level', tostring(level), 'ts', tostring(now))
  redis.call('PEXPIRE', KEYS[1], ttl)
  return '0'
end
local wait = (level + cost - limit) / rate
if prio == 0 then
  redis.call('SET', KEYS[2], '1', 'PX', math.ceil(wait * 1000) + 500)
end
return tostring(wait)
"""


class LeakyBucket:
    """The shared bucket of one portal (key ``b24app:bucket:<member_id>``).

    If Redis is unreachable the bucket degrades to a process-local one rather than failing
    the REST call: the server-side 503 handling still backs the client up.
    """

    def __init__(
        self,
        redis: Redis,
        member_id: str,
        rate: float,
        burst: int,
        *,
        sleep: Callable[[float], None] = time.sleep,
        reserve: int = 0,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.redis = redis
        self.key = KEY_PREFIX + member_id
        self.rate = float(rate)
        self.burst = int(burst)
        self.reserve = max(0, min(int(reserve), self.burst - 1))
        self._sleep = sleep
        self._script = redis.register_script(_LUA)
        self._local_lock = threading.Lock()
        self._local_level = 0.0
        self._local_ts = time.monotonic()

    def acquire(self, cost: int = 1, priority: int = 1) -> float:
        """Take ``cost`` units now (returns 0.0) or return the seconds to wait first.

        ``priority`` 0 (urgent), 1 (normal) or 2 (bulk), see the module docstring.
        """
        try:
            raw = self._script(
                keys=[self.key, self.key + ":urgent"],
                args=[self.rate, self.burst, cost, int(priority), self.reserve, "take"],
            )
        except RedisError:
            log.warning("rate-limit bucket unavailable in Redis; using a local one")
            return self._acquire_local(cost)
        return float(raw.decode() if isinstance(raw, bytes) else raw)

    def peek(self, cost: int = 1, priority: int = 1) -> float:
        """The seconds :meth:`acquire` would ask to wait now (0.0: a slot is free), without
        taking anything or raising the urgent flag."""
        try:
            raw = self._script(
                keys=[self.key, self.key + ":urgent"],
                args=[self.rate, self.burst, cost, int(priority), self.reserve, "peek"],
            )
        except RedisError:
            return 0.0
        return float(raw.decode() if isinstance(raw, bytes) else raw)

    def fill(self) -> None:
        """The portal said its bucket is full: make ours full too (pace from here)."""
        try:
            self._script(
                keys=[self.key, self.key + ":urgent"],
                args=[self.rate, self.burst, 0, 1, self.reserve, "fill"],
            )
        except RedisError:
            with self._local_lock:
                self._local_level = float(self.burst)
                self._local_ts = time.monotonic()

    def _acquire_local(self, cost: int) -> float:
        with self._local_lock:
            now = time.monotonic()
            self._local_level = max(0.0, self._local_level - (now - self._local_ts) * self.rate)
            self._local_ts = now
            if self._local_level + cost <= self.burst:
                self._local_level += cost
                return 0.0
            return (self._local_level + cost - self.burst) / self.rate

    def wait(self, cost: int = 1, *, timeout: float | None = None, priority: int = 1) -> float:
        """Block until ``cost`` units are taken; return the seconds spent waiting.

        A little jitter spreads the wake-ups of many waiting workers, so they do not all
        hit the script in the same millisecond and most go back to sleep.
        """
        waited = 0.0
        while True:
            needed = self.acquire(cost, priority)
            if needed <= 0:
                return waited
            if timeout is not None and waited + needed > timeout:
                raise TimeoutError(f"no rate-limit slot within {timeout:.1f}s")
            pause = needed + random.uniform(0, min(0.05, 1 / self.rate))
            self._sleep(pause)
            waited += pause

    def level(self) -> float:
        """The current fill level (for tests and diagnostics)."""
        level, ts = self.redis.hmget(self.key, "level", "ts")
        if level is None or ts is None:
            return 0.0
        now_s, now_us = self.redis.time()
        now = now_s + now_us / 1_000_000
        return max(0.0, float(level) - (now - float(ts)) * self.rate)

    def reset(self) -> None:
        self.redis.delete(self.key)
