"""Appointment KPIs: confirmed and no-show rates from the appointments themselves, what the
reminders and confirmations are worth, where no-shows come from, and reminder delivery.

* An appointment counts in the period its **time** falls in; cancelled ones are left out.
* **Outcome**: the appointment's own (came / no-show, asked of who saw it:
  b24app/appointments/question.py), else its journey's (reached Came, else No-show); *moved*
  and unknown are no outcome.
* **Confirmed rate** = appointments confirmed (by the client's reply, or their journey reached
  Confirmed) / appointments × 100.
* **No-show rate** = no-shows / appointments with a known outcome × 100 — overall and per
  group: **reminded** by the client's chat, by the workflow, or **not reminded** (none was
  due, or only the manager's to-do); **confirmed** vs **not confirmed**; by the journey's
  **source**, its **master** (the responsible user), the **day of week** (portal time zone)
  and the **lead time** (how far ahead the app learned of it: same day, 1–3, 4–7, 8+ days).
* **Rebooking**: visits moved (the client in the chat, the booking moved, or the outcome
  "moved"), cancelled, and freed times refilled from the waitlist with their revenue.
* **Delivery rate** per channel = attempts that went through / attempts × 100, over the
  attempts made in the period (a reminder that fell through the chat to the workflow is one
  failed chat attempt and one delivered workflow attempt).

The period's appointments are read in one query and counted here, once per combination of
their keys: a salon has hundreds a month, so grouping seven ways in Python costs less than
seven grouped queries (figures: bench/README.md).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.orm import Session

from b24app.storage.models import Appointment
from b24app.storage.models import AppointmentStatus
from b24app.storage.models import Journey
from b24app.storage.models import ReminderAttempt
from b24app.storage.models import SlotRefill
from b24app.storage.models import VisitOutcome

_DIMENSIONS = ("via", "source", "master", "weekday", "lead_time", "confirmed")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
LEAD_TIMES = ((0, "same_day"), (3, "1_3d"), (7, "4_7d"), (10**6, "8d_plus"))


def _pct(numerator: int, denominator: int) -> float | None:
    return round(numerator * 100.0 / denominator, 1) if denominator else None


@dataclass
class Tally:
    """Counts of one group of appointments."""

    appointments: int = 0
    confirmed: int = 0
    came: int = 0
    no_shows: int = 0

    def add(self, confirmed: bool, outcome: str | None, n: int = 1) -> None:
        self.appointments += n
        self.confirmed += n if confirmed else 0
        self.came += n if outcome == VisitOutcome.CAME else 0
        self.no_shows += n if outcome == VisitOutcome.NO_SHOW else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "appointments": self.appointments,
            "confirmed": self.confirmed,
            "came": self.came,
            "no_shows": self.no_shows,
            "confirmed_pct": _pct(self.confirmed, self.appointments),
            "no_show_pct": _pct(self.no_shows, self.came + self.no_shows),
        }


def outcome_of(own: str | None, came_at: Any, no_show_at: Any) -> str | None:
    """The outcome an appointment counts with (module docstring)."""
    if own in (VisitOutcome.CAME, VisitOutcome.NO_SHOW):
        return own
    if own is None and came_at is not None:
        return VisitOutcome.CAME
    if own is None and no_show_at is not None:
        return VisitOutcome.NO_SHOW
    return None


def lead_time(starts: dt.date, learned: dt.date) -> str:
    days = (starts - learned).days
    return next(name for limit, name in LEAD_TIMES if days <= limit)


class _LocalClock:
    """Local dates of naive UTC times, the zone's offset looked up once per UTC hour (a
    zoneinfo conversion per row was half the time of a 90-day period)."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self.offsets: dict[dt.datetime, dt.timedelta] = {}

    def date(self, moment: dt.datetime) -> dt.date:
        hour = moment.replace(minute=0, second=0, microsecond=0)
        offset = self.offsets.get(hour)
        if offset is None:
            offset = hour.replace(tzinfo=dt.UTC).astimezone(self.zone).utcoffset() or dt.timedelta()
            self.offsets[hour] = offset
        return (moment + offset).date()


def _rows(session: Session, portal_id: int, start: dt.datetime, end: dt.datetime) -> list[Any]:
    return list(
        session.execute(
            select(
                Appointment.starts_at,
                Appointment.created_at,
                Appointment.reminded_via,
                Appointment.confirmed_at,
                Appointment.outcome,
                Journey.confirmed_at,
                Journey.came_at,
                Journey.no_show_at,
                Journey.source_id,
                Journey.assigned_by_id,
            )  # fmt: skip
            .outerjoin(Journey, Journey.id == Appointment.journey_id)
            .where(
                Appointment.portal_id == portal_id,
                Appointment.starts_at >= start,
                Appointment.starts_at < end,
                Appointment.status != AppointmentStatus.CANCELLED,
            )
        ).tuples()
    )


def _delivery(
    session: Session, portal_id: int, start: dt.datetime, end: dt.datetime
) -> dict[str, dict[str, Any]]:
    # delivered = the platform said so (delivered / read; rows before states: accepted);
    # "accepted" = the send was taken, delivery perhaps unknown (issue 22)
    reached = ReminderAttempt.state.in_(("delivered", "read")) | (
        (ReminderAttempt.state == "") & ReminderAttempt.ok.is_(True)
    )
    waiting = ReminderAttempt.state.in_(("accepted", "unknown"))
    rows = session.execute(
        select(
            ReminderAttempt.channel,
            func.count(ReminderAttempt.id),
            func.sum(case((ReminderAttempt.ok.is_(True), 1), else_=0)),
            func.sum(case((reached, 1), else_=0)),
            func.sum(
                case(
                    (ReminderAttempt.ok.is_(False) | (ReminderAttempt.state == "failed"), 1),
                    else_=0,
                )
            ),
            func.sum(case((waiting, 1), else_=0)),
        )
        .where(
            ReminderAttempt.portal_id == portal_id,
            ReminderAttempt.attempted_at >= start,
            ReminderAttempt.attempted_at < end,
        )
        .group_by(ReminderAttempt.channel)
    ).all()
    return {
        channel: {
            "attempts": int(n),
            "accepted": int(ok or 0),
            "delivered": int(got or 0),
            "delivery_pct": _pct(int(got or 0), int(n)),
            "failed": int(failed or 0),
            "unknown": int(unknown or 0),
        }
        for channel, n, ok, got, failed, unknown in rows
    }


