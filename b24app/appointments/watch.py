"""When the chat a reminder went to is read back for the client's answer: at
:data:`WATCH_MINUTES` after the reminder, one RQ job a read (``replies.watch_job``, named by its
import path so that the reminder's sender need not import the reply handler, which imports
what a reply does: rescheduling, and through it the reminders again).
"""

from __future__ import annotations

import datetime as dt
import re

from b24app.context import Services
from b24app.event_queue import retry
from b24app.timers.engine import as_aware
from b24app.timers.engine import ceil_second
from b24app.timers.engine import seconds_per_minute

WATCH_MINUTES = (3, 15, 60, 240)  # reads this long after the reminder; policy minutes
WATCH_JOB = "b24app.appointments.replies.watch_job"
# a reply that opened a talk (free times offered, a cancel to confirm): the next read comes
# this soon after it, not on the ladder (the bound of reads stays len(WATCH_MINUTES))
TALK_READ_MINUTES = 2


def _watch_job_id(member_id: str, appointment_id: int, since: str, step: int) -> str:
    raw = f"rw-{member_id}-{appointment_id}-{since}-{step}"
    return re.sub(r"[^A-Za-z0-9_-]", "_", raw)


def watch_reminder(
    services: Services, member_id: str, appointment_id: int, chat_id: int, since: dt.datetime,
    step: int = 0, after_id: int = 0, *, talking_since: dt.datetime | None = None,
) -> None:  # fmt: skip
    """Schedule read ``step`` of the chat a reminder went to at ``since`` (naive UTC), at
    ``WATCH_MINUTES[step]`` after it (at once when that is past), or
    :data:`TALK_READ_MINUTES` after ``talking_since`` when the last reply opened a talk."""
    if step >= len(WATCH_MINUTES):
        return
    due = since + dt.timedelta(seconds=WATCH_MINUTES[step] * seconds_per_minute())
    if talking_since is not None:
        due = talking_since + dt.timedelta(seconds=TALK_READ_MINUTES * seconds_per_minute())
    stamp = since.replace(microsecond=0).isoformat()
    services.queue("events").enqueue_at(
        as_aware(ceil_second(due)), WATCH_JOB, member_id, appointment_id, chat_id, stamp, step,
        after_id, job_id=_watch_job_id(member_id, appointment_id, stamp, step), result_ttl=0,
        failure_ttl=7 * 86400, retry=retry(),
    )  # fmt: skip
