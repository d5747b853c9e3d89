"""Timer rows and their wake-up jobs: ids, due times, schedule / remove, find-or-create, cancel.

A timer is a :class:`~b24app.storage.models.Timer` row (unique per portal, journey key, policy
and level — the database is the source of truth) plus an RQ scheduled job with the
deterministic id ``sla-{portal}-{key}-{policy}-{level}`` that wakes
:func:`b24app.timers.fire.fire_timer` at the due time (dashes, not colons: RQ 3.0 accepts only
``[A-Za-z0-9_-]`` in job ids; the ``sla-`` prefix is kept so that the jobs of earlier
versions keep their ids). Due times are whole seconds, rounded up: RQ's scheduled registry
scores by whole seconds, so a fractional due time would otherwise fire up to a second early.
The job carries only the timer's id (result_ttl 0, a short description): about 0.7 KB of Redis
per pending timer.

Scheduling a pending timer whose job is alive does nothing; cancelling marks the row
``cancelled`` and deletes the job. If Redis loses the jobs, :mod:`b24app.timers.reconcile`
re-creates them from the rows.

Test hook: the environment variable ``B24APP_SLA_SECONDS_PER_MINUTE`` (default 60) sets how
long a policy "minute" is. Policy minutes are integers, so the real-worker integration tests
set it to 1 (a 3-minute SLA fires after 3 seconds) in the test process, which computes the
due times; the worker only reads them from the rows. Never set it in production.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from typing import Any

from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.job import JobStatus
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from b24app.context import Services
from b24app.event_queue import retry
from b24app.event_queue import RETRY_INTERVALS
from b24app.storage.models import Timer
from b24app.storage.models import TimerState
from b24app.storage.models import utc_now
from b24app.timers.fire import fire_timer

# A job that failed all its retries expires after this; reconciliation then schedules the
# still-pending timer again (a new round of retries every ~15 minutes while Bitrix24 fails).
FAILURE_TTL = 900
# Job states meaning "the wake-up call is still coming": nothing to re-schedule.
_LIVE_JOB_STATES = {
    JobStatus.SCHEDULED,
    JobStatus.QUEUED,
    JobStatus.STARTED,
    JobStatus.DEFERRED,
}
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def seconds_per_minute() -> float:
    """Length of a policy minute in seconds: 60, or ``B24APP_SLA_SECONDS_PER_MINUTE`` (tests)."""
    return float(os.environ.get("B24APP_SLA_SECONDS_PER_MINUTE") or 60)


def job_id_for(portal_id: int, lead_id: int, policy: str, level: str) -> str:
    """The deterministic RQ job id of a timer (letters, digits, ``_`` and ``-`` only)."""
    parts = (str(portal_id), str(lead_id), _UNSAFE.sub("_", policy), _UNSAFE.sub("_", level))
    return "sla-" + "-".join(parts)


def as_aware(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=dt.UTC)


def naive_utc(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return utc_now()
    return now.astimezone(dt.UTC).replace(tzinfo=None) if now.tzinfo else now


def ceil_second(moment: dt.datetime) -> dt.datetime:
    """``moment`` rounded up to a whole second (the resolution of RQ's scheduled registry)."""
    if moment.microsecond:
        return moment.replace(microsecond=0) + dt.timedelta(seconds=1)
    return moment


def schedule_job(services: Services, timer: Timer, now: dt.datetime | None = None) -> bool:
    """Make sure the RQ job of a pending timer exists; True if it was (re-)created.

    A due time in the past enqueues at once (an overdue timer after an outage).
    """
    try:
        job = Job.fetch(timer.job_id, connection=services.redis)
    except NoSuchJobError:
        pass
    else:
        if job.get_status(refresh=False) in _LIVE_JOB_STATES:
            return False
        job.delete()  # a finished/failed run of this id: out of its registries first
    queue = services.queue("timers")
    options: dict[str, Any] = {
        "job_id": timer.job_id,
        "result_ttl": 0,
        "failure_ttl": FAILURE_TTL,
        "retry": retry(RETRY_INTERVALS),  # as event jobs retry
        "description": "sla",  # the job id says which timer; keep the hash small
    }
    if timer.due_at <= naive_utc(now):
        queue.enqueue(fire_timer, timer.id, **options)
    else:
        queue.enqueue_at(as_aware(ceil_second(timer.due_at)), fire_timer, timer.id, **options)
    return True


def remove_job(services: Services, job_id: str) -> None:
    """Delete a timer's RQ job (scheduled or queued); a missing job is fine."""
    try:
        job = Job.fetch(job_id, connection=services.redis)
    except NoSuchJobError:
        return
    try:
        job.cancel()
    except Exception:  # already finished/cancelled: delete() below still cleans up
        pass
    job.delete()


def new_timer(
    portal_id: int, lead_id: int, policy: str, level: str, due_at: dt.datetime,
    started_at: dt.datetime, *, state: str = TimerState.PENDING,
    payload: dict[str, Any] | None = None,
) -> Timer:  # fmt: skip
    """A timer row not yet added to a session, with the job id its key gives."""
    return Timer(
        portal_id=portal_id,
        journey_key=lead_id,
        policy=policy,
        level=level,
        due_at=due_at,
        started_at=started_at,
        state=state,
        job_id=job_id_for(portal_id, lead_id, policy, level),
        payload=payload or {},
    )


def upsert_timer(
    session: Session,
    *,
    portal_id: int,
    lead_id: int,
    policy: str,
    level: str,
    due_at: dt.datetime,
    started_at: dt.datetime,
    payload: dict[str, Any],
    revive: bool,
) -> tuple[Timer, bool]:
    """Find or create the timer row; returns (timer, changed).

    An existing pending row is kept as it is (starting twice schedules once). A cancelled row
    is revived only with ``revive`` (an explicit start); a fired row never is.
    """
    key = (
        Timer.portal_id == portal_id,
        Timer.journey_key == lead_id,
        Timer.policy == policy,
        Timer.level == level,
    )
    timer = session.scalar(select(Timer).where(*key))
    if timer is None:
        timer = new_timer(portal_id, lead_id, policy, level, due_at, started_at, payload=payload)
        try:
            with session.begin_nested():
                session.add(timer)
        except IntegrityError:  # a concurrent start inserted it first
            existing = session.scalar(select(Timer).where(*key))
            assert existing is not None
            return existing, False
        return timer, True
    if timer.state == TimerState.CANCELLED and revive:
        timer.state = TimerState.PENDING
        timer.due_at = due_at
        timer.started_at = started_at
        timer.payload = payload
        timer.claimed_at = None
        timer.fired_at = None
        timer.recipient_user_id = None
        return timer, True
    return timer, False


def cancel_where(services: Services, *conditions: Any) -> int:
    """Cancel the pending timers matching ``conditions`` and delete their jobs; how many."""
    with services.db() as session:
        rows = list(
            session.execute(
                select(Timer.id, Timer.job_id).where(Timer.state == TimerState.PENDING, *conditions)
            )
        )
        if rows:
            session.execute(
                update(Timer)
                .where(Timer.id.in_([r.id for r in rows]), Timer.state == TimerState.PENDING)
                .values(state=TimerState.CANCELLED)
            )
    for row in rows:
        remove_job(services, row.job_id)
    return len(rows)


def cancel_lead_timers(services: Services, portal_id: int, lead_id: int) -> int:
    """Cancel every pending timer of a journey, reminders included (journey deleted)."""
    return cancel_where(services, Timer.portal_id == portal_id, Timer.journey_key == lead_id)


def cancel_portal_timers(services: Services, portal_id: int) -> int:
    """Cancel every pending timer of a portal (uninstall)."""
    return cancel_where(services, Timer.portal_id == portal_id)
