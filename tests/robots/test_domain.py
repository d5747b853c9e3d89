"""Robots on the real domain code: the emulator runs each robot as an automation rule does, the
real lead-intake and SLA code do the work, and the workflow receives the right values."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from b24app.robots import definitions as d
from b24app.storage.models import Appointment
from b24app.storage.models import Journey
from b24app.storage.models import Timer
from b24app.storage.models import TimerState
from tests.robots.conftest import portal_row
from tests.robots.conftest import run


def _timers(services, portal_id: int, lead_id: int) -> list[Timer]:  # type: ignore[no-untyped-def]
    with services.db() as session:
        return list(
            session.scalars(
                select(Timer).where(Timer.portal_id == portal_id, Timer.journey_key == lead_id)
            )
        )


def test_mark_ai_tags_once_with_field_and_comment(
    installed_portal, emulator, run_jobs, services, lead_id
) -> None:
    """The robot tags the lead (field + one timeline comment); a second run reports tagged=N."""
    first = run(installed_portal, emulator, run_jobs, d.MARK_AI, lead_id,
                {"channel": "telegram", "note": "бот"})  # fmt: skip
    assert first["return_values"] == {"tagged": "Y"}
    field = portal_row(services, installed_portal).registration["lead_field"]
    assert "AI" in installed_portal.lead(lead_id)[field]
    comments = [c for c in installed_portal.timeline_comments if int(c["ENTITY_ID"]) == lead_id]
    assert len(comments) == 1
    again = run(installed_portal, emulator, run_jobs, d.MARK_AI, lead_id, {"channel": "telegram"})
    assert again["return_values"] == {"tagged": "N"}
    assert len([c for c in installed_portal.timeline_comments
                if int(c["ENTITY_ID"]) == lead_id]) == 1  # fmt: skip


def test_start_then_stop_sla(installed_portal, emulator, run_jobs, services, lead_id) -> None:
    """Start SLA schedules a remind/escalate pair and returns its due time in the portal's zone;
    Mark replied records the reply, cancels them and returns the response seconds."""
    portal_id = portal_row(services, installed_portal).id
    started = run(installed_portal, emulator, run_jobs, d.SLA_START, lead_id,
                  {"policy": "custom", "minutes": "45", "working_time": "N"})  # fmt: skip
    due = dt.datetime.fromisoformat(started["return_values"]["due_at"])
    assert due.utcoffset() == dt.timedelta(hours=3)  # Europe/Moscow
    pending = [t for t in _timers(services, portal_id, lead_id) if t.policy == "custom"]
    assert {t.level for t in pending} == {"remind", "escalate"}
    assert all(t.state == TimerState.PENDING for t in pending)
    stopped = run(installed_portal, emulator, run_jobs, d.SLA_STOP, lead_id)
    assert 0 <= int(stopped["return_values"]["response_seconds"]) < 600
    assert all(t.state == TimerState.CANCELLED
               for t in _timers(services, portal_id, lead_id) if t.policy == "custom")  # fmt: skip
    with services.db() as session:
        lead = session.scalar(select(Journey).where(Journey.portal_id == portal_id,
                                                 Journey.lead_id == lead_id))  # fmt: skip
        assert lead is not None and lead.first_reply_at is not None


def test_reminders_are_timers_before_the_appointment(
    installed_portal, emulator, run_jobs, services, lead_id
) -> None:
    """Two reminders (24 h and 2 h) before an appointment three days ahead become timers."""
    portal_id = portal_row(services, installed_portal).id
    moment = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).astimezone(
        dt.timezone(dt.timedelta(hours=3))
    )
    result = run(installed_portal, emulator, run_jobs, d.REMINDERS, lead_id,
                 {"appointment_time": moment.strftime("%d.%m.%Y %H:%M:00"),
                  "service": "Маникюр", "remind_before": ["24h", "2h"]})  # fmt: skip
    assert result["return_values"] == {"reminders_scheduled": 2}
    with services.db() as session:
        appt = session.scalar(select(Appointment).where(Appointment.portal_id == portal_id))
        assert appt is not None and appt.source == "robot" and appt.lead_id == lead_id
        appt_id = appt.id
    reminders = [t for t in _timers(services, portal_id, lead_id) if t.policy == "appointment"]
    assert sorted(t.level for t in reminders) == [f"24h@{appt_id}", f"2h@{appt_id}"]
    appointment = moment.astimezone(dt.UTC).replace(tzinfo=None, second=0, microsecond=0)
    for timer in reminders:
        hours = 24 if timer.level.startswith("24h") else 2
        assert timer.due_at == appointment - dt.timedelta(hours=hours)


def test_kpi_snapshot_reports_the_lead(
    installed_portal, emulator, run_jobs, services, lead_id
) -> None:
    """A fresh lead with no reply: no first-reply seconds, and its SLA status in words."""
    result = run(installed_portal, emulator, run_jobs, d.KPI_SNAPSHOT, lead_id)
    values = result["return_values"]
    assert set(values) == {"first_reply_seconds", "sla_status"}
    assert values["first_reply_seconds"] == ""
    assert values["sla_status"] in {"pending", "none", "ok", "breached"}
