"""Appointment reminders: scheduling on the timer machinery, the personalised text, delivery
as a CRM to-do + timeline comment in the emulator."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from b24app.context import Services
from b24app.settings import DEFAULTS
from b24app.settings import save_settings
from b24app.sla.jobs import fire_timer
from b24app.sla.reminders import cancel_reminders
from b24app.sla.reminders import parse_offset
from b24app.sla.reminders import render_reminder
from b24app.sla.reminders import schedule_reminders
from b24app.storage.models import Lead
from b24app.storage.models import Timer
from b24app.storage.models import TimerState
from b24app.storage.models import utc_now
from tests.sla.conftest import make_lead
from tests.sla.conftest import make_portal
from tests.sla.conftest import NOW
from tests.sla.conftest import portal_id_of
from tests.sla.conftest import scheduled_ids
from tests.sla.conftest import timer_row
from tests.sla.conftest import timers


def test_reminders_move_and_cancel(services: Services) -> None:
    """Reminders: past offsets skipped, a new time moves them, cancel removes them."""
    portal_id = make_portal(services)
    make_lead(services, portal_id, 31, created_at=NOW)
    appointment = NOW + dt.timedelta(hours=10)
    kwargs: dict[str, Any] = {"service": "Стрижка", "offsets": ["24h", "2h", "30m"], "now": NOW}
    assert schedule_reminders(services, portal_id, 31, appointment, **kwargs) == 2
    assert schedule_reminders(services, portal_id, 31, appointment, **kwargs) == 2
    assert sorted(scheduled_ids(services)) == [
        f"sla-{portal_id}-31-reminder-2h",
        f"sla-{portal_id}-31-reminder-30m",
    ]
    moved = appointment + dt.timedelta(days=2)
    assert schedule_reminders(services, portal_id, 31, moved, **kwargs) == 3
    rows = {t.level: t for t in timers(services, policy="reminder")}
    assert rows["2h"].due_at == moved - dt.timedelta(hours=2)
    assert rows["24h"].state == TimerState.PENDING
    assert len(scheduled_ids(services)) == 3
    with services.db() as session:
        assert session.scalar(select(Lead.booking_at).where(Lead.lead_id == 31)) == moved
    assert cancel_reminders(services, portal_id, 31) == 3
    assert scheduled_ids(services) == []


@pytest.mark.parametrize(
    ("offset", "expected"),
    [("24h", dt.timedelta(hours=24)), ("90m", dt.timedelta(minutes=90)), ("1d", dt.timedelta(1))],
)
def test_offsets_parse(offset: str, expected: dt.timedelta) -> None:
    """Offsets are <number><m|h|d>."""
    assert parse_offset(offset) == expected


@pytest.mark.parametrize("offset", ["", "2", "h2", "-2h", "2w", "2h30m"])
def test_bad_offsets_are_rejected(offset: str) -> None:
    """Anything else is a ValueError, before anything is written."""
    with pytest.raises(ValueError):
        parse_offset(offset)


def test_text_is_personalised_in_the_portal_language_and_time_zone() -> None:
    """Template placeholders filled in local time; English template; braces escaped."""
    settings = copy.deepcopy(DEFAULTS)
    settings["time_zone"] = "Asia/Yekaterinburg"  # UTC+5
    settings["reminders"]["business_name"] = "Салон «Лён»"
    settings["reminders"]["templates"]["vip"] = {"en": "{client_name}: {service} at {time} {{x}}"}
    appointment = dt.datetime(2030, 5, 22, 9, 30)
    ru = render_reminder(
        settings,
        template="default",
        lang="ru",
        client_name="Анна",
        service="Стрижка",
        appointment_at=appointment,
    )
    assert ru == "Анна, напоминаем: Стрижка 22.05.2030 в 14:30. Салон «Лён» ждёт вас!"
    en = render_reminder(
        settings,
        template="vip",
        lang="en",
        client_name="Ann",
        service="Haircut",
        appointment_at=appointment,
    )
    assert en == "Ann: Haircut at 14:30 {x}"


@pytest.mark.parametrize(
    "stored",
    ["{client_name:>1500000000}", "{client_name", "{client_name.__class__}", "{nope}"],
)
def test_a_stored_bad_template_falls_back_to_the_default_text_logged_once(
    stored: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A template saved before validation existed is never str.format-ed: the default text is
    sent instead, and the problem is logged once (issue 10, item 5)."""
    settings = copy.deepcopy(DEFAULTS)
    settings["reminders"]["templates"]["default"]["ru"] = stored
    args: dict[str, Any] = {
        "template": "default",
        "lang": "ru",
        "client_name": "Анна",
        "service": "Стрижка",
        "appointment_at": dt.datetime(2030, 5, 22, 9, 30),
    }
    with caplog.at_level("WARNING", logger="b24app.sla.reminders"):
        first = render_reminder(settings, **args)
        second = render_reminder(settings, **args)
    assert first == second == "Анна, напоминаем: Стрижка 22.05.2030 в 12:30.  ждёт вас!"
    warnings = [r for r in caplog.records if "invalid" in r.getMessage()]
    assert len(warnings) == 1


