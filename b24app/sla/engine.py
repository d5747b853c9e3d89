"""The SLA engine: which timers a lead needs, and starting/stopping them.

A timer is a :class:`~b24app.storage.models.Timer` row (unique per portal, lead, policy and
level — the database is the source of truth) plus an RQ scheduled job with the deterministic
id ``sla-{portal}-{lead}-{policy}-{level}`` that wakes :func:`b24app.sla.jobs.fire_timer` at
the due time (dashes, not colons: RQ 3.0 accepts only ``[A-Za-z0-9_-]`` in job ids). Due
times are whole seconds, rounded up: RQ's scheduled registry scores by whole seconds, so a
fractional due time would otherwise fire up to a second early. The job carries only the
timer's id (result_ttl 0, a short description): about 0.7 KB of Redis per pending timer.

Starting a timer twice finds the row and the job and schedules nothing new;
cancelling marks the row ``cancelled`` and deletes the job. If Redis loses the jobs,
:func:`b24app.sla.reconcile.reconcile_timers` re-creates them from the rows.

Policies (``settings["sla"]``): ``first_reply`` (chat leads), ``callback`` (call leads),
``confirmation`` (qualified / booked, not confirmed). Each has two levels: ``remind`` the
responsible manager after ``minutes`` and ``escalate`` to the owner after
``escalate_minutes``, counted from the lead's start (creation; qualification for
confirmation), in working time when the policy's ``working_time`` is set.

Test hook: the environment variable ``B24APP_SLA_SECONDS_PER_MINUTE`` (default 60) sets how
long a policy "minute" is. Policy minutes are integers, so the real-worker integration tests
set it to 1 (a 3-minute SLA fires after 3 seconds) in the test process, which computes the
due times; the worker only reads them from the rows. Never set it in production.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from typing import Any

from rq import Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.job import JobStatus
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from b24app.context import Services
from b24app.settings import load_settings
from b24app.sla.worktime import add_working_minutes
from b24app.sla.worktime import WorkCalendar
from b24app.storage.models import Lead
from b24app.storage.models import Stage
from b24app.storage.models import Timer
from b24app.storage.models import TimerState
from b24app.storage.models import utc_now

log = logging.getLogger(__name__)

SLA_POLICIES = ("first_reply", "callback", "confirmation")
LEVELS = ("remind", "escalate")
REMINDER_POLICY = "reminder"
RETRY = (3, [5, 30, 120])
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
# Stages after which no SLA applies any more.
_CLOSED_STAGES = {Stage.CAME, Stage.NO_SHOW, Stage.JUNK}


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


def due_after(
    start: dt.datetime, minutes: float, *, working_time: bool, calendar: WorkCalendar
) -> dt.datetime:
    """``start`` plus ``minutes`` policy minutes (working minutes if ``working_time``;
    around the clock otherwise), rounded up to a whole second."""
    scaled = minutes * seconds_per_minute() / 60.0
    if working_time:
        return ceil_second(add_working_minutes(start, scaled, calendar))
    return ceil_second(start + dt.timedelta(minutes=scaled))


# --- scheduling -----------------------------------------------------------------------------


def schedule_job(services: Services, timer: Timer, now: dt.datetime | None = None) -> bool:
    """Make sure the RQ job of a pending timer exists; True if it was (re-)created.

    A due time in the past enqueues at once (an overdue timer after an outage).
    """
    from b24app.sla.jobs import fire_timer

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
        "retry": Retry(max=RETRY[0], interval=list(RETRY[1])),
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
        Timer.lead_id == lead_id,
        Timer.policy == policy,
        Timer.level == level,
    )
    timer = session.scalar(select(Timer).where(*key))
    if timer is None:
        timer = Timer(
            portal_id=portal_id,
            lead_id=lead_id,
            policy=policy,
            level=level,
            due_at=due_at,
            started_at=started_at,
            state=TimerState.PENDING,
            job_id=job_id_for(portal_id, lead_id, policy, level),
            payload=payload,
        )
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


def _policy_settings(settings: dict[str, Any], policy: str) -> dict[str, Any]:
    sla = settings.get("sla") or {}
    if policy in SLA_POLICIES:
        return dict(sla.get(policy) or {})
    # A custom (robot-started) policy uses the first-reply ladder unless told otherwise.
    return dict(sla.get("first_reply") or {})


def _ladder(policy_settings: dict[str, Any], minutes: int | None) -> list[tuple[str, float]]:
    remind = float(minutes if minutes is not None else policy_settings.get("minutes", 15))
    escalate = float(policy_settings.get("escalate_minutes", 30))
    if minutes is not None and escalate <= remind:
        # A custom deadline beyond the configured escalation: keep the configured gap.
        gap = escalate - float(policy_settings.get("minutes", 15))
        escalate = remind + (gap if gap > 0 else remind)
    return [("remind", remind), ("escalate", escalate)]


def _start_levels(
    services: Services,
    portal_id: int,
    lead_id: int,
    policy: str,
    *,
    start: dt.datetime,
    minutes: int | None,
    working_time: bool | None,
    escalate_to: int | None,
    revive: bool,
    now: dt.datetime,
) -> dt.datetime:
    with services.db() as session:
        settings = load_settings(session, portal_id)
        policy_settings = _policy_settings(settings, policy)
        in_working_time = (
            bool(policy_settings.get("working_time", False))
            if working_time is None
            else bool(working_time)
        )
        calendar = WorkCalendar.from_settings(settings)
        payload: dict[str, Any] = {"working_time": in_working_time}
        if escalate_to:
            payload["escalate_to"] = int(escalate_to)
        timers: list[Timer] = []
        first_due: dt.datetime | None = None
        for level, level_minutes in _ladder(policy_settings, minutes):
            due = due_after(start, level_minutes, working_time=in_working_time, calendar=calendar)
            timer, _ = upsert_timer(
                session,
                portal_id=portal_id,
                lead_id=lead_id,
                policy=policy,
                level=level,
                due_at=due,
                started_at=start,
                payload=payload,
                revive=revive,
            )
            first_due = timer.due_at if first_due is None else first_due
            if timer.state == TimerState.PENDING:
                timers.append(timer)
        session.flush()
        pending = [(t.id, t.job_id, t.due_at) for t in timers]
    # Scheduled after the commit, so a job never runs before its row is visible.
    for timer_id, job_id, due_at in pending:
        schedule_job(services, Timer(id=timer_id, job_id=job_id, due_at=due_at), now)
    assert first_due is not None
    return first_due


# --- public API -----------------------------------------------------------------------------


def start_timer(
    services: Services,
    portal_id: int,
    lead_id: int,
    policy: str,
    *,
    minutes: int | None = None,
    working_time: bool | None = None,
    escalate_to: int | None = None,
    now: dt.datetime | None = None,
) -> dt.datetime:
    """Start (or find already running) the remind + escalate timers of ``policy`` from now.

    ``minutes`` overrides the policy's reminder deadline, ``working_time`` its calendar mode,
    ``escalate_to`` the escalation recipient. Returns the first level's due time (naive UTC).
    """
    moment = naive_utc(now)
    return _start_levels(
        services,
        portal_id,
        lead_id,
        policy,
        start=moment,
        minutes=minutes,
        working_time=working_time,
        escalate_to=escalate_to,
        revive=True,
        now=moment,
    )


def cancel_where(services: Services, *conditions: Any) -> int:
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


def stop_timers(services: Services, portal_id: int, lead_id: int, policy: str | None = None) -> int:
    """Cancel the lead's pending SLA timers (of one ``policy``, or all but reminders)."""
    condition = Timer.policy == policy if policy else Timer.policy != REMINDER_POLICY
    return cancel_where(services, Timer.portal_id == portal_id, Timer.lead_id == lead_id, condition)


