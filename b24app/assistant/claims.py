"""Claims on a free time, so that two clients tapping the same time at once get it once.

A dialog's pre-booking becomes visible to the other chats when ``prebook`` writes it (after
the answer is sent, and after ``booking.v1.booking.add`` on a Booking resource). Two chats'
turns run on different workers: both could re-check the tapped time before either wrote it,
and both were pre-booked into it (``bench/assistant.py --booking``: 2 overlapping pairs of
5 bookings on one portal). Now a turn that taps a time reads what is taken, re-checks and
claims under the portal's slot lock (``service._process_locked``), and the claim is visible at
once: a Redis hash per portal, dialog → ``start|end|expires``
(UTC epoch seconds). A claim ends when the pre-booking row is written (it takes over), or
after :data:`CLAIM_TTL` when the turn never finishes (a crashed worker leaves no phantom
time); a retried turn claims again.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from contextlib import contextmanager

from redis import Redis

from b24app.assistant.slots import Interval

CLAIM_TTL = 300  # seconds: longer than a turn with its REST retries takes to finish
LOCK_TIMEOUT = 30


def _key(member_id: str) -> str:
    return f"b24app:asst:claims:{member_id}"


@contextmanager
def slot_lock(redis: Redis, member_id: str) -> Iterator[None]:
    """The portal's slot lock: one re-check-and-claim at a time per portal (short: a read of
    the claims and the pre-bookings, the dialog step, one write)."""
    lock = redis.lock(
        f"b24app:lock:assistant-slots:{member_id}",
        timeout=LOCK_TIMEOUT,
        blocking_timeout=LOCK_TIMEOUT,
    )
    with lock:
        yield


def claimed(
    redis: Redis, member_id: str, tz: dt.tzinfo, exclude_dialog: int | None
) -> list[Interval]:
    """The other dialogs' live claims, as local naive intervals; expired ones are dropped."""
    key = _key(member_id)
    now = time.time()
    out: list[Interval] = []
    expired: list[str] = []
    for raw_field, raw_value in redis.hgetall(key).items():
        field, value = _text(raw_field), _text(raw_value)
        try:
            start, end, expires = (float(x) for x in value.split("|"))
        except ValueError:
            expired.append(field)
            continue
        if expires < now:
            expired.append(field)
        elif int(field) != exclude_dialog:
            out.append((_local(start, tz), _local(end, tz)))
    if expired:
        redis.hdel(key, *expired)
    return out


def claim(
    redis: Redis, member_id: str, dialog_pk: int, start_utc: dt.datetime, minutes: int
) -> None:
    """Claim ``minutes`` from ``start_utc`` (naive UTC) for ``dialog_pk``; call under
    :func:`slot_lock` after the re-check."""
    start = start_utc.replace(tzinfo=dt.UTC).timestamp()
    value = f"{start:.0f}|{start + minutes * 60:.0f}|{time.time() + CLAIM_TTL:.0f}"
    pipe = redis.pipeline(transaction=False)
    pipe.hset(_key(member_id), str(dialog_pk), value)
    pipe.expire(_key(member_id), CLAIM_TTL)
    pipe.execute()


def release(redis: Redis, member_id: str, dialog_pk: int) -> None:
    """The dialog's pre-booking row now holds the time (or it let the time go)."""
    redis.hdel(_key(member_id), str(dialog_pk))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _local(epoch: float, tz: dt.tzinfo) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).astimezone(tz).replace(tzinfo=None)