def test_due_reminder_becomes_a_todo_and_comment_with_the_client_name_from_the_crm(
    emulator: Any, installed_portal: Any, services: Services
) -> None:
    """At send time the client's name is read from the lead; the to-do (deadline = the
    appointment) and a timeline comment carry the text; a reminder after the visit is skipped."""
    portal_id = portal_id_of(services, installed_portal.member_id)
    with services.db() as session:
        save_settings(session, portal_id, {"reminders": {"business_name": "Студия Ф"}})
    lead_id = int(
        installed_portal.add_lead(
            {"TITLE": "Запись", "NAME": "Мария", "ASSIGNED_BY_ID": 3}, events=False
        )
    )
    make_lead(services, portal_id, lead_id, assigned_by_id=3)
    now = utc_now().replace(microsecond=0)
    appointment = now + dt.timedelta(hours=3)
    count = schedule_reminders(
        services, portal_id, lead_id, appointment, service="Маникюр", offsets=["24h", "2h"]
    )
    assert count == 1  # 24 h before is already past
    timer = timer_row(services, lead_id, "2h")
    assert timer.due_at == appointment - dt.timedelta(hours=2)
    assert "Мария" not in str(timer.payload)  # no client data stored
    assert fire_timer(timer.id) == "fired"
    [todo] = [c.params for c in emulator.calls("crm.activity.todo.add", installed_portal) if c.ok]
    local = appointment.replace(tzinfo=dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=3)))
    text = f"Мария, напоминаем: Маникюр {local:%d.%m.%Y} в {local:%H:%M}. Студия Ф ждёт вас!"
    assert todo["description"] == text
    assert int(todo["ownerId"]) == lead_id and int(todo["responsibleId"]) == 3
    assert dt.datetime.fromisoformat(todo["deadline"]) == appointment.replace(tzinfo=dt.UTC)
    comments = [c for c in installed_portal.timeline_comments if c["ENTITY_ID"] == lead_id]
    assert [c["COMMENT"] for c in comments] == [text]
    # The same booking again (a repeated robot run): the sent reminder is not re-armed.
    assert (
        schedule_reminders(
            services, portal_id, lead_id, appointment, service="Маникюр", offsets=["24h", "2h"]
        )
        == 0
    )
    assert timer_row(services, lead_id, "2h").state == TimerState.FIRED
    # Moved into the past: a leftover job finds the appointment over and sends nothing.
    with services.db() as session:
        row = session.get(Timer, timer.id)
        assert row is not None
        row.state = TimerState.PENDING
        row.payload = {**row.payload, "appointment_at": now.isoformat(), "done": []}
        row.claimed_at = None
    assert fire_timer(timer.id) == "skipped"
    assert len(emulator.calls("crm.activity.todo.add", installed_portal)) == 1


def test_a_reminder_on_a_deal_names_its_contact_never_its_title(
    emulator: Any, installed_portal: Any, services: Services
) -> None:
    """A journey that became a deal: the name is the deal's contact's, read in the same
    request as the deal; a deal without a contact gets the greeting, never its TITLE."""
    portal_id = portal_id_of(services, installed_portal.member_id)
    vera = installed_portal.add_contact("Вера", "Лис")
    appointment = utc_now().replace(microsecond=0) + dt.timedelta(hours=3)
    for lead_title, contact in (("Запись — Telegram", vera), ("Окрашивание — VK", None)):
        lead_id = int(installed_portal.add_lead({"TITLE": lead_title}, events=False))
        fields = {"TITLE": lead_title, **({"CONTACT_ID": contact} if contact else {})}
        deal_id = installed_portal.add_deal(fields, events=False)
        make_lead(services, portal_id, lead_id, deal_id=deal_id, entity_type="deal")
        schedule_reminders(services, portal_id, lead_id, appointment, service="Маникюр",
                           offsets=["2h"])  # fmt: skip
        before = emulator.http_requests(installed_portal)
        assert fire_timer(timer_row(services, lead_id, "2h").id) == "fired"
        assert emulator.http_requests(installed_portal) - before == 3  # read, to-do, comment
    todos = [c.params["description"] for c in emulator.calls("crm.activity.todo.add") if c.ok]
    assert todos[0].startswith("Вера Лис, напоминаем: Маникюр")
    assert todos[1].startswith("Здравствуйте, напоминаем: Маникюр")
    assert not any("Telegram" in t or "VK" in t for t in todos)
