"""Appointment KPIs: confirmed and no-show rates from the appointments themselves, what the
reminders are worth (reminded vs not reminded), and reminder delivery by channel.

* An appointment counts in the period its **time** falls in; cancelled ones are left out.
* **Confirmed rate** = appointments confirmed (by the client's reply, or their journey reached
  Confirmed) / appointments × 100.
* **No-show rate** = no-shows / appointments with a known outcome (the journey reached Came
  or No-show) × 100 — per group: **reminded** by the client's chat, by the workflow, or **not
  reminded** (no reminder reached the client: none was due, or only the manager's to-do).
* **Delivery rate** per channel = attempts that went through / attempts × 100, over the
  attempts made in the period (a reminder that fell through the chat to the workflow is one
  failed chat attempt and one delivered workflow attempt).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_
from sqlalchemy import case
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.orm import Session

from b24app.storage.models import Appointment
from b24app.storage.models import AppointmentStatus
from b24app.storage.models import Lead
from b24app.storage.models import ReminderAttempt


def _pct(numerator: int, denominator: int) -> float | None:
    return round(numerator * 100.0 / denominator, 1) if denominator else None


def appointment_kpis(
    session: Session, portal_id: int, start: dt.datetime, end: dt.datetime
) -> dict[str, Any]:
    """The appointment figures of ``[start, end)`` (naive UTC) as plain data."""
    confirmed = case(
        (and_(Appointment.confirmed_at.is_not(None)), 1),
        (Lead.confirmed_at.is_not(None), 1),
        else_=0,
    )
    came = case((Lead.came_at.is_not(None), 1), else_=0)
    no_show = case((and_(Lead.no_show_at.is_not(None), Lead.came_at.is_(None)), 1), else_=0)
    rows = session.execute(
        select(
            Appointment.reminded_via,
            func.count(Appointment.id),
            func.sum(confirmed),
            func.sum(came),
            func.sum(no_show),
        )
        .outerjoin(Lead, Lead.id == Appointment.journey_id)
        .where(
            Appointment.portal_id == portal_id,
            Appointment.starts_at >= start,
            Appointment.starts_at < end,
            Appointment.status != AppointmentStatus.CANCELLED,
        )
        .group_by(Appointment.reminded_via)
    ).all()
    total = {"appointments": 0, "confirmed": 0, "came": 0, "no_shows": 0}
    groups: dict[str, dict[str, Any]] = {}
    for via, count, conf, came_n, no_show_n in rows:
        key = via or "none"
        group = groups.setdefault(key, {"appointments": 0, "came": 0, "no_shows": 0})
        group["appointments"] += int(count)
        group["came"] += int(came_n or 0)
        group["no_shows"] += int(no_show_n or 0)
        total["appointments"] += int(count)
        total["confirmed"] += int(conf or 0)
        total["came"] += int(came_n or 0)
        total["no_shows"] += int(no_show_n or 0)
    for group in groups.values():
        group["no_show_pct"] = _pct(group["no_shows"], group["came"] + group["no_shows"])
    reminded = {"appointments": 0, "came": 0, "no_shows": 0}
    for key, group in groups.items():
        if key != "none":
            for name in reminded:
                reminded[name] += group[name]
    not_reminded = groups.get("none", {"appointments": 0, "came": 0, "no_shows": 0})
    # delivered = the platform said so (delivered / read; rows before states: accepted);
    # "accepted" = the send was taken, delivery perhaps unknown (issue 22)
    reached = ReminderAttempt.state.in_(("delivered", "read")) | (
        (ReminderAttempt.state == "") & ReminderAttempt.ok.is_(True)
    )
    delivery = {
        channel: {
            "attempts": int(n),
            "accepted": int(ok or 0),
            "delivered": int(got or 0),
            "delivery_pct": _pct(int(got or 0), int(n)),
        }
        for channel, n, ok, got in session.execute(
            select(
                ReminderAttempt.channel,
                func.count(ReminderAttempt.id),
                func.sum(case((ReminderAttempt.ok.is_(True), 1), else_=0)),
                func.sum(case((reached, 1), else_=0)),
            )
            .where(
                ReminderAttempt.portal_id == portal_id,
                ReminderAttempt.attempted_at >= start,
                ReminderAttempt.attempted_at < end,
            )
            .group_by(ReminderAttempt.channel)
        ).all()
    }
    return {
        **total,
        "confirmed_pct": _pct(total["confirmed"], total["appointments"]),
        "no_show_pct": _pct(total["no_shows"], total["came"] + total["no_shows"]),
        "reminded": {
            **reminded,
            "no_show_pct": _pct(reminded["no_shows"], reminded["came"] + reminded["no_shows"]),
        },
        "not_reminded": {
            "appointments": not_reminded["appointments"],
            "came": not_reminded["came"],
            "no_shows": not_reminded["no_shows"],
            "no_show_pct": _pct(
                not_reminded["no_shows"], not_reminded["came"] + not_reminded["no_shows"]
            ),
        },
        "by_channel": {k: v for k, v in groups.items() if k != "none"},
        "delivery": delivery,
    }
