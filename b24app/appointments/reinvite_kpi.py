"""Re-invitation conversion: of the re-invitations sent in a period, how many clients booked
again within :data:`WINDOW_DAYS` after theirs (b24app/appointments/reinvite.py).

"Booked again" is an appointment of the same journey or contact, made after the
re-invitation went (``created_at``) and not cancelled. Read live from the timers and the
appointments: a few rows per portal and period, no roll-up needed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy.orm import Session

from b24app.appointments.reinvite import appointment_of
from b24app.appointments.reinvite import REINVITE_POLICY
from b24app.storage.models import Appointment
from b24app.storage.models import AppointmentStatus
from b24app.storage.models import Timer
from b24app.storage.models import TimerState

WINDOW_DAYS = 30


def reinvite_conversion(
    session: Session, portal_id: int, start: dt.datetime, end: dt.datetime
) -> dict[str, Any]:
    """``{"sent", "booked", "conversion_pct"}`` for re-invitations sent in [start, end)."""
    sent = session.execute(
        select(Timer.level, Timer.fired_at).where(
            Timer.portal_id == portal_id, Timer.policy == REINVITE_POLICY,
            Timer.state == TimerState.FIRED, Timer.fired_at >= start, Timer.fired_at < end,
        )
    ).all()  # fmt: skip
    booked = 0
    for level, fired_at in sent:
        missed = session.get(Appointment, appointment_of(level))
        if missed is None or fired_at is None:
            continue
        same = [Appointment.journey_id == missed.journey_id] if missed.journey_id else []
        if missed.contact_id:
            same.append(Appointment.contact_id == missed.contact_id)
        if not same:
            continue
        again = session.scalar(
            select(Appointment.id).where(
                Appointment.portal_id == portal_id, Appointment.id != missed.id, or_(*same),
                Appointment.created_at >= fired_at,
                Appointment.created_at < fired_at + dt.timedelta(days=WINDOW_DAYS),
                Appointment.status != AppointmentStatus.CANCELLED,
            ).limit(1)
        )  # fmt: skip
        booked += again is not None
    pct = round(100.0 * booked / len(sent), 1) if sent else None
    return {"sent": len(sent), "booked": booked, "conversion_pct": pct}
