"""Appointment KPIs: no-show rate by source, master, weekday and lead time; reminded vs not;
confirmed vs not — from hand-made rows (the page: tests/placements/test_appointment_kpis.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from b24app.kpi.appointments import appointment_kpis
from b24app.kpi.appointments import lead_time
from b24app.storage.models import Appointment
from b24app.storage.models import AppointmentStatus
from b24app.storage.models import SlotRefill
from tests.kpi.conftest import lead

_TODAY = dt.date.today()
# A Monday two weeks ago, 12:00 in Moscow: inside the dashboard's default period (30 days).
MON = dt.datetime.combine(_TODAY - dt.timedelta(days=_TODAY.weekday() + 14), dt.time(9))
START, END = MON - dt.timedelta(days=1), MON + dt.timedelta(days=7)


def _appt(portal_id: int, journey_id: int, starts: dt.datetime, **fields: Any) -> Appointment:
    fields.setdefault("created_at", starts - dt.timedelta(days=2))
    return Appointment(portal_id=portal_id, journey_id=journey_id, starts_at=starts, **fields)


def seed(services: Any, portal_id: int) -> None:
    with services.db() as session:
        a = lead(portal_id, 1, MON, source_id="WEB", assigned_by_id=3)
        b = lead(portal_id, 2, MON, source_id="CALL", assigned_by_id=4,
                 no_show_at=MON + dt.timedelta(days=1))  # fmt: skip
        session.add_all([a, b])
        session.flush()
        session.add_all([
            # WEB, master 3, Monday, booked 2 days ahead, reminded by chat, confirmed: came
            _appt(portal_id, a.id, MON, reminded_via="chat", confirmed_at=MON, outcome="came"),
            # WEB, master 3, Monday, same day, not reminded: no-show (asked of the master)
            _appt(portal_id, a.id, MON + dt.timedelta(hours=3), outcome="no_show",
                  created_at=MON),
            # CALL, master 4, Tuesday, 10 days ahead: no-show from the journey's stage
            _appt(portal_id, b.id, MON + dt.timedelta(days=1),
                  created_at=MON - dt.timedelta(days=9)),
            # moved: no outcome; cancelled: left out
            _appt(portal_id, a.id, MON + dt.timedelta(days=2), outcome="moved"),
            _appt(portal_id, a.id, MON + dt.timedelta(days=3), outcome="came",
                  status=AppointmentStatus.CANCELLED),
        ])  # fmt: skip


def test_no_show_rate_by_source_master_weekday_lead_time_and_confirmation(
    services: Any, portal_id: int
) -> None:
    seed(services, portal_id)
    with services.db() as session:
        k = appointment_kpis(session, portal_id, START, END, "Europe/Moscow")
    assert (k["appointments"], k["came"], k["no_shows"], k["no_show_pct"]) == (4, 1, 2, 66.7)
    assert k["confirmed"] == 1 and k["confirmed_pct"] == 25.0
    assert {s: g["no_show_pct"] for s, g in k["by_source"].items()} == {"WEB": 50.0, "CALL": 100.0}
    assert {m: g["appointments"] for m, g in k["by_master"].items()} == {"3": 3, "4": 1}
    assert {d: g["no_shows"] for d, g in k["by_weekday"].items()} == {"mon": 1, "tue": 1, "wed": 0}
    assert list(k["by_lead_time"]) == ["same_day", "1_3d", "8d_plus"]
    assert k["by_lead_time"]["8d_plus"]["no_show_pct"] == 100.0
    assert k["confirmed_vs"]["confirmed"]["no_show_pct"] == 0.0
    assert k["confirmed_vs"]["unconfirmed"]["no_show_pct"] == 100.0
    assert k["reminded"]["no_show_pct"] == 0.0 and k["not_reminded"]["no_show_pct"] == 100.0


def test_moves_cancels_and_refilled_times_with_their_revenue(services: Any, portal_id: int) -> None:
    """Moved in the period (or the outcome "moved"), cancelled, refilled from the waitlist:
    the revenue is that of the refilled visits that came, through the refill's booking."""
    seed(services, portal_id)
    with services.db() as session:
        came = lead(portal_id, 3, MON, came_at=MON + dt.timedelta(days=4), opportunity="6500")
        missed = lead(portal_id, 4, MON, opportunity="1800")
        session.add_all([came, missed])
        session.flush()
        session.add_all([
            _appt(portal_id, came.id, MON + dt.timedelta(days=4), booking_id=501,
                  moved_at=MON, moved_from=MON - dt.timedelta(days=1)),
            _appt(portal_id, missed.id, MON + dt.timedelta(days=5), booking_id=502),
            # moved before the period: not counted in it
            _appt(portal_id, missed.id, MON + dt.timedelta(days=5, hours=2),
                  moved_at=START - dt.timedelta(days=3)),
            SlotRefill(portal_id=portal_id, booking_id=501, starts_at=MON + dt.timedelta(days=4)),
            SlotRefill(portal_id=portal_id, booking_id=502, starts_at=MON + dt.timedelta(days=5)),
            SlotRefill(portal_id=portal_id, booking_id=503, starts_at=END + dt.timedelta(days=1)),
        ])  # fmt: skip
    with services.db() as session:
        k = appointment_kpis(session, portal_id, START, END, "Europe/Moscow")
    assert k["rebooking"] == {"moved": 2, "cancelled": 1, "refilled": 2, "refill_revenue": 6500.0}


def test_lead_time_buckets() -> None:
    day = dt.date(2026, 11, 10)
    assert [lead_time(day, day - dt.timedelta(days=n)) for n in (0, 1, 3, 4, 7, 8, 40)] == [
        "same_day", "1_3d", "1_3d", "4_7d", "4_7d", "8d_plus", "8d_plus",
    ]  # fmt: skip
