"""Claims on a free time, so that two clients tapping the same time at once get it once.

A dialog's pre-booking becomes visible to the other chats when ``prebook`` writes it (after
the answer is sent, and after ``booking.v1.booking.add`` on a Booking resource). Two chats'
turns run on different workers: both could re-check the tapped time before either wrote it,
and both were pre-booked into it (``bench/assistant.py --booking``: 2 overlapping pairs of
5 bookings on one portal). Now a turn that taps a time reads what is taken, re-checks and
claims under the portal's slot lock (``service._process_locked``), and the claim is visible at
once: a Redis hash per portal, dialog → ``start|end|expires``
(UTC epoch seconds), and beside it who claims (``owner``: the client's phone and chat user,
so that one client's second hold is refused while the first is still only a claim,
``assistant.holds``). A claim ends when the pre-booking row is written (it takes over), or
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


def _owners_key(member_id: str) -> str:
    return f"b24app:asst:claims:{member_id}:owners"


@contextmanager
def chat_lock(redis: Redis, member_id: str, chat_id: str) -> Iterator[None]:
    """The chat's lock: its turns, and the expiry of its hold, one at a time."""
    lock = redis.lock(
        f"b24app:lock:assistant:{member_id}:{chat_id}",
        timeout=LOCK_TIMEOUT,
        blocking_timeout=LOCK_TIMEOUT,
    )
    with lock:
        yield


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
    live = _live(redis, member_id, exclude_dialog).values()
    return [(_local(a, tz), _local(b, tz)) for a, b in live]


def claim_owners(redis: Redis, member_id: str, exclude_dialog: int | None) -> list[str]:
    """Who holds the other dialogs' live claims (the ``owner`` given to :func:`claim`)."""
    fields = [str(pk) for pk in _live(redis, member_id, exclude_dialog)]
    if not fields:
        return []
    return [_text(v) for v in redis.hmget(_owners_key(member_id), fields) if v is not None]


def _live(
    redis: Redis, member_id: str, exclude_dialog: int | None
) -> dict[int, tuple[float, float]]:
    """dialog → (start, end) epoch seconds of the live claims; expired ones are deleted."""
    key = _key(member_id)
    now = time.time()
    out: dict[int, tuple[float, float]] = {}
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
            out[int(field)] = (start, end)
    if expired:
        redis.hdel(key, *expired)
        redis.hdel(_owners_key(member_id), *expired)
    return out


def claim(
    redis: Redis,
    member_id: str,
    dialog_pk: int,
    start_utc: dt.datetime,
    minutes: int,
    owner: str = "",
) -> None:
    """Claim ``minutes`` from ``start_utc`` (naive UTC) for ``dialog_pk`` on behalf of
    ``owner``; call under :func:`slot_lock` after the re-check."""
    start = start_utc.replace(tzinfo=dt.UTC).timestamp()
    value = f"{start:.0f}|{start + minutes * 60:.0f}|{time.time() + CLAIM_TTL:.0f}"
    pipe = redis.pipeline(transaction=False)
    pipe.hset(_key(member_id), str(dialog_pk), value)
    pipe.hset(_owners_key(member_id), str(dialog_pk), owner)
    pipe.expire(_key(member_id), CLAIM_TTL)
    pipe.expire(_owners_key(member_id), CLAIM_TTL)
    pipe.execute()


def release(redis: Redis, member_id: str, dialog_pk: int) -> None:
    """The dialog's pre-booking row now holds the time (or it let the time go)."""
    pipe = redis.pipeline(transaction=False)
    pipe.hdel(_key(member_id), str(dialog_pk))
    pipe.hdel(_owners_key(member_id), str(dialog_pk))
    pipe.execute()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _local(epoch: float, tz: dt.tzinfo) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).astimezone(tz).replace(tzinfo=None)
