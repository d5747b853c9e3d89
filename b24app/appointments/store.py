"""Appointment rows: create, move, cancel — one appointment per (journey, time).

An appointment is found, in this order, by its booking id (a booking moved keeps its row), by
its journey and time (the same visit reaching us by two routes — a booking and the robot, or
a booking and the date field — is one row: the first route's row gains the other's ids), and
for an unlinked appointment by its deal / lead / contact and time. Times are naive UTC, whole
seconds.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from b24app.leads.journeys import find_journey
from b24app.storage.models import Appointment
from b24app.storage.models import AppointmentStatus
from b24app.storage.models import Portal
from b24app.storage.models import PortalStatus
from b24app.storage.models import utc_now


def _by_time(
    session: Session, portal_id: int, starts_at: dt.datetime, **ids: int | None
) -> Appointment | None:
    conditions = [getattr(Appointment, k) == v for k, v in ids.items() if v is not None]
    if not conditions:
        return None
    return session.scalar(
        select(Appointment)
        .where(Appointment.portal_id == portal_id, Appointment.starts_at == starts_at, *conditions)
        .order_by(Appointment.id)
        .limit(1)
    )


def upsert_appointment(
    session: Session,
    portal_id: int,
    *,
    starts_at: dt.datetime,
    source: str,
    booking_id: int | None = None,
    lead_id: int | None = None,
    deal_id: int | None = None,
    contact_id: int | None = None,
    service: str = "",
    client_name: str | None = None,
) -> tuple[Appointment, bool]:
    """Find or create the appointment and bring it to ``starts_at``; returns (row, changed).
    ``client_name`` (None: not read by this route) is stored for the reminders' text."""
    starts_at = starts_at.replace(microsecond=0)
    journey = find_journey(
        session, portal_id, lead_id=lead_id, deal_id=deal_id, contact_id=contact_id
    )
    row: Appointment | None = None
    if booking_id is not None:
        row = session.scalar(
            select(Appointment).where(
                Appointment.portal_id == portal_id, Appointment.booking_id == booking_id
            )
        )
    if row is None and journey is not None:
        row = _by_time(session, portal_id, starts_at, journey_id=journey.id)
    if row is None:
        for key, value in (("deal_id", deal_id), ("lead_id", lead_id), ("contact_id", contact_id)):
            row = _by_time(session, portal_id, starts_at, **{key: value})
            if row is not None:
                break
    if row is not None and row.booking_id is not None and booking_id is not None:
        if row.booking_id != booking_id:
            row = None  # two bookings at the same time are two visits
    changed = False
    if row is None:
        row = Appointment(portal_id=portal_id, source=source, starts_at=starts_at,
                          status=AppointmentStatus.SCHEDULED)  # fmt: skip
        session.add(row)
        changed = True
    for name, value in (("booking_id", booking_id), ("lead_id", lead_id), ("deal_id", deal_id),
                        ("contact_id", contact_id)):  # fmt: skip
        if value is not None and getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    if journey is not None and row.journey_id != journey.id:
        row.journey_id = journey.id
        changed = True
    if journey is not None:
        for name in ("lead_id", "deal_id", "contact_id"):
            if getattr(row, name) is None and getattr(journey, name) is not None:
                setattr(row, name, getattr(journey, name))
    # A name found replaces the stored one; "no name found" (by another route, say a deal
    # without a contact) does not wipe the name a booking's client gave.
    if client_name is not None and (client_name or row.client_name is None):
        row.client_name = client_name[:255]
    if service and row.service != service:
        row.service = service[:255]
        changed = True
    if row.starts_at != starts_at:
        note_move(row, starts_at, utc_now())
        row.starts_at = starts_at
        changed = True
        if row.status != AppointmentStatus.SCHEDULED:
            # Moved: a confirmation (or a request to move) was about the old time.
            row.status = AppointmentStatus.SCHEDULED
            row.confirmed_at = None
            row.cancelled_at = None
    if row.status == AppointmentStatus.CANCELLED:
        row.status = AppointmentStatus.SCHEDULED
        row.cancelled_at = None
        changed = True
    session.flush()
    return row, changed


def note_move(appointment: Appointment, starts_at: dt.datetime, at: dt.datetime) -> None:
    """Record that ``appointment`` moves to ``starts_at`` at ``at`` (the KPI "rescheduled");
    the caller sets the new time."""
    if appointment.starts_at != starts_at:
        appointment.moved_from = appointment.starts_at
        appointment.moved_at = at


def cancel_appointment(
    session: Session, appointment: Appointment, *, now: dt.datetime | None = None
) -> bool:
    """Mark the appointment cancelled at ``now`` (naive UTC, default the clock)."""
    if appointment.status == AppointmentStatus.CANCELLED:
        return False
    appointment.status = AppointmentStatus.CANCELLED
    appointment.cancelled_at = now or utc_now()
    return True


def active_portal(session: Session, member_id: str) -> Portal | None:
    """The installed, active portal of ``member_id`` (jobs on any other do nothing)."""
    return session.scalar(
        select(Portal).where(Portal.member_id == member_id, Portal.status == PortalStatus.ACTIVE)
    )
