"""The SLA policies: which timers a journey needs, and starting/stopping them.

Policies (``settings["sla"]``): ``first_reply`` (chat leads), ``callback`` (call leads),
``confirmation`` (qualified / booked, not confirmed), plus any name a robot starts a ladder
under. Each has two levels: ``remind`` the responsible manager after ``minutes`` and
``escalate`` to the owner after ``escalate_minutes``, counted from the journey's start
(creation; qualification for confirmation), in working time when the policy's
``working_time`` is set. Each level is a timer of :mod:`b24app.timers.engine`; what a due
level sends is :mod:`b24app.sla.alerts`.

Starting a ladder twice finds the rows and the jobs and schedules nothing new; stopping
marks the rows ``cancelled`` and deletes the jobs.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from b24app.context import Services
from b24app.leads.journeys import journey_where
from b24app.settings import load_settings
from b24app.sla.worktime import add_working_minutes
from b24app.sla.worktime import WorkCalendar
from b24app.storage.models import Journey
from b24app.storage.models import Stage
from b24app.storage.models import Timer
from b24app.storage.models import TimerState
from b24app.timers.engine import cancel_where
from b24app.timers.engine import ceil_second
from b24app.timers.engine import naive_utc
from b24app.timers.engine import schedule_job
from b24app.timers.engine import seconds_per_minute
from b24app.timers.engine import upsert_timer

SLA_POLICIES = ("first_reply", "callback", "confirmation")
LEVELS = ("remind", "escalate")
# The manager-only reminders of earlier versions: a robot's "stop" leaves them alone.
REMINDER_POLICY = "reminder"
# Stages after which no SLA applies any more.
_CLOSED_STAGES = {Stage.CAME, Stage.NO_SHOW, Stage.JUNK}


def due_after(
    start: dt.datetime, minutes: float, *, working_time: bool, calendar: WorkCalendar
) -> dt.datetime:
    """``start`` plus ``minutes`` policy minutes (working minutes if ``working_time``;
    around the clock otherwise), rounded up to a whole second."""
    scaled = minutes * seconds_per_minute() / 60.0
    if working_time:
        return ceil_second(add_working_minutes(start, scaled, calendar))
    return ceil_second(start + dt.timedelta(minutes=scaled))


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


def stop_timers(services: Services, portal_id: int, lead_id: int, policy: str | None = None) -> int:
    """Cancel the lead's pending SLA timers (of one ``policy``, or all but reminders)."""
    condition = Timer.policy == policy if policy else Timer.policy != REMINDER_POLICY
    return cancel_where(
        services, Timer.portal_id == portal_id, Timer.journey_key == lead_id, condition
    )


def lead_handled(lead: Journey | None, policy: str) -> bool:
    """Whether ``policy`` no longer applies to the lead (replied, confirmed, closed, deleted)."""
    if lead is None:
        return False
    if lead.deleted_at is not None or lead.stage in _CLOSED_STAGES:
        return True
    if lead.came_at is not None or lead.no_show_at is not None:
        return True
    if policy == "confirmation":
        return lead.confirmed_at is not None or lead.stage == Stage.CONFIRMED
    return lead.first_reply_at is not None or lead.confirmed_at is not None


def wanted_policies(lead: Journey, now: dt.datetime) -> dict[str, dt.datetime]:
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
            select(Journey).where(Journey.portal_id == portal_id, journey_where(lead_id))
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
                    Timer.journey_key == lead_id,
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
