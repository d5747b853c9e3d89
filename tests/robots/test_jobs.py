"""End to end: the emulator runs each robot as Bitrix24 does (form POST to the live app), an RQ
worker does the job, and the emulator receives the ``bizproc.event.send`` return values; bad
properties reach the workflow log as a readable message; an expired token is not retried."""

from __future__ import annotations

import datetime as dt
import sys
import types
from collections.abc import Callable
from typing import Any

import pytest
from rq.registry import FailedJobRegistry
from rq.registry import ScheduledJobRegistry
from sqlalchemy import select

from b24app.bitrix.errors import TransportError
from b24app.robots import definitions as d
from b24app.robots import jobs
from b24app.settings import save_settings
from b24app.storage.models import Journey
from b24app.storage.models import RobotCall
from b24app.storage.models import Timer
from b24app.storage.models import TimerState
from b24app.storage.models import utc_now
from tests.robots.conftest import portal_row
from tests.robots.conftest import run

# -- qualify --------------------------------------------------------------------------------


def test_qualified_lead_goes_to_the_handoff_manager(
    installed_portal, emulator, run_jobs, services, lead_id
) -> None:  # type: ignore[no-untyped-def]
    """Qualified answers: verdict returned, lead moved to the qualified status, assigned to the
    hand-off user, who is notified."""
    row = portal_row(services, installed_portal)
    with services.db() as session:
        save_settings(session, row.id, {"qualifier": {"threshold": 0.6, "handoff_user_id": 3}})
    result = run(installed_portal, emulator, run_jobs, d.QUALIFY, lead_id,
                 {"goal": "Хочу стрижку и укладку", "desired_time": "завтра в 15:00",
                  "contact": "+7 916 123-45-67"})  # fmt: skip
    values = result["return_values"]
    assert values["verdict"] == "qualified"
    assert float(values["confidence"]) >= 0.75
    assert result["log_message"].startswith("b24app: вердикт — квалифицирован")
    lead = installed_portal.lead(lead_id)
    assert lead["STATUS_ID"] == row.registration["statuses"]["qualified"]
    assert int(lead["ASSIGNED_BY_ID"]) == 3
    notes = [n for n in installed_portal.notifications if n["user_id"] == 3]
    assert len(notes) == 1 and f"#{lead_id}" in notes[0]["message"]


def test_unsure_lead_stays_new_and_its_manager_is_notified(
    installed_portal, emulator, run_jobs, services, lead_id
) -> None:  # type: ignore[no-untyped-def]
    """Needs a human: status stays New, the current responsible (no hand-off user) is notified."""
    row = portal_row(services, installed_portal)
    result = run(installed_portal, emulator, run_jobs, d.QUALIFY, lead_id,
                 {"goal": "Хочу на массаж", "desired_time": "", "contact": ""})  # fmt: skip
    assert result["return_values"]["verdict"] == "needs_human"
    lead = installed_portal.lead(lead_id)
    assert lead["STATUS_ID"] == row.registration["statuses"]["new"]
    assert int(lead["ASSIGNED_BY_ID"]) == 2
    assert [n["user_id"] for n in installed_portal.notifications] == [2]


def test_junk_lead_is_left_to_the_workflow(installed_portal, emulator, run_jobs, lead_id) -> None:  # type: ignore[no-untyped-def]
    """Confident junk: verdict junk, nothing updated and nobody disturbed."""
    before = installed_portal.lead(lead_id)
    result = run(installed_portal, emulator, run_jobs, d.QUALIFY, lead_id,
                 {"goal": "Заработок на крипте без вложений", "desired_time": "", "contact": ""})  # fmt: skip
    assert result["return_values"]["verdict"] == "junk"
    assert installed_portal.lead(lead_id)["STATUS_ID"] == before["STATUS_ID"]
    assert installed_portal.notifications == []
    assert emulator.calls(method="crm.item.update", portal=installed_portal) == []


# -- invalid input, expiry, retries -----------------------------------------------------------


def test_bad_properties_reach_the_workflow_log(
    installed_portal, emulator, run_jobs, services, lead_id
) -> None:  # type: ignore[no-untyped-def]
    """Unknown option and a non-number: the workflow gets empty values and a readable message."""
    result = run(installed_portal, emulator, run_jobs, d.SLA_START, lead_id,
                 {"policy": "someday", "minutes": "ten"})  # fmt: skip
    assert result["return_values"] == {"due_at": ""}
    message = result["log_message"]
    assert message.startswith("b24app: робот «Запустить SLA-таймер» не выполнен")
    assert "«Политика» — недопустимое значение списка" in message
    assert "«Минуты (для своего срока)» — ожидается целое число" in message
    with services.db() as session:
        assert session.scalars(select(RobotCall)).one().state == "sent"


