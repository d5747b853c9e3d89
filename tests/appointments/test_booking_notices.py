"""What Bitrix24 Booking itself sends, read from the documented resource-type answers
(tests/fixtures/client-loop/booking_v1_resourcetype_list.response.json), and the app's
reminders beside it (b24app/appointments/resources.py)."""

from __future__ import annotations

import json
from pathlib import Path

from b24app.appointments.resources import booking_sends
from b24app.appointments.resources import offsets_beside_booking
from b24app.appointments.resources import parse_notices
from b24app.appointments.resources import sides

FIXTURES = Path(__file__).parents[1] / "fixtures/client-loop"


def load(name: str) -> object:
    return json.loads((FIXTURES / name).read_text())["result"]


def test_the_documented_answers_read_as_each_types_notifications() -> None:
    """The list's ``resource`` key, ``Y``/``N`` flags (a missing one is Bitrix24's default,
    on), delays in either spelling, and each resource's type."""
    types = load("booking_v1_resourcetype_list.response.json")
    types["resource"][1]["isReminderNotificationOn"] = "N"  # type: ignore[index]
    types["resource"][1]["reminderDelay"] = 3600  # type: ignore[index]
    del types["resource"][1]["reminderNotificationDelay"]  # type: ignore[index]
    notices = parse_notices(types, load("booking_v1_resource_list.response.json"), 1.0)
    first, second = notices["types"]
    assert first["id"] == 3 and first["confirmation"] and first["reminder"] and first["info"]
    assert not first["feedback"] and first["confirmation_delay"] == 86400
    assert first["reminder_delay"] == -1  # the morning of the day
    assert second["reminder"] is False and second["reminder_delay"] == 3600
    assert notices["resources"] == {"5": 1, "7": 1}


def test_booking_sends_and_the_apps_reminders_beside_it() -> None:
    """On for the type of any of the booking's resources counts; an unknown resource or no
    reading is "not known" (the app sends); the nudge keeps only the reminders ≤ 2 h."""
    notices = {
        "types": [{"id": 1, "name": "Мастера", "confirmation": True, "reminder": False},
                  {"id": 2, "name": "Кабинеты", "confirmation": False, "reminder": False}],
        "resources": {"1": 1, "2": 2},
    }  # fmt: skip
    assert booking_sends(notices, [2]) == []
    assert booking_sends(notices, [2, 1]) == ["confirmation"]
    assert booking_sends(notices, [9]) is None and booking_sends(None, [1]) is None
    offsets = ["24h", "2h", "30m"]
    assert offsets_beside_booking(offsets, ["confirmation"], nudge=False) == []
    assert offsets_beside_booking(offsets, ["reminder"], nudge=True) == ["2h", "30m"]
    assert offsets_beside_booking(offsets, [], nudge=False) == offsets
    assert offsets_beside_booking(offsets, None, nudge=False) == offsets
    rows = sides(notices, offsets, nudge=False)
    assert rows[0]["name"] == "Мастера" and rows[0]["app"] == []
    assert rows[1]["app"] == offsets and rows[1]["booking"] == []