def cancel_lead_timers(services: Services, portal_id: int, lead_id: int) -> int:
    """Cancel every pending timer of a lead, reminders included (lead deleted)."""
    return cancel_where(services, Timer.portal_id == portal_id, Timer.lead_id == lead_id)


def cancel_portal_timers(services: Services, portal_id: int) -> int:
    """Cancel every pending timer of a portal (uninstall)."""
    return cancel_where(services, Timer.portal_id == portal_id)


def lead_handled(lead: Lead | None, policy: str) -> bool:
    """Whether ``policy`` no longer applies to the lead (replied, confirmed, closed, deleted)."""
    if lead is None:
        return False
    if lead.deleted_at is not None or lead.stage in _CLOSED_STAGES:
        return True
    if lead.came_at is not None or lead.no_show_at is not None:
        return True
    if policy == REMINDER_POLICY:
        return False
    if policy == "confirmation":
        return lead.confirmed_at is not None or lead.stage == Stage.CONFIRMED
    return lead.first_reply_at is not None or lead.confirmed_at is not None


def wanted_policies(lead: Lead, now: dt.datetime) -> dict[str, dt.datetime]:
    """The SLA policies a lead is under now, each with the moment its clock started: the
    lead's creation for a first reply / call-back, its qualification for the confirmation (or
    ``now``, when only a booking time was set — the row, once created, keeps that start)."""
    wanted: dict[str, dt.datetime] = {}
    if lead_handled(lead, "first_reply"):
        pass
    elif lead.channel == "chat":
        wanted["first_reply"] = lead.created_at
    elif lead.channel == "call":
        wanted["callback"] = lead.created_at
    needs_confirmation = lead.stage == Stage.QUALIFIED or lead.booking_at is not None
    if needs_confirmation and not lead_handled(lead, "confirmation"):
        wanted["confirmation"] = lead.qualified_at or now
    return wanted


def journey_where(key: int) -> Any:
    """The journey of a timer key (a lead id, or minus a deal id: b24app.leads.journeys)."""
    from b24app.leads.journeys import journey_where as where

    return where(key)


def sync_lead_timers(
    services: Services, portal_id: int, lead_id: int, now: dt.datetime | None = None
) -> None:
    """Bring the lead's SLA timers in line with its lifecycle record. Idempotent.

    Starts the timers of the policies the lead is under (see :func:`wanted_policies`) and
    cancels the pending ones of policies it is no longer under.
    """
    moment = naive_utc(now)
    with services.db() as session:
        lead = session.scalar(
            select(Lead).where(Lead.portal_id == portal_id, journey_where(lead_id))
        )
        if lead is None:
            return
        settings = load_settings(session, portal_id)
        wanted = wanted_policies(lead, moment)
        wanted = {
            p: start
            for p, start in wanted.items()
            if (settings.get("sla", {}).get(p) or {}).get("enabled", True)
        }
        running = set(
            session.scalars(
                select(Timer.policy).where(
                    Timer.portal_id == portal_id,
                    Timer.lead_id == lead_id,
                    Timer.state == TimerState.PENDING,
                    Timer.policy.in_(SLA_POLICIES),
                )
            )
        )
    for policy in running - set(wanted):
        stop_timers(services, portal_id, lead_id, policy)
    for policy, start in wanted.items():
        _start_levels(
            services,
            portal_id,
            lead_id,
            policy,
            start=start,
            minutes=None,
            working_time=None,
            escalate_to=None,
            revive=False,
            now=moment,
        )


def schedule_reminders(*args: Any, **kwargs: Any) -> int:
    """Re-export of :func:`b24app.sla.reminders.schedule_reminders`."""
    from b24app.sla.reminders import schedule_reminders as schedule

    return schedule(*args, **kwargs)