def test_expired_event_token_is_final(
    installed_portal, emulator, run_jobs, services, lead_id
) -> None:  # type: ignore[no-untyped-def]
    """403 ACCESS_DENIED from bizproc.event.send: call marked expired, one attempt, no retry."""
    token = installed_portal.run_robot(d.KPI_SNAPSHOT, lead_id, {})
    assert emulator.wait_idle()
    installed_portal.expire_event_token(token)
    run_jobs("events")
    with services.db() as session:
        assert session.scalars(select(RobotCall)).one().state == "expired"
    assert len(emulator.calls(method="bizproc.event.send", portal=installed_portal)) == 1
    events = services.queue("events")
    assert ScheduledJobRegistry(queue=events).get_job_ids() == []
    assert FailedJobRegistry(queue=events).get_job_ids() == []
    run_jobs("events")  # nothing left to run: still a single attempt
    assert len(emulator.calls(method="bizproc.event.send", portal=installed_portal)) == 1


def test_transient_send_failure_retries_with_backoff(
    installed_portal, emulator, run_jobs, services, lead_id, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """A transport error on send: the job is scheduled again (back-off), the outcome kept."""

    def broken(*args: Any, **kwargs: Any) -> str:
        raise TransportError("NETWORK_ERROR", "down")

    monkeypatch.setattr(jobs, "send_result", broken)
    installed_portal.run_robot(d.KPI_SNAPSHOT, lead_id, {})
    assert emulator.wait_idle()
    run_jobs("events")
    events = services.queue("events")
    scheduled = ScheduledJobRegistry(queue=events).get_job_ids()
    assert len(scheduled) == 1
    assert events.fetch_job(scheduled[0]).retries_left == len(jobs.RETRY_INTERVALS) - 1
    with services.db() as session:
        call = session.scalars(select(RobotCall)).one()
        assert call.state == "computed" and call.return_values["sla_status"] == "none"


# -- KPI snapshot ---------------------------------------------------------------------------


def test_kpi_snapshot_reads_the_lifecycle_record(
    installed_portal, emulator, run_jobs, services, lead_id
) -> None:  # type: ignore[no-untyped-def]
    """First-reply seconds and SLA status come from the Lead row and its timers."""
    row = portal_row(services, installed_portal)
    created = utc_now() - dt.timedelta(minutes=10)
    with services.db() as session:
        lead = session.scalar(
            select(Journey).where(Journey.portal_id == row.id, Journey.lead_id == lead_id)
        )
        if lead is None:
            lead = Journey(portal_id=row.id, lead_id=lead_id, created_at=created)
            session.add(lead)
        lead.created_at = created
        lead.first_reply_at = created + dt.timedelta(seconds=125)
        session.query(Timer).filter(
            Timer.portal_id == row.id, Timer.journey_key == lead_id
        ).delete()
        session.add(Timer(portal_id=row.id, journey_key=lead_id, policy="first_reply", level="remind",
                          due_at=created + dt.timedelta(minutes=3), state=TimerState.CANCELLED,
                          job_id="t1"))  # fmt: skip
    result = run(installed_portal, emulator, run_jobs, d.KPI_SNAPSHOT, lead_id)
    assert result["return_values"] == {"first_reply_seconds": 125, "sla_status": "ok"}


@pytest.mark.parametrize(
    ("states", "replied_after", "expected"),
    [
        ([], None, "none"),
        ([TimerState.PENDING], None, "pending"),
        ([TimerState.FIRED, TimerState.PENDING], None, "breached"),
        ([TimerState.CANCELLED], 100, "ok"),
        ([TimerState.CANCELLED], 400, "breached"),
    ],
)
def test_sla_status(states: list[str], replied_after: int | None, expected: str) -> None:
    """none / pending / breached (fired, or replied after the due time) / ok."""
    start = dt.datetime(2030, 1, 1, 10, 0)
    timers = [Timer(policy="first_reply", level="remind", due_at=start + dt.timedelta(minutes=5),
                    state=s, job_id="x") for s in states]  # fmt: skip
    replied = start + dt.timedelta(seconds=replied_after) if replied_after is not None else None
    assert jobs.sla_status(timers, replied) == expected


# -- robots on the other engineers' domain code (contract fakes) ---------------------------


@pytest.fixture
def domain(monkeypatch) -> Callable[[str, str, Callable[..., Any]], list[tuple[Any, ...]]]:  # type: ignore[no-untyped-def]
    """Install a stand-in for one contract function (``module``, ``name``) recording its calls.

    The robots call the lead-intake and SLA engineers' functions by their documented
    signatures; these tests pin the robot side of that contract (arguments in, values out).
    """

    def install(module: str, name: str, impl: Callable[..., Any]) -> list[tuple[Any, ...]]:
        calls: list[tuple[Any, ...]] = []
        fake = types.ModuleType(module)
        existing = sys.modules.get(module)
        if existing is not None:
            fake.__dict__.update(existing.__dict__)

        def recorder(*args: Any, **kwargs: Any) -> Any:
            calls.append((args, kwargs))
            return impl(*args, **kwargs)

        setattr(fake, name, recorder)
        monkeypatch.setitem(sys.modules, module, fake)
        return calls

    return install


def test_mark_ai_tags_the_lead(
    installed_portal, emulator, run_jobs, services, lead_id, domain
) -> None:  # type: ignore[no-untyped-def]
    """Mark as AI-lead calls tag_ai_lead(services, portal, lead, channel, note) -> tagged=Y."""
    calls = domain("b24app.leads.tagging", "tag_ai_lead", lambda *a, **k: True)
    result = run(installed_portal, emulator, run_jobs, d.MARK_AI, lead_id,
                 {"channel": "telegram", "note": "бот Алиса"})  # fmt: skip
    assert result["return_values"] == {"tagged": "Y"}
    row = portal_row(services, installed_portal)
    assert calls[0][0][1:] == (row.id, lead_id, "telegram", "бот Алиса")


def test_sla_start_returns_portal_local_due_time(
    installed_portal, emulator, run_jobs, services, lead_id, domain
) -> None:  # type: ignore[no-untyped-def]
    """Start SLA passes policy/minutes/working time/escalation and returns due_at in the
    portal's zone (Europe/Moscow: UTC+3)."""
    calls = domain(
        "b24app.sla.engine", "start_timer", lambda *a, **k: dt.datetime(2030, 5, 23, 11, 0)
    )
    result = run(installed_portal, emulator, run_jobs, d.SLA_START, lead_id,
                 {"policy": "custom", "minutes": "45", "working_time": "Y", "escalate_to": "user_4"})  # fmt: skip
    assert result["return_values"] == {"due_at": "2030-05-23T14:00:00+03:00"}
    args, kwargs = calls[0]
    assert args[2:] == (lead_id, "custom")
    assert kwargs == {"minutes": 45, "working_time": True, "escalate_to": 4}


def test_sla_stop_records_the_reply_and_measures_it(
    installed_portal, emulator, run_jobs, services, lead_id, domain
) -> None:  # type: ignore[no-untyped-def]
    """Mark replied: first reply recorded (kind robot), timers stopped, response seconds from
    the lead's creation (fetched from the CRM when the lifecycle row is missing)."""
    replies = domain("b24app.leads.lifecycle", "record_first_reply", lambda *a, **k: True)
    stops = domain("b24app.sla.engine", "stop_timers", lambda *a, **k: 2)
    row = portal_row(services, installed_portal)
    with services.db() as session:
        session.query(Journey).filter(Journey.portal_id == row.id).delete()
    result = run(installed_portal, emulator, run_jobs, d.SLA_STOP, lead_id)
    seconds = int(result["return_values"]["response_seconds"])
    # from the lead's creation in the CRM to the robot's run: never more than has passed
    created = dt.datetime.fromisoformat(installed_portal.lead(lead_id)["DATE_CREATE"])
    assert 0 <= seconds <= (dt.datetime.now(dt.UTC) - created).total_seconds() + 1
    assert replies[0][1] == {"kind": "robot"} and replies[0][0][1:3] == (row.id, lead_id)
    assert stops[0][0][1:] == (row.id, lead_id)
    assert "отменено таймеров: 2" in result["log_message"]


def test_reminders_are_scheduled_in_utc(
    installed_portal, emulator, run_jobs, services, lead_id, domain
) -> None:  # type: ignore[no-untyped-def]
    """Reminders: the portal-local appointment goes to the SLA engine in naive UTC with the
    chosen offsets; the count comes back."""
    calls = domain("b24app.appointments.routes", "robot_appointment", lambda *a, **k: 3)
    result = run(installed_portal, emulator, run_jobs, d.REMINDERS, lead_id,
                 {"appointment_time": "23.05.2030 14:30:00", "service": "Стрижка",
                  "remind_before": ["24h", "2h", "custom"], "custom_minutes": "30"})  # fmt: skip
    assert result["return_values"] == {"reminders_scheduled": 3}
    args, kwargs = calls[0]
    assert args[2:] == (lead_id, dt.datetime(2030, 5, 23, 11, 30))
    assert kwargs == {"service": "Стрижка", "offsets": ["24h", "2h", "30m"]}


def test_non_lead_document_gets_a_readable_refusal(
    installed_portal, services, run_jobs, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """A robot run on a contact: the workflow is told the robot works with leads (and deals)
    only."""
    sent: list[jobs.Outcome] = []

    def capture(services_: Any, member_id: str, event_token: str, outcome: jobs.Outcome) -> str:
        sent.append(outcome)
        return jobs.CallState.SENT

    monkeypatch.setattr(jobs, "send_result", capture)
    row = portal_row(services, installed_portal)
    assert jobs.accept_call(services, row.id, row.member_id, d.KPI_SNAPSHOT, "wf|A1|sig-deal",
                            "CONTACT_5", {})  # fmt: skip
    run_jobs("events")
    assert sent[0].return_values == {"first_reply_seconds": "", "sla_status": "none"}
    assert "робот работает только с лидами" in sent[0].log_message
    assert "CONTACT_5" in sent[0].log_message
