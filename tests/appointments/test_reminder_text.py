"""The text of an appointment reminder: offsets, the personalised template, a bad stored
template falling back to the default text."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from b24app.appointments.reminder_text import parse_offset
from b24app.appointments.reminder_text import render_reminder
from b24app.settings import DEFAULTS


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
    with caplog.at_level("WARNING", logger="b24app.appointments.reminder_text"):
        first = render_reminder(settings, **args)
        second = render_reminder(settings, **args)
    assert (
        first == second == "Анна, напоминаем: Стрижка 22.05.2030 в 12:30."
    )  # no business name: no «  ждёт вас!»
    warnings = [r for r in caplog.records if "invalid" in r.getMessage()]
    assert len(warnings) == 1
