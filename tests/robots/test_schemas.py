"""Each robot's properties as Bitrix24 sends them: valid ones load typed, invalid ones give
message codes that read well in the workflow log, and the envelope rejects malformed calls."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from marshmallow import ValidationError

from b24app.bitrix.payload import parse_php_form
from b24app.robots import definitions as d
from b24app.robots.schemas import describe_problems
from b24app.robots.schemas import lead_id_of
from b24app.robots.schemas import load_properties
from b24app.robots.schemas import parse_b24_datetime
from b24app.robots.schemas import RobotCallSchema
from tests.conftest import FIXTURES

VALID: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (d.MARK_AI, {"channel": "telegram", "note": "из бота"}, {"channel": "telegram", "note": "из бота"}),
    (d.MARK_AI, {"channel": "", "note": ""}, {"channel": "other", "note": ""}),
    (
        d.SLA_START,
        {"policy": "custom", "minutes": "45", "working_time": "Y", "escalate_to": "user_4"},
        {"policy": "custom", "minutes": 45, "working_time": True, "escalate_to": 4},
    ),
    (
        d.SLA_START,
        {"policy": "first_reply", "minutes": "", "working_time": "", "escalate_to": ""},
        {"policy": "first_reply", "working_time": None, "escalate_to": None},
    ),
    (d.SLA_STOP, {}, {}),
    (
        d.REMINDERS,
        {"appointment_time": "23.05.2030 14:30:00", "service": "Стрижка",
         "remind_before": ["24h", "custom"], "custom_minutes": "30", "template": "default"},
        {"appointment_time": dt.datetime(2030, 5, 23, 14, 30), "service": "Стрижка",
         "remind_before": ["24h", "custom"], "custom_minutes": 30, "template": "default"},
    ),
    (
        d.REMINDERS,
        {"appointment_time": "2030-05-23T14:30:00+03:00", "remind_before": "2h"},
        {"appointment_time": dt.datetime(2030, 5, 23, 14, 30, tzinfo=dt.timezone(dt.timedelta(hours=3))),
         "service": "", "remind_before": ["2h"], "template": "default"},
    ),
    (
        d.QUALIFY,
        {"goal": "Маникюр", "desired_time": "завтра", "contact": "@anna"},
        {"goal": "Маникюр", "desired_time": "завтра", "contact": "@anna"},
    ),
    (d.QUALIFY, {}, {"goal": "", "desired_time": "", "contact": ""}),
    (d.KPI_SNAPSHOT, {"anything": "ignored"}, {}),
]  # fmt: skip


@pytest.mark.parametrize(("code", "properties", "expected"), VALID)
def test_valid_properties_load(
    code: str, properties: dict[str, Any], expected: dict[str, Any]
) -> None:
    """Valid properties (blank optional ones included) load into typed values."""
    assert load_properties(code, properties) == expected


INVALID: list[tuple[str, dict[str, Any], str, str]] = [
    (d.MARK_AI, {"channel": "fax"}, "channel", "unknown_option"),
    (d.MARK_AI, {"note": "x" * 501}, "note", "too_long"),
    (d.SLA_START, {}, "policy", "required"),
    (d.SLA_START, {"policy": "soon"}, "policy", "unknown_option"),
    (d.SLA_START, {"policy": "custom"}, "minutes", "custom_minutes_needed"),
    (d.SLA_START, {"policy": "custom", "minutes": "ten"}, "minutes", "not_int"),
    (d.SLA_START, {"policy": "custom", "minutes": "0"}, "minutes", "out_of_range"),
    (d.SLA_START, {"policy": "callback", "working_time": "maybe"}, "working_time", "not_bool"),
    (d.SLA_START, {"policy": "callback", "escalate_to": "group_5"}, "escalate_to", "not_user"),
    (d.REMINDERS, {"remind_before": ["24h"]}, "appointment_time", "required"),
    (d.REMINDERS, {"appointment_time": "32.13.2030 25:00"}, "appointment_time", "not_datetime"),
    (d.REMINDERS, {"appointment_time": "2030-05-23 10:00", "remind_before": ["1w"]}, "remind_before", "unknown_option"),
    (d.REMINDERS, {"appointment_time": "2030-05-23 10:00", "remind_before": ["custom"]}, "custom_minutes", "custom_minutes_needed"),
    (d.REMINDERS, {"appointment_time": "2030-05-23 10:00", "template": "vip"}, "template", "unknown_option"),
    (d.QUALIFY, {"goal": {"nested": "x"}}, "goal", "not_text"),
]  # fmt: skip


@pytest.mark.parametrize(("code", "properties", "key", "message"), INVALID)
def test_invalid_properties_fail(
    code: str, properties: dict[str, Any], key: str, message: str
) -> None:
    """Wrong type, missing required, bad datetime or unknown option: a coded error on the key."""
    with pytest.raises(ValidationError) as exc:
        load_properties(code, properties)
    assert message in json.dumps(exc.value.normalized_messages()[key])


def test_problems_read_well_in_russian_and_english() -> None:
    """The workflow-log message names the robot, the property label and the problem."""
    errors = {"minutes": ["not_int"], "policy": ["unknown_option"]}
    ru = describe_problems(d.SLA_START, errors, "ru")
    en = describe_problems(d.SLA_START, errors, "en")
    assert ru.startswith("b24app: робот «Запустить SLA-таймер»")
    assert "«Минуты (для своего срока)» — ожидается целое число" in ru
    assert "«Политика» — недопустимое значение списка" in ru
    assert en.startswith("b24app: robot “Start SLA timer”")
    assert "«Minutes (for custom)» — must be a whole number" in en


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("23.05.2030 14:30:00", dt.datetime(2030, 5, 23, 14, 30)),
        ("23.05.2030 14:30", dt.datetime(2030, 5, 23, 14, 30)),
        ("05/23/2030 02:30:00 pm", dt.datetime(2030, 5, 23, 14, 30)),
        ("2030-05-23 14:30:00", dt.datetime(2030, 5, 23, 14, 30)),
    ],
)
def test_workflow_datetime_formats(text: str, expected: dt.datetime) -> None:
    """Russian, US and ISO renderings of a workflow datetime are all read."""
    assert parse_b24_datetime(text) == expected


def _fixture_envelope() -> dict[str, Any]:
    pairs = json.loads((FIXTURES / "robot_handler_call_lead.DERIVED.form.json").read_text())
    return parse_php_form(pairs.items())


def test_envelope_of_the_fixture_loads() -> None:
    """The documented robot call (form fixture) passes the envelope schema; LEAD_456 -> 456."""
    payload = RobotCallSchema().load(_fixture_envelope())
    assert payload["properties"] == {"tag": "hot", "comment": "from robot"}
    assert payload["auth"]["member_id"] == "010b6886ebc205e43ae65000ee00addb"
    assert lead_id_of(payload["document_id"]) == 456


@pytest.mark.parametrize(
    "document", ["DEAL_5", "CONTACT_109286", "LEAD_", "LEAD_0", "LEAD_12x", "lead_5"]
)
def test_only_lead_documents_have_a_lead_id(document: str) -> None:
    """Anything but ``LEAD_<id>`` is not a lead."""
    assert lead_id_of(["crm", "CCrmDocumentLead", document]) is None


@pytest.mark.parametrize("drop", ["auth", "event_token", "document_id", "code"])
def test_envelope_requires_its_parts(drop: str) -> None:
    """No auth, no event token, no document or no code: the envelope is malformed."""
    data = _fixture_envelope()
    del data[drop]
    with pytest.raises(ValidationError):
        RobotCallSchema().load(data)
