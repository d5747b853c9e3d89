"""After a no-show: one re-invitation ``after_days`` later, with free times, on the timer
engine (policy ``reinvite``), only to a client with a recorded advertising consent.

A re-invitation is advertising (38-ФЗ art. 18): the client did not ask for it, so
:func:`b24app.consent.policy.may_message` must say yes for ``advertising`` when it is due —
not when it was scheduled: a «СТОП» written meanwhile stops it.

Timers: one per no-show appointment (level ``ri@<appointment id>``, unique with the journey
key), due ``after_days`` (``settings["consent"]["reinvite"]``, days scaled by
``B24APP_SLA_SECONDS_PER_MINUTE`` like every policy minute) after
:func:`schedule_reinvitation` — which the code that records a no-show may call at once, and
the cron sweep :func:`arm_reinvitations` calls for every no-show marked lately that has none. When due it is skipped, with the reason in ``payload["skip_reason"]``, if the
appointment is no longer a no-show, the client booked again since, has no consent
(``no_consent``), or no open-line chat takes the message (advertising goes by chat only:
the reminders' SMS workflow is the admin's service channel). Otherwise the message offers up
to three free times (the portal's Booking resource when the assistant has one, else the
working hours, minus the appointments the app knows: b24app/assistant/slots.py,
b24app/appointments/resources.py) and the timer is ``fired`` with the chat in its payload.
Claim, send, mark as every timer (b24app/timers/fire.py): a transient error releases the
claim for the job's retry.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import cast
from sqlalchemy import exists
from sqlalchemy import literal
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import String
from sqlalchemy.orm import Session

from b24app import context
from b24app import i18n
from b24app.appointments.resources import availability
from b24app.assistant.slots import busy_from_bookings
from b24app.assistant.slots import free_times
from b24app.assistant.slots import local_at
from b24app.assistant.slots import parse_ranges
from b24app.assistant.slots import resource_starts
from b24app.assistant.slots import SEARCH_DAYS
from b24app.assistant.understanding import When
from b24app.bitrix.budget import urgent_rest
from b24app.consent.contact import Contact
from b24app.consent.policy import may_message
from b24app.context import Services
from b24app.leads.journeys import journey_key
from b24app.reach.chat import send_chat
from b24app.settings import effective_settings
from b24app.settings import load_settings
from b24app.sla.worktime import WorkCalendar
from b24app.storage.db import rows_affected
from b24app.storage.models import Appointment
from b24app.storage.models import AppointmentStatus
from b24app.storage.models import Journey
from b24app.storage.models import Portal
from b24app.storage.models import PortalSettings
from b24app.storage.models import PortalStatus
from b24app.storage.models import Timer
from b24app.storage.models import TimerState
from b24app.storage.models import utc_now
from b24app.storage.models import VisitOutcome
from b24app.storage.portals import portal_auth
from b24app.timers.engine import ceil_second
from b24app.timers.engine import job_id_for
from b24app.timers.engine import naive_utc
from b24app.timers.engine import schedule_job
from b24app.timers.engine import seconds_per_minute
from b24app.timers.fire import claim_statement
from b24app.timers.fire import PERMANENT_ERRORS
from b24app.timers.fire import skip
from b24app.timers.registry import register
from b24app.timers.registry import Send

log = logging.getLogger(__name__)

REINVITE_POLICY = "reinvite"
DURATION = 60  # minutes offered: the no-show's service has no duration of its own here


def level_for(appointment_id: int) -> str:
    return f"ri@{appointment_id}"


def appointment_of(level: str) -> int:
    return int(level.split("@", 1)[1])


def schedule_reinvitation(
    services: Services, appointment_id: int, now: dt.datetime | None = None
) -> bool:
    """Arm the one re-invitation of no-show ``appointment_id`` (True: armed now). Nothing
    when the portal has them off, the appointment is not a no-show, or one exists already."""
    moment = naive_utc(now)
    with services.db() as session:
        appt = session.get(Appointment, appointment_id)
        if appt is None or appt.outcome != VisitOutcome.NO_SHOW:
            return False
        config = load_settings(session, appt.portal_id)["consent"]["reinvite"]
        if not config["enabled"]:
            return False
        level = level_for(appt.id)
        exists = session.scalar(
            select(Timer.id).where(Timer.portal_id == appt.portal_id,
                                   Timer.policy == REINVITE_POLICY, Timer.level == level)
        )  # fmt: skip
        if exists is not None:
            return False  # one re-invitation per no-show, whatever happened to it
        journey = session.get(Journey, appt.journey_id) if appt.journey_id else None
        key = journey_key(journey) if journey is not None else 0
        after = dt.timedelta(days=int(config["after_days"])) * (seconds_per_minute() / 60.0)
        row = Timer(
            portal_id=appt.portal_id, journey_key=key, policy=REINVITE_POLICY, level=level,
            job_id=job_id_for(appt.portal_id, key, REINVITE_POLICY, level),
            due_at=ceil_second(moment + after), started_at=moment, state=TimerState.PENDING,
            payload={"appointment_id": appt.id},
        )  # fmt: skip
        session.add(row)
        session.flush()
        armed = Timer(id=row.id, job_id=row.job_id, due_at=row.due_at)
    schedule_job(services, armed, moment)
    return True


RECENT = dt.timedelta(days=2)  # a no-show the sweep still arms (marked since)


def arm_reinvitations() -> int:
    """Cron job: arm the re-invitation of every no-show marked in the last :data:`RECENT`
    that has none yet, on the portals that have them on — so a no-show recorded by any
    route (issue 23's outcome, a person) is followed without that route knowing this
    module. Returns how many were armed."""
    services = context.current()
    since = utc_now() - RECENT
    armed_level = literal("ri@") + cast(Appointment.id, String)
    with services.db() as session:
        rows = session.execute(
            select(Appointment.id, Appointment.portal_id).where(
                Appointment.outcome == VisitOutcome.NO_SHOW, Appointment.outcome_at >= since,
                ~exists().where(Timer.portal_id == Appointment.portal_id,
                                Timer.policy == REINVITE_POLICY, Timer.level == armed_level),
            )
        ).all()  # fmt: skip
        portals = {p for _, p in rows}
        enabled = {
            p for p in portals if load_settings(session, p)["consent"]["reinvite"]["enabled"]
        }
    return sum(schedule_reinvitation(services, a) for a, p in rows if p in enabled)


def _booked_again(session: Session, appt: Appointment) -> bool:
    """A later appointment of the same client (journey or contact) that is not cancelled."""
    same = []
    if appt.journey_id:
        same.append(Appointment.journey_id == appt.journey_id)
    if appt.contact_id:
        same.append(Appointment.contact_id == appt.contact_id)
    if not same:
        return False
    return (
        session.scalar(
            select(Appointment.id)
            .where(
                Appointment.portal_id == appt.portal_id,
                Appointment.id != appt.id,
                Appointment.starts_at > appt.starts_at,
                Appointment.status != AppointmentStatus.CANCELLED,
                or_(*same),
            )  # fmt: skip
            .limit(1)
        )
        is not None
    )


def _skip_reason(appt: Appointment | None, portal: Portal | None) -> str | None:
    if portal is None or portal.status != PortalStatus.ACTIVE:
        return "portal_inactive"
    if appt is None or appt.outcome != VisitOutcome.NO_SHOW:
        return "not_a_no_show"
    return None


def prepare_reinvitation(
    services: Services, session: Session, timer: Timer, now: dt.datetime
) -> str | Send:
    """The ``reinvite`` policy (b24app/timers/registry.py): checked, consent asked and
    claimed in the job's first transaction (:func:`claim_reinvitation`), sent after it."""
    snap = claim_reinvitation(session, timer, now)
    if isinstance(snap, str):
        return snap
    return lambda: send_reinvitation(services, snap)


def claim_reinvitation(session: Session, timer: Timer, now: dt.datetime) -> str | dict[str, Any]:
    """Check the re-invitation (still a no-show, not booked again, consent to offers) and
    claim it: what :func:`send_reinvitation` sends, or the reason it is not sent."""
    appt = session.get(Appointment, appointment_of(timer.level))
    portal = session.get(Portal, timer.portal_id)
    reason = _skip_reason(appt, portal)
    if reason is not None:
        return skip(timer, reason)
    assert appt is not None and portal is not None
    if _booked_again(session, appt):
        return skip(timer, "booked_again")
    client = Contact(contact_id=appt.contact_id, chat_id=appt.chat_id)
    if not may_message(session, portal.id, client, "advertising"):
        return skip(timer, "no_consent")
    if not rows_affected(session.execute(claim_statement(timer.id, now))):
        return "busy"
    settings = effective_settings(session.get(PortalSettings, portal.id))
    snap: dict[str, Any] = {
        "timer_id": timer.id, "member_id": portal.member_id, "auth": portal_auth(portal),
        "lang": "en" if (portal.lang or "ru").startswith("en") else "ru",
        "sender": int(settings["appointments"].get("sender_user_id")
                      or portal.installer_user_id or 1),
        "targets": [(kind, int(value)) for kind, value in (
            ("deal", appt.deal_id), ("lead", appt.lead_id), ("contact", appt.contact_id))
            if value],
        "chat_id": appt.chat_id, "client_name": appt.client_name or "",
        "service": appt.service, "settings": settings,
        "busy": _known_busy(session, portal.id, now),
    }  # fmt: skip
    return snap


def _known_busy(session: Session, portal_id: int, now: dt.datetime) -> list[tuple[int, int]]:
    """The coming appointments the app knows, as (start, end) Unix seconds."""
    rows = session.scalars(
        select(Appointment.starts_at).where(
            Appointment.portal_id == portal_id, Appointment.starts_at > now,
            Appointment.starts_at < now + dt.timedelta(days=SEARCH_DAYS + 1),
            Appointment.status != AppointmentStatus.CANCELLED,
        )
    )  # fmt: skip
    starts = [int(r.replace(tzinfo=dt.UTC).timestamp()) for r in rows]
    return [(s, s + DURATION * 60) for s in starts]


def offered_times(
    services: Services, client: Any, snap: dict[str, Any], moment: dt.datetime | None = None
) -> list[dt.datetime]:
    """Up to three free local times from the day after ``moment`` (naive UTC, default the
    clock) on: the assistant's Booking resource when it has one and the portal answers, else
    the working hours; minus what the app knows."""
    settings = snap["settings"]
    calendar = WorkCalendar.from_settings(settings)
    tz = calendar.time_zone
    now = naive_utc(moment).replace(tzinfo=dt.UTC).astimezone(tz).replace(tzinfo=None)
    busy = busy_from_bookings(snap["busy"], tz)
    when = When(day=now.date() + dt.timedelta(days=1))
    resource_id = int(settings["assistant"].get("booking_resource_id") or 0)
    if resource_id:
        start = int(dt.datetime.combine(now.date(), dt.time(), tzinfo=tz).timestamp())
        found = availability(services, client, snap["member_id"], resource_id, start,
                             start + (SEARCH_DAYS + 1) * 86400)  # fmt: skip
        ranges = parse_ranges(found.slots) if found is not None else []
        if found is not None and ranges:
            taken = busy_from_bookings(found.bookings.values(), tz)
            return free_times(calendar, when, DURATION, now=now, busy=[*busy, *taken],
                              starts=resource_starts(ranges, calendar, tz),
                              until=local_at(found.complete_until, tz))  # fmt: skip
    step = int(settings["assistant"].get("slot_step_minutes") or 60)
    return free_times(calendar, when, DURATION, now=now, busy=busy, step=step)


def reinvitation_text(lang: str, client_name: str, service: str,
                      times: list[dt.datetime]) -> str:  # fmt: skip
    """The message: the client's name, the missed service, the times offered, and how to stop."""
    name = client_name or ("Здравствуйте" if lang == "ru" else "Hello")
    service = service or ("запись" if lang == "ru" else "your appointment")
    if not times:
        return i18n.translate(lang, "consent.reinvite_no_times", name=name, service=service)
    shown = ", ".join(t.strftime("%d.%m %H:%M") for t in times)
    return i18n.translate(lang, "consent.reinvite", name=name, service=service, times=shown)


def send_reinvitation(
    services: Services, snap: dict[str, Any], *, now: dt.datetime | None = None
) -> str:
    """Send the claimed re-invitation into the client's chat at ``now`` (naive UTC, default
    the clock) and mark the timer: ``fired``, ``skipped`` (no chat took it, or a permanent
    error); a transient error releases the claim and is raised for the job's retry."""
    client = services.bitrix(snap["member_id"], auth=snap.get("auth"))
    known = None
    if snap["chat_id"] and snap["targets"]:
        known = (*snap["targets"][0], int(snap["chat_id"]))
    try:
        with urgent_rest():
            times = offered_times(services, client, snap, now)
            text = reinvitation_text(snap["lang"], snap["client_name"], snap["service"], times)
            sent = send_chat(client, snap["targets"], snap["sender"], text, known=known)
    except PERMANENT_ERRORS as exc:
        _close(services, snap["timer_id"], TimerState.SKIPPED, {"skip_reason": type(exc).__name__})
        return "skipped"
    except Exception:
        _close(services, snap["timer_id"], None, {})
        raise
    if not sent.ok:
        _close(services, snap["timer_id"], TimerState.SKIPPED, {"skip_reason": sent.error[:64]})
        return "skipped"
    offered = [t.isoformat() for t in times]
    _close(services, snap["timer_id"], TimerState.FIRED,
           {"chat_id": sent.chat_id, "times": offered}, now)  # fmt: skip
    return "fired"


def _close(
    services: Services, timer_id: int, state: str | None, extra: dict[str, Any],
    now: dt.datetime | None = None,
) -> None:  # fmt: skip
    """Mark the timer (``state`` None: release the claim for a retry)."""
    with services.db() as session:
        timer = session.get(Timer, timer_id)
        if timer is None:
            return
        if state is None:
            timer.claimed_at = None
            return
        timer.state = state
        timer.payload = {**(timer.payload or {}), **extra}
        if state == TimerState.FIRED:
            timer.fired_at = naive_utc(now)
            timer.recipient_user_id = 0


register(prepare_reinvitation, REINVITE_POLICY)
