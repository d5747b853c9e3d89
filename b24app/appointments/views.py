"""What the lead/deal detail tab shows about a journey's appointments: each appointment with
its status and every reminder attempt (channel, time, result, error). Plain data, no Flask."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from b24app.storage.models import Appointment
from b24app.storage.models import ReminderAttempt


def _local(value: dt.datetime | None, tz: str, lang: str) -> str:
    if value is None:
        return "—"
    local = value.replace(tzinfo=dt.UTC).astimezone(ZoneInfo(tz))
    return local.strftime("%d.%m.%Y %H:%M" if lang == "ru" else "%Y-%m-%d %H:%M")


def journey_appointments(
    session: Session, portal_id: int, journey_id: int, tz: str, lang: str
) -> list[dict[str, Any]]:
    """The journey's appointments, newest first, each with its reminder attempts."""
    rows = list(
        session.scalars(
            select(Appointment)
            .where(Appointment.portal_id == portal_id, Appointment.journey_id == journey_id)
            .order_by(Appointment.starts_at.desc())
            .limit(20)
        )
    )
    out = []
    for appt in rows:
        tries = session.scalars(
            select(ReminderAttempt)
            .where(ReminderAttempt.appointment_id == appt.id)
            .order_by(ReminderAttempt.attempted_at, ReminderAttempt.id)
        )
        out.append(
            {
                "id": appt.id,
                "at": _local(appt.starts_at, tz, lang),
                "service": appt.service,
                "source": appt.source,
                "status": appt.status,
                "attempts": [
                    {
                        "at": _local(a.attempted_at, tz, lang),
                        "level": a.level,
                        "channel": a.channel,
                        "ok": a.ok,
                        "error": a.error,
                        "state": a.state or "",
                    }
                    for a in tries
                ],  # fmt: skip
            }
        )
    return out
