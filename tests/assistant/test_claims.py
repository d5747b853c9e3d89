"""Slot claims in Redis: visible to the other dialogs at once, never to their own dialog,
gone when released or expired (a crashed turn leaves no phantom time)."""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

from b24app.assistant import claims
from b24app.context import Services

MOSCOW = ZoneInfo("Europe/Moscow")
MEMBER = "c" * 32


def test_a_claim_is_seen_by_the_other_dialogs_only(services: Services) -> None:
    start = dt.datetime(2026, 12, 1, 15, 0)  # naive UTC: 18:00 in Moscow
    claims.claim(services.redis, MEMBER, 7, start, 90)
    assert claims.claimed(services.redis, MEMBER, MOSCOW, exclude_dialog=8) == [
        (dt.datetime(2026, 12, 1, 18, 0), dt.datetime(2026, 12, 1, 19, 30))
    ]
    assert claims.claimed(services.redis, MEMBER, MOSCOW, exclude_dialog=7) == []
    assert claims.claimed(services.redis, "d" * 32, MOSCOW, exclude_dialog=None) == []
    claims.release(services.redis, MEMBER, 7)
    assert claims.claimed(services.redis, MEMBER, MOSCOW, exclude_dialog=None) == []


def test_an_expired_or_garbled_claim_is_dropped(services: Services) -> None:
    start = dt.datetime(2026, 12, 1, 15, 0)
    claims.claim(services.redis, MEMBER, 7, start, 60)
    key = f"b24app:asst:claims:{MEMBER}"
    services.redis.hset(key, "9", f"{start.timestamp():.0f}|{start.timestamp() + 60:.0f}|"
                                  f"{time.time() - 1:.0f}")  # fmt: skip
    services.redis.hset(key, "10", "garbage")
    assert len(claims.claimed(services.redis, MEMBER, MOSCOW, exclude_dialog=None)) == 1
    assert sorted(services.redis.hkeys(key)) == [b"7"]
    assert 0 < services.redis.ttl(key) <= claims.CLAIM_TTL  # an idle portal's hash goes too