def _rebooking(
    session: Session, portal_id: int, start: dt.datetime, end: dt.datetime
) -> dict[str, Any]:
    """Visits moved (moved in the period, or their outcome "moved"), cancelled (their time in
    the period) and freed times refilled from the waitlist, with the refilled visits' revenue
    (the opportunity of the journeys that came, through the refill's booking)."""
    moved = session.scalar(
        select(func.count(Appointment.id)).where(
            Appointment.portal_id == portal_id,
            ((Appointment.moved_at >= start) & (Appointment.moved_at < end))
            | ((Appointment.outcome == VisitOutcome.MOVED) & (Appointment.starts_at >= start)
               & (Appointment.starts_at < end)),
        )
    )  # fmt: skip
    cancelled = session.scalar(
        select(func.count(Appointment.id)).where(
            Appointment.portal_id == portal_id, Appointment.status == AppointmentStatus.CANCELLED,
            Appointment.starts_at >= start, Appointment.starts_at < end,
        )
    )  # fmt: skip
    refilled, revenue = session.execute(
        select(
            func.count(func.distinct(SlotRefill.id)),
            func.sum(case((Journey.came_at.is_not(None), Journey.opportunity), else_=0)),
        )
        .select_from(SlotRefill)
        .outerjoin(Appointment, (Appointment.portal_id == SlotRefill.portal_id)
                   & (Appointment.booking_id == SlotRefill.booking_id))
        .outerjoin(Journey, Journey.id == Appointment.journey_id)
        .where(SlotRefill.portal_id == portal_id, SlotRefill.starts_at >= start,
               SlotRefill.starts_at < end)
    ).one()  # fmt: skip
    return {"moved": int(moved or 0), "cancelled": int(cancelled or 0),
            "refilled": int(refilled or 0), "refill_revenue": float(revenue or 0)}  # fmt: skip


def appointment_kpis(
    session: Session, portal_id: int, start: dt.datetime, end: dt.datetime,
    time_zone: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The appointment figures of ``[start, end)`` (naive UTC) as plain data; weekdays and
    lead times in ``time_zone`` (the portal's; Moscow when not given)."""
    local = _LocalClock(ZoneInfo(time_zone or "Europe/Moscow"))
    # Rows are counted per combination of their keys first (a C-level Counter), then each
    # combination once into every table: most appointments share their combination.
    combos: Counter[tuple[Any, ...]] = Counter()
    for (
        starts,
        learned,
        via,
        confirmed_at,
        own,
        j_confirmed,
        came,
        no_show,
        source,
        master,
    ) in _rows(session, portal_id, start, end):
        day = local.date(starts)
        combos[(
            via or "none", source or "", str(master or 0), WEEKDAYS[day.weekday()],
            lead_time(day, local.date(learned)),
            confirmed_at is not None or j_confirmed is not None, outcome_of(own, came, no_show),
        )] += 1  # fmt: skip
    total = Tally()
    groups: dict[str, dict[str, Tally]] = {name: {} for name in _DIMENSIONS}
    for (*keys, confirmed, outcome), n in combos.items():
        total.add(confirmed, outcome, n)
        keys.append("confirmed" if confirmed else "unconfirmed")
        for name, key in zip(_DIMENSIONS, keys, strict=True):
            groups[name].setdefault(key, Tally()).add(confirmed, outcome, n)
    shaped = _shape(total, groups, _delivery(session, portal_id, start, end))
    shaped["rebooking"] = _rebooking(session, portal_id, start, end)
    return shaped


def _shape(
    total: Tally, groups: dict[str, dict[str, Tally]], delivery: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The figures as the dashboard and ``dashboard.json`` read them."""
    reminded = Tally()
    for key, tally in groups["via"].items():
        if key != "none":
            for name in ("appointments", "confirmed", "came", "no_shows"):
                setattr(reminded, name, getattr(reminded, name) + getattr(tally, name))

    def table(name: str) -> dict[str, dict[str, Any]]:
        return {key: tally.as_dict() for key, tally in sorted(groups[name].items())}

    by_weekday = {day: groups["weekday"][day].as_dict() for day in WEEKDAYS
                  if day in groups["weekday"]}  # fmt: skip
    by_lead_time = {name: groups["lead_time"][name].as_dict() for _, name in LEAD_TIMES
                    if name in groups["lead_time"]}  # fmt: skip
    return {
        **total.as_dict(),
        "reminded": reminded.as_dict(),
        "not_reminded": groups["via"].get("none", Tally()).as_dict(),
        "by_channel": {k: v for k, v in table("via").items() if k != "none"},
        "confirmed_vs": {
            key: groups["confirmed"].get(key, Tally()).as_dict()
            for key in ("confirmed", "unconfirmed")
        },  # fmt: skip
        "by_source": table("source"),
        "by_master": table("master"),
        "by_weekday": by_weekday,
        "by_lead_time": by_lead_time,
        "delivery": delivery,
    }
