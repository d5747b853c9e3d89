"""What became of an appointment, recorded in one place: a confirmation, and the visit's
outcome (came, no-show, moved).

:func:`confirm` is the one confirmation of the app — the client's «1» to a reminder
(b24app/appointments/replies.py) and the assistant's pre-booking confirmed in its chat
(b24app/assistant/booking.py) both call it. It marks the appointment and its journey
Confirmed, stops the journey's confirmation SLA and moves the deal or lead to the stage the
portal's map names "confirmed".

:func:`record_outcome` records came / no-show / moved once: the first answer wins (a button
in the master's chat, the administrator's, or a stage moved by hand in the CRM); every later
one is ignored. Came and no-show move the deal or lead to the mapped stage and stamp the
journey; moved only records (the booking's own move re-arms the reminders).

**The CRM move.** A deal goes to its pipeline's stage (install's map, then the admin's
``deal_stage_map``, :func:`b24app.leads.pipelines.stage_map`) with ``crm.deal.update``; a
lead to the status ``registration["statuses"]`` names with ``crm.lead.update``. Nothing is
written when the stage is not mapped, when the item is already there, or when it would move
backwards (a confirmation never pulls a visited or closed item back). The update event that
follows is read by the usual intake, which records the move from Bitrix24's history.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from b24app.context import Services
from b24app.leads.journeys import journey_key
from b24app.leads.pipelines import stage_map
from b24app.settings import load_settings
from b24app.sla.engine import stop_timers
from b24app.storage.db import rows_affected
from b24app.storage.models import Appointment
from b24app.storage.models import AppointmentStatus
from b24app.storage.models import Journey
from b24app.storage.models import JourneyStageChange
from b24app.storage.models import Portal
from b24app.storage.models import Stage
from b24app.storage.models import utc_now
from b24app.storage.models import VisitOutcome

log = logging.getLogger(__name__)

# The journey stages a move to each target may start from (never backwards, never from a
# closed item: junk and converted are the CRM's own ends).
_MOVES_FROM: dict[str, tuple[str, ...]] = {
    Stage.CONFIRMED: (Stage.NEW, Stage.QUALIFIED, Stage.OTHER),
    Stage.CAME: (Stage.NEW, Stage.QUALIFIED, Stage.CONFIRMED, Stage.OTHER),
    Stage.NO_SHOW: (Stage.NEW, Stage.QUALIFIED, Stage.CONFIRMED, Stage.OTHER),
}
_STAGE_OF = {VisitOutcome.CAME: Stage.CAME, VisitOutcome.NO_SHOW: Stage.NO_SHOW}
# A came / no-show stage reached this long before the appointment is about an earlier visit.
STAGE_WINDOW = dt.timedelta(hours=12)
# Our own stage move for an answered appointment comes back as an event a little later.
ECHO = dt.timedelta(minutes=10)
Move = tuple[str, dict[str, Any]]


def stage_move(
    session: Session,
    portal: Portal,
    journey: Journey | None,
    stage: str,
    lead_id: int | None = None,
) -> Move | None:
    """The CRM write that puts the journey's deal or lead on the mapped ``stage``, or None
    (not mapped, already there, or a move backwards: see the module docstring). Without a
    journey yet (its lead's add event still on its way) only the appointment's ``lead_id``
    can move: a new lead is in no later stage."""
    if journey is None and lead_id is not None and stage == Stage.CONFIRMED:
        target = ((portal.registration or {}).get("statuses") or {}).get(stage)
        return (
            ("crm.lead.update", {"id": lead_id, "fields": {"STATUS_ID": target}})
            if target
            else None
        )
    if journey is None or journey.deleted_at is not None:
        return None
    if journey.stage not in _MOVES_FROM[stage]:
        return None
    registration = portal.registration or {}
    if journey.deal_id is not None:
        settings = load_settings(session, portal.id)
        target = stage_map(registration, settings, journey.category_id or 0).get(stage)
        if not target or target == journey.deal_stage_id:
            return None
        return "crm.deal.update", {"id": journey.deal_id, "fields": {"STAGE_ID": target}}
    if journey.lead_id is not None:
        target = (registration.get("statuses") or {}).get(stage)
        if not target or target == journey.status_id:
            return None
        return "crm.lead.update", {"id": journey.lead_id, "fields": {"STATUS_ID": target}}
    return None


def write_move(services: Services, member_id: str, move: Move | None) -> None:
    """Send the stage move (its update event brings the move back through the intake)."""
    if move is not None:
        services.bitrix(member_id).call(*move)


def confirm(services: Services, appointment_id: int, at: dt.datetime | None = None) -> str:
    """Confirm an appointment and its journey (see the module docstring): ``confirmed``,
    ``already_confirmed``, ``cancelled`` or ``missing``. Idempotent."""
    moment = at or utc_now()
    with services.db() as session:
        appt = session.get(Appointment, appointment_id)
        portal = session.get(Portal, appt.portal_id) if appt is not None else None
        if appt is None or portal is None:
            return "missing"
        if appt.status == AppointmentStatus.CANCELLED:
            return "cancelled"
        if appt.status == AppointmentStatus.CONFIRMED:
            return "already_confirmed"
        appt.status = AppointmentStatus.CONFIRMED
        appt.confirmed_at = appt.confirmed_at or moment
        journey = session.get(Journey, appt.journey_id) if appt.journey_id else None
        if journey is not None and journey.confirmed_at is None:
            journey.confirmed_at = moment
        move = stage_move(session, portal, journey, Stage.CONFIRMED, appt.lead_id)
        key = journey_key(journey) if journey is not None else None
        portal_id, member_id = portal.id, portal.member_id
    if key is not None:
        stop_timers(services, portal_id, key, "confirmation")
    write_move(services, member_id, move)
    return "confirmed"


def claim_outcome(
    session: Session, appointment_id: int, outcome: str, source: str, by: int,
    at: dt.datetime,
) -> bool:  # fmt: skip
    """Record ``outcome`` unless one is recorded already (one conditional UPDATE: of two
    answers racing, exactly one gets the row)."""
    if outcome not in VisitOutcome.ALL:
        raise ValueError(f"unknown outcome {outcome!r}")
    return bool(
        rows_affected(
            session.execute(
                update(Appointment)
                .where(Appointment.id == appointment_id, Appointment.outcome.is_(None))
                .values(
                    outcome=outcome, outcome_at=at, outcome_source=source[:16], outcome_by=by
                )  # fmt: skip
                .execution_options(synchronize_session=False)
            )
        )
    )


def record_outcome(
    services: Services, appointment_id: int, outcome: str, *, source: str, by: int = 0,
    at: dt.datetime | None = None,
) -> str:  # fmt: skip
    """Record came / no-show / moved once (see the module docstring): ``recorded``,
    ``already_known`` or ``missing``. A stage moved by hand (``source="stage"``) is already
    in the CRM: nothing is written back."""
    moment = at or utc_now()
    with services.db() as session:
        appt = session.get(Appointment, appointment_id)
        portal = session.get(Portal, appt.portal_id) if appt is not None else None
        if appt is None or portal is None or appt.status == AppointmentStatus.CANCELLED:
            return "missing"
        journey = session.get(Journey, appt.journey_id) if appt.journey_id else None
        if answer_from_stage(session, appt, journey) is not None:
            return "already_known"  # a stage moved by hand came first (its event read late)
        if not claim_outcome(session, appointment_id, outcome, source, by, moment):
            return "already_known"
        move = None
        stage = _STAGE_OF.get(outcome)
        if stage is not None and journey is not None:
            if source != "stage":
                move = stage_move(session, portal, journey, stage)
            field = "came_at" if stage == Stage.CAME else "no_show_at"
            if getattr(journey, field) is None:
                setattr(journey, field, moment)
        member_id = portal.member_id
    write_move(services, member_id, move)
    return "recorded"


def answer_from_stage(session: Session, appt: Appointment, journey: Journey | None) -> str | None:
    """Record the outcome a stage moved by hand already tells (None: it tells none): the
    journey's first move to came / no-show since :data:`STAGE_WINDOW` before the appointment —
    and since another appointment of the journey got its outcome (plus :data:`ECHO`, the
    event of our own move for it), so one visit's answer never answers the next."""
    if journey is None or appt.outcome is not None:
        return None
    since = appt.starts_at - STAGE_WINDOW
    other = session.scalar(
        select(func.max(Appointment.outcome_at)).where(
            Appointment.journey_id == journey.id, Appointment.id != appt.id
        )
    )
    if other is not None:
        since = max(since, other + ECHO)
    move = session.execute(
        select(JourneyStageChange.stage, JourneyStageChange.changed_at)
        .where(
            JourneyStageChange.portal_id == appt.portal_id,
            JourneyStageChange.journey_key == journey_key(journey),
            JourneyStageChange.stage.in_((Stage.CAME, Stage.NO_SHOW)),
            JourneyStageChange.changed_at >= since,
        )
        .order_by(JourneyStageChange.changed_at)
        .limit(1)
    ).first()
    if move is None:
        return None
    outcome = VisitOutcome.CAME if move.stage == Stage.CAME else VisitOutcome.NO_SHOW
    claim_outcome(session, appt.id, outcome, "stage", 0, move.changed_at)
    return outcome
