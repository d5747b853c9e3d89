"""How many new dialogs the assistant takes per open line: ``settings["assistant"]
["dialogs_per_hour"]`` (:data:`DEFAULT_PER_HOUR`, bounded by :data:`PER_HOUR`) in any sliding
hour, per portal and line. A chat over the rate goes to the operators as when the assistant is
off for its line (a person answers; nothing is pre-booked by the bot), so a crowd of scripted
visitors cannot take the calendar faster than the salon's staff can look at it.

Redis: a sorted set per portal and line, chat → when admitted (epoch seconds); admitting is
one Lua script (check and add at once, so two first turns on two workers cannot both take the
last place), idempotent per chat (a retried first turn is admitted again) and bounded (the set
never holds more than the rate).
"""

from __future__ import annotations

import time
from typing import Any

from redis import Redis

from b24app.bounded import clamped

DEFAULT_PER_HOUR = 30
PER_HOUR = (1, 1000)  # the settings schema's bounds too
WINDOW = 3600

_ADMIT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[3])
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


def per_hour(assistant: dict[str, Any]) -> int:
    return clamped(assistant.get("dialogs_per_hour"), DEFAULT_PER_HOUR, PER_HOUR)


def admit_dialog(
    redis: Redis, member_id: str, line_id: str, chat_id: str, limit: int, now: float | None = None
) -> bool:
    """May the assistant take this chat (its first turn)? False: the line's hour is full."""
    key = f"b24app:asst:new-dialogs:{member_id}:{line_id or '-'}"
    moment = time.time() if now is None else now
    return bool(redis.eval(_ADMIT, 1, key, f"{moment:.3f}", chat_id, WINDOW, limit))
