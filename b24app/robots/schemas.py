"""What a robot call carries: the envelope (auth, event token, document) and, per robot, its
properties as Bitrix24 sends them (all strings; ``Y``/``N`` booleans, ``user_5`` users,
lists as ``properties[key][0]``, empty strings for properties left blank).

Property errors are message *codes* (``not_int``, ``unknown_option``…) that
:func:`describe_problems` turns into a readable Russian or English sentence for the workflow log.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from marshmallow import fields
from marshmallow import pre_load
from marshmallow import validate
from marshmallow import validates_schema
from marshmallow import ValidationError

from b24app.i18n import translate
from b24app.robots import definitions as d
from b24app.schemas import EventAuthSchema
from b24app.schemas import PayloadSchema

LEAD_DOCUMENT = re.compile(r"^LEAD_([1-9][0-9]{0,17})$")
DEAL_DOCUMENT = re.compile(r"^DEAL_([1-9][0-9]{0,17})$")

MAX_MINUTES = 30 * 24 * 60


class AuthSchema(EventAuthSchema):
    domain = fields.String()
    user_id = fields.String()


class RobotCallSchema(PayloadSchema):
    """The form envelope of a robot call (``robot_handler_call_lead.DERIVED.form.json``)."""

    workflow_id = fields.String(validate=validate.Length(max=128))
    code = fields.String(required=True, validate=validate.Length(min=1, max=64))
    document_id = fields.List(
        fields.String(validate=validate.Length(max=128)),
        required=True,
        validate=validate.Length(equal=3),
    )
    document_type = fields.List(fields.String(validate=validate.Length(max=128)))
    event_token = fields.String(required=True, validate=validate.Length(min=8, max=1024))
    # Checked per robot afterwards: an invalid property is reported to the workflow, not a 400.
    properties = fields.Dict(keys=fields.String(), load_default=dict)
    use_subscription = fields.String(validate=validate.OneOf(["Y", "N", ""]))
    timeout_duration = fields.String()
    ts = fields.String()
    auth = fields.Nested(AuthSchema, required=True)

    @pre_load
    def _properties_dict(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        # ``properties`` with no keys arrives as nothing at all; a bare string is malformed.
        if isinstance(data, dict) and data.get("properties") in ("", None):
            data = {k: v for k, v in data.items() if k != "properties"}
        return data


def document_key(document: str) -> int | None:
    """The key of a robot's document: ``LEAD_123`` → 123, ``DEAL_45`` → -45 (the key of a
    deal until its journey is known, see :mod:`b24app.leads.journeys`); None for others."""
    lead = LEAD_DOCUMENT.match(document)
    if lead:
        return int(lead.group(1))
    deal = DEAL_DOCUMENT.match(document)
    return -int(deal.group(1)) if deal else None


def lead_id_of(document_id: list[str]) -> int | None:
    """``123`` from ``["crm", "CCrmDocumentLead", "LEAD_123"]``; ``None`` for any other document."""
    match = LEAD_DOCUMENT.match(document_id[2]) if len(document_id) == 3 else None
    return int(match.group(1)) if match else None


# -- property fields ------------------------------------------------------------------------


class YesNo(fields.Field):
    """A Bitrix24 ``bool`` property: ``Y``/``N`` (also 1/0, true/false)."""

    default_error_messages = {"invalid": "not_bool"}
    TRUE = {"y", "1", "true", "yes", "да"}
    FALSE = {"n", "0", "false", "no", "нет"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        text = str(value).strip().lower() if isinstance(value, str | int | bool) else None
        if text in self.TRUE:
            return True
        if text in self.FALSE:
            return False
        raise self.make_error("invalid")


DATETIME_FORMATS = (
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y",
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
)


def parse_b24_datetime(value: str) -> dt.datetime:
    """A datetime as workflows render it: ISO 8601 (with or without offset), Russian
    ``23.05.2024 14:00:00`` or US ``05/23/2024 02:00:00 pm``. Naive results are portal-local.

    :raise ValueError: not a date and time in any of those forms.
    """
    text = value.strip()
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        pass
    for fmt in DATETIME_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise ValueError(f"unreadable datetime {value[:40]!r}")


class B24DateTime(fields.Field):
    default_error_messages = {"invalid": "not_datetime"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dt.datetime:
        if not isinstance(value, str) or len(value) > 64:
            raise self.make_error("invalid")
        try:
            return parse_b24_datetime(value)
        except ValueError as exc:
            raise self.make_error("invalid") from exc


class B24User(fields.Field):
    """A ``user`` property: ``user_5``, ``5`` or a one-item list of those -> 5."""

    default_error_messages = {"invalid": "not_user"}
    _USER = re.compile(r"^(?:user_|u)?([1-9][0-9]{0,9})$", re.IGNORECASE)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        match = self._USER.match(value.strip()) if isinstance(value, str) else None
        if match is None:
            raise self.make_error("invalid")
        return int(match.group(1))


def _int(**kwargs: Any) -> fields.Integer:
    return fields.Integer(
        strict=False,
        error_messages={"invalid": "not_int", "required": "required", "too_large": "out_of_range"},
        **kwargs,
    )


def _text(max_len: int, **kwargs: Any) -> fields.String:
    return fields.String(
        validate=validate.Length(max=max_len, error="too_long"),
        error_messages={"invalid": "not_text", "required": "required"},
        **kwargs,
    )


def _choice(options: dict[str, str], **kwargs: Any) -> fields.String:
    return fields.String(
        validate=validate.OneOf(list(options), error="unknown_option"),
        error_messages={"invalid": "unknown_option", "required": "required"},
        **kwargs,
    )


class PropertiesSchema(PayloadSchema):
    """Base of the per-robot property schemas: blank values count as not given."""

    @pre_load
    def _drop_blanks(self, data: Any, **_: Any) -> Any:
        if not isinstance(data, dict):
            return data
        clean: dict[str, Any] = {}
        for key, value in data.items():
            if isinstance(value, list):
                value = [v for v in value if not (isinstance(v, str) and not v.strip())]
                if not value:
                    continue
            elif isinstance(value, str) and not value.strip():
                continue
            clean[key] = value
        return clean


class MarkAiSchema(PropertiesSchema):
    channel = _choice(d.AI_CHANNELS, load_default="other")
    note = _text(500, load_default="")


class SlaStartSchema(PropertiesSchema):
    policy = _choice(d.SLA_POLICIES, required=True)
    minutes = _int(validate=validate.Range(min=1, max=MAX_MINUTES, error="out_of_range"))
    working_time = YesNo(load_default=None, error_messages={"required": "required"})
    escalate_to = B24User(load_default=None)

    @validates_schema
    def _custom_needs_minutes(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("policy") == "custom" and not data.get("minutes"):
            raise ValidationError("custom_minutes_needed", "minutes")


class SlaStopSchema(PropertiesSchema):
    pass


class RemindersSchema(PropertiesSchema):
    appointment_time = B24DateTime(required=True, error_messages={"required": "required"})
    service = _text(255, load_default="")
    remind_before = fields.List(
        _choice(d.REMIND_BEFORE),
        load_default=lambda: ["24h", "2h"],
        validate=validate.Length(min=1, max=3, error="required"),
        error_messages={"invalid": "unknown_option"},
    )
    custom_minutes = _int(validate=validate.Range(min=1, max=MAX_MINUTES, error="out_of_range"))
    template = _choice(d.REMINDER_TEMPLATES, load_default="default")

    @pre_load
    def _single_as_list(self, data: Any, **_: Any) -> Any:
        # A single choice may arrive as properties[remind_before]=24h rather than [0]=24h.
        if isinstance(data, dict) and isinstance(data.get("remind_before"), str):
            data = {**data, "remind_before": [data["remind_before"]]}
        return data

    @validates_schema
    def _custom_needs_minutes(self, data: dict[str, Any], **_: Any) -> None:
        if "custom" in (data.get("remind_before") or []) and not data.get("custom_minutes"):
            raise ValidationError("custom_minutes_needed", "custom_minutes")


class QualifySchema(PropertiesSchema):
    goal = _text(2000, load_default="")
    desired_time = _text(255, load_default="")
    contact = _text(255, load_default="")


class KpiSnapshotSchema(PropertiesSchema):
    pass


PROPERTY_SCHEMAS: dict[str, type[PropertiesSchema]] = {
    d.MARK_AI: MarkAiSchema,
    d.SLA_START: SlaStartSchema,
    d.SLA_STOP: SlaStopSchema,
    d.REMINDERS: RemindersSchema,
    d.QUALIFY: QualifySchema,
    d.KPI_SNAPSHOT: KpiSnapshotSchema,
}


def load_properties(code: str, properties: dict[str, Any]) -> dict[str, Any]:
    """Validate the properties of robot ``code``.

    :raise ValidationError: messages are codes (:func:`problem_text`), keyed by property.
    """
    result: dict[str, Any] = PROPERTY_SCHEMAS[code]().load(properties)
    return result


def _codes(messages: Any) -> list[str]:
    if isinstance(messages, str):
        return [messages]
    if isinstance(messages, list):
        return [c for item in messages for c in _codes(item)]
    if isinstance(messages, dict):
        return [c for item in messages.values() for c in _codes(item)]
    return [str(messages)]


def problem_text(code: str, lang: str) -> str:
    """The readable text of a property error's code (the ``robot.problem.*`` strings in
    b24app/translations), or the code itself when it is not one of ours."""
    key = f"robot.problem.{code}"
    text = translate(lang, key)
    return code if text == key else text


def describe_problems(code: str, errors: dict[str, Any], lang: str) -> str:
    """One readable sentence for the workflow log, in ``lang`` (``ru``, else English)."""
    lang = "ru" if lang == "ru" else "en"
    parts = []
    for key in sorted(errors):
        texts = []
        for msg in dict.fromkeys(_codes(errors[key])):
            texts.append(problem_text(msg, lang))
        name = d.label(code, key, lang) if key != "_schema" else ""
        parts.append(f"«{name}» — {', '.join(texts)}" if name else ", ".join(texts))
    robot = d.robot_name(code, lang)
    if lang == "ru":
        return f"b24app: робот «{robot}» не выполнен, неверные параметры: {'; '.join(parts)}."
    return f"b24app: robot “{robot}” not run, invalid properties: {'; '.join(parts)}."
