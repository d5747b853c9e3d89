"""Per-portal settings that the portal admin edits: SLA policies, working hours, holidays, owner,
AI-lead rules, reminder templates, KPI targets, report schedule.

Stored as one JSON document per portal (``PortalSettings.data``), validated by
:class:`PortalSettingsSchema`; what is not stored falls back to :data:`DEFAULTS`, so a new
portal works out of the box and a new setting needs no migration.
"""

from __future__ import annotations

import copy
import re
from typing import Any
from zoneinfo import ZoneInfo
from zoneinfo import ZoneInfoNotFoundError

from marshmallow import fields
from marshmallow import RAISE
from marshmallow import Schema
from marshmallow import validate
from marshmallow import validates
from marshmallow import validates_schema
from marshmallow import ValidationError
from sqlalchemy.orm import Session

from b24app import templating
from b24app.appointments.config import AppointmentsSchema
from b24app.appointments.config import DEFAULTS as APPOINTMENT_DEFAULTS
from b24app.bounded import BoundedDict
from b24app.bounded import BoundedList
from b24app.consent.config import ConsentSchema
from b24app.consent.config import DEFAULTS as CONSENT_DEFAULTS
from b24app.storage.models import PortalSettings

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

DEFAULTS: dict[str, Any] = {
    "time_zone": "Europe/Moscow",
    # [open, close] in local time per weekday; null = closed that day.
    "working_hours": {
        "mon": ["09:00", "21:00"],
        "tue": ["09:00", "21:00"],
        "wed": ["09:00", "21:00"],
        "thu": ["09:00", "21:00"],
        "fri": ["09:00", "21:00"],
        "sat": ["10:00", "18:00"],
        "sun": None,
    },
    # Public holidays of ``country`` (python-holidays), plus extra days off, minus extra workdays.
    "holidays": {"country": "RU", "extra_days_off": [], "extra_workdays": []},
    # Who gets escalations: this user, else the head of the manager's department, else the admin.
    "owner_user_id": None,
    "sla": {
        "first_reply": {
            "enabled": True,
            "minutes": 3,
            "escalate_minutes": 30,
            "working_time": False,
        },
        "confirmation": {
            "enabled": True,
            "minutes": 15,
            "escalate_minutes": 30,
            "working_time": True,
        },
        "callback": {
            "enabled": True,
            "minutes": 15,
            "escalate_minutes": 30,
            "working_time": False,
        },
        "create_task": False,
        "timeline_comment": True,
    },
    # A lead is an AI-lead if any rule matches. Source patterns allow ``*`` (``*|TELEGRAM``).
    "ai_rules": {
        "source_ids": [
            "*|OPENLINE",
            "*|TELEGRAM",
            "*|TELEGRAMBOT",
            "*|WHATSAPP",
            "*|WHATSAPPBYTWILIO",
            "*|WHATSAPPBYEDNA",
            "*|INSTAGRAM",
            "*|FBINSTAGRAMDIRECT",
            "*|VK",
            "*|AVITO",
        ],
        "utm_sources": ["ai_bot", "ai-bot", "chatbot", "ai_assistant", "gpt"],
        "markers": ["#ai", "[AI]", "AI-lead", "AI-ассистент", "ИИ-ассистент", "чат-бот"],
    },
    "reminders": {
        "business_name": "",
        "offsets": ["24h", "2h"],
        "templates": {
            "default": {
                "ru": "{client_name}, напоминаем: {service} {date} в {time}. {business_name} ждёт вас!",
                "en": "{client_name}, a reminder: {service} on {date} at {time}. {business_name} is looking forward to seeing you!",
            }
        },
    },
    "targets": {"no_show_max_pct": 12.0, "conversion_min_pct": 18.0, "first_reply_max_min": 3.0},
    "reports": {
        "enabled": True,
        "daily_at": "09:00",
        "weekly_day": "mon",
        "weekly_at": "09:00",
    },
    "qualifier": {"threshold": 0.6, "handoff_user_id": None},
    # Deal stages per pipeline chosen by the admin ({"<pipeline>": {stage: STAGE_ID | "none"}});
    # what is not chosen keeps the install's default (b24app.install.stages).
    "deal_stage_map": {},
    # May the install add "Пришёл" / "Не пришёл" stages to deal pipelines that lack them?
    "deal_stages_add_missing": False,
    # The AI assistant in Open Lines (b24app.assistant); off until the admin enables it.
    "assistant": {
        "enabled": False,
        "lines": [],  # open line IDs it serves; empty = every line the bot is attached to
        "model": False,  # ask the OpenAI-compatible model when the rules miss
        "greeting": "",
        "questions": {"service": "", "when": "", "contact": ""},
        "services": [
            {
                "code": "manicure",
                "name": {"ru": "Маникюр", "en": "Manicure"},
                "synonyms": ["ногти", "маник", "nails"],
                "duration": 60,
                "price": 2500,
            },
            {
                "code": "haircut",
                "name": {"ru": "Стрижка", "en": "Haircut"},
                "synonyms": ["подстричься", "постричься", "стричь", "hair"],
                "duration": 60,
                "price": 2000,
            },
            {
                "code": "coloring",
                "name": {"ru": "Окрашивание", "en": "Colouring"},
                "synonyms": ["покрасить волосы", "покраска", "color", "colour"],
                "duration": 120,
                "price": 5000,
            },
        ],
        "slot_step_minutes": 60,
        # The business kind picks the default hand-off vocabulary (medical, legal, complaint,
        # refund: b24app.assistant.understanding.DEFAULT_SAFETY); the portal adds its words.
        "kind": "salon",
        "safety_words": {},
        # unconfirmed pre-bookings expire, one client holds one, new dialogs per line and
        # hour, how far ahead it books (b24app.assistant.holds, .rate, .slots)
        "hold_minutes": 30,
        "dialogs_per_hour": 30,
        "horizon_days": 60,
        "handoff": "operator",  # operator (imopenlines.bot.session.operator) or queue
        "queue_id": None,  # the open line's ID for "queue"
        # Pre-book in Online Booking on this resource (booking.v1.booking.add); None: the
        # appointment is recorded by the app only (journey + appointments).
        "booking_resource_id": None,
    },
    "appointments": APPOINTMENT_DEFAULTS,
    "consent": CONSENT_DEFAULTS,
}

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class PolicySchema(_Strict):
    enabled = fields.Boolean()
    minutes = fields.Integer(validate=validate.Range(min=1, max=7 * 24 * 60))
    escalate_minutes = fields.Integer(validate=validate.Range(min=1, max=7 * 24 * 60))
    working_time = fields.Boolean()

    @validates_schema
    def _ladder(self, data: dict[str, Any], **_: Any) -> None:
        if "minutes" in data and "escalate_minutes" in data:
            if data["escalate_minutes"] <= data["minutes"]:
                raise ValidationError("must be later than the reminder", "escalate_minutes")


class SlaSchema(_Strict):
    first_reply = fields.Nested(PolicySchema)
    confirmation = fields.Nested(PolicySchema)
    callback = fields.Nested(PolicySchema)
    create_task = fields.Boolean()
    timeline_comment = fields.Boolean()


# Every list and mapping of the document has a count limit and every string a length limit:
# one portal's settings are read by jobs that share the workers of all portals (issue 19).
MAX_EXTRA_DAYS = 366  # extra days off / workdays: a year of them
MAX_OFFSETS = 5  # reminder offsets (as the appointments' own)
MAX_TEMPLATES = 20
MAX_PIPELINES = 100  # deal pipelines with a stage map
MAX_LINES = 50  # open lines the assistant serves
MAX_SERVICES = 50
# Synonyms: every client message is matched against each of them, and each goes into every
# model prompt (b24app.assistant.model), so there is a limit per service and in all.
MAX_SYNONYMS_PER_SERVICE = 20
MAX_SYNONYMS = 200
MAX_SERVICE_NAME = 100


class HolidaysSchema(_Strict):
    country = fields.String(validate=validate.Regexp(r"^[A-Z]{2}$"), allow_none=True)
    extra_days_off = BoundedList(
        fields.String(validate=validate.Regexp(_DATE)), max_items=MAX_EXTRA_DAYS
    )
    extra_workdays = BoundedList(
        fields.String(validate=validate.Regexp(_DATE)), max_items=MAX_EXTRA_DAYS
    )


MAX_AI_RULES = 100  # per list: every event job of the portal checks each of them
MAX_PATTERN_LENGTH = 64


class AiRulesSchema(_Strict):
    source_ids = BoundedList(
        fields.String(validate=validate.Length(min=1, max=MAX_PATTERN_LENGTH)),
        max_items=MAX_AI_RULES,
    )
    utm_sources = BoundedList(
        fields.String(validate=validate.Length(min=1, max=128)), max_items=MAX_AI_RULES
    )
    markers = BoundedList(
        fields.String(validate=validate.Length(min=1, max=128)), max_items=MAX_AI_RULES
    )


def _template(value: str) -> None:
    """Only the documented ``{placeholders}``, no format specs (see :mod:`b24app.templating`)."""
    problems = templating.validate(value, max_length=1000)
    if problems:
        raise ValidationError(problems)


class TemplateSchema(_Strict):
    ru = fields.String(validate=_template)
    en = fields.String(validate=_template)


class RemindersSchema(_Strict):
    business_name = fields.String(validate=validate.Length(max=200))
    offsets = BoundedList(
        fields.String(validate=validate.Regexp(r"^\d{1,4}[hm]$")), max_items=MAX_OFFSETS
    )
    templates = BoundedDict(
        keys=fields.String(validate=validate.Regexp(r"^[a-z0-9_]{1,32}$")),
        values=fields.Nested(TemplateSchema),
        max_items=MAX_TEMPLATES,
    )


class TargetsSchema(_Strict):
    no_show_max_pct = fields.Float(validate=validate.Range(min=0, max=100))
    conversion_min_pct = fields.Float(validate=validate.Range(min=0, max=100))
    first_reply_max_min = fields.Float(validate=validate.Range(min=0, max=1440))


class ReportsSchema(_Strict):
    enabled = fields.Boolean()
    daily_at = fields.String(validate=validate.Regexp(_HHMM))
    weekly_day = fields.String(validate=validate.OneOf(WEEKDAYS))
    weekly_at = fields.String(validate=validate.Regexp(_HHMM))


class QualifierSchema(_Strict):
    threshold = fields.Float(validate=validate.Range(min=0, max=1))
    handoff_user_id = fields.Integer(allow_none=True, validate=validate.Range(min=1))


class ServiceNameSchema(_Strict):
    ru = fields.String(validate=validate.Length(max=MAX_SERVICE_NAME))
    en = fields.String(validate=validate.Length(max=MAX_SERVICE_NAME))


class AssistantServiceSchema(_Strict):
    code = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9_]{1,32}$"))
    name = fields.Nested(ServiceNameSchema, required=True)
    synonyms = BoundedList(
        fields.String(validate=validate.Length(min=2, max=64)), max_items=MAX_SYNONYMS_PER_SERVICE
    )
    duration = fields.Integer(validate=validate.Range(min=5, max=12 * 60))
    price = fields.Float(allow_none=True, validate=validate.Range(min=0))


class AssistantQuestionsSchema(_Strict):
    service = fields.String(validate=validate.Length(max=500))
    when = fields.String(validate=validate.Length(max=500))
    contact = fields.String(validate=validate.Length(max=500))


class AssistantSchema(_Strict):
    enabled = fields.Boolean()
    lines = BoundedList(fields.String(validate=validate.Regexp(r"^\d{1,10}$")), max_items=MAX_LINES)
    model = fields.Boolean()
    greeting = fields.String(validate=validate.Length(max=1000))
    questions = fields.Nested(AssistantQuestionsSchema)
    services = BoundedList(fields.Nested(AssistantServiceSchema), max_items=MAX_SERVICES)
    slot_step_minutes = fields.Integer(validate=validate.Range(min=5, max=240))
    kind = fields.String(validate=validate.OneOf(("salon", "clinic", "trainer")))
    safety_words = fields.Dict(
        keys=fields.String(validate=validate.OneOf(("medical", "legal", "complaint", "refund"))),
        values=fields.List(
            fields.String(validate=validate.Length(min=2, max=64)),
            validate=validate.Length(max=100),
        ),
    )
    # bounds as in b24app.assistant.holds.HOLD_MINUTES, rate.PER_HOUR, slots.HORIZON_DAYS
    hold_minutes = fields.Integer(validate=validate.Range(min=5, max=1440))
    dialogs_per_hour = fields.Integer(validate=validate.Range(min=1, max=1000))
    horizon_days = fields.Integer(validate=validate.Range(min=1, max=365))
    handoff = fields.String(validate=validate.OneOf(("operator", "queue")))
    queue_id = fields.Integer(allow_none=True, validate=validate.Range(min=1))
    booking_resource_id = fields.Integer(allow_none=True, validate=validate.Range(min=1))

    @validates("services")
    def _synonyms(self, value: list[dict[str, Any]], **_: Any) -> None:
        total = sum(len(s.get("synonyms") or ()) for s in value)
        if total > MAX_SYNONYMS:
            raise ValidationError(f"at most {MAX_SYNONYMS} synonyms in all services ({total})")


class PortalSettingsSchema(_Strict):
    """Validates a (partial) settings document; unknown keys are an error, not ignored."""

    # an IANA name ("Europe/Moscow", "America/Argentina/Buenos_Aires"): short, no dots
    time_zone = fields.String(validate=validate.Regexp(r"^[A-Za-z][A-Za-z0-9_+/-]{0,63}$"))
    working_hours = BoundedDict(
        keys=fields.String(validate=validate.OneOf(WEEKDAYS)),
        values=BoundedList(
            fields.String(validate=validate.Regexp(_HHMM)), max_items=2, allow_none=True
        ),
        max_items=len(WEEKDAYS),
    )
    holidays = fields.Nested(HolidaysSchema)
    owner_user_id = fields.Integer(allow_none=True, validate=validate.Range(min=1))
    sla = fields.Nested(SlaSchema)
    ai_rules = fields.Nested(AiRulesSchema)
    reminders = fields.Nested(RemindersSchema)
    targets = fields.Nested(TargetsSchema)
    reports = fields.Nested(ReportsSchema)
    qualifier = fields.Nested(QualifierSchema)
    deal_stages_add_missing = fields.Boolean()
    deal_stage_map = BoundedDict(
        keys=fields.String(validate=validate.Regexp(r"^\d{1,6}$")),
        values=BoundedDict(
            keys=fields.String(
                validate=validate.OneOf(["qualified", "confirmed", "came", "no_show"])
            ),
            values=fields.String(validate=validate.Length(min=1, max=64)),
            max_items=4,
        ),
        max_items=MAX_PIPELINES,
    )
    assistant = fields.Nested(AssistantSchema)
    appointments = fields.Nested(AppointmentsSchema)
    consent = fields.Nested(ConsentSchema)

    @validates("time_zone")
    def _zone(self, value: str, **_: Any) -> None:
        try:
            ZoneInfo(value)
        # a directory of the tz database ("Europe") is an OSError, not ZoneInfoNotFoundError
        except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
            raise ValidationError("unknown time zone") from exc

    @validates("working_hours")
    def _hours(self, value: dict[str, list[str] | None], **_: Any) -> None:
        for day, span in value.items():
            if span is None:
                continue
            if len(span) != 2 or span[0] >= span[1]:
                raise ValidationError(f"{day}: expected [open, close] with open < close")


def bounded_services(services: Any) -> list[dict[str, Any]]:
    """The assistant's services within the schema's limits: a document stored before the
    limits existed (issue 19) is cut here rather than matched whole on every message."""
    out: list[dict[str, Any]] = []
    budget = MAX_SYNONYMS
    for item in services[:MAX_SERVICES] if isinstance(services, list) else []:
        if not isinstance(item, dict):
            continue
        synonyms = list(item.get("synonyms") or ())[: min(MAX_SYNONYMS_PER_SERVICE, budget)]
        budget -= len(synonyms)
        out.append({**item, "synonyms": synonyms})
    return out


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``; nested dicts merge, everything else replaces."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_settings(session: Session, portal_id: int) -> dict[str, Any]:
    """The effective settings of a portal: defaults with the admin's changes on top."""
    return effective_settings(session.get(PortalSettings, portal_id))


def effective_settings(row: PortalSettings | None) -> dict[str, Any]:
    """:func:`load_settings` from a row the caller read itself (or None: defaults)."""
    return deep_merge(DEFAULTS, row.data if row is not None else {})


def save_settings(
    session: Session, portal_id: int, changes: dict[str, Any], user_id: int | None = None
) -> dict[str, Any]:
    """Validate ``changes`` (a partial document) and merge them into the stored settings.

    :raise ValidationError: the changes are invalid; nothing is stored.
    """
    clean = PortalSettingsSchema().load(changes)
    row = session.get(PortalSettings, portal_id)
    if row is None:
        row = PortalSettings(portal_id=portal_id, data={})
        session.add(row)
    row.data = deep_merge(row.data or {}, clean)
    row.updated_by = user_id
    session.flush()
    return deep_merge(DEFAULTS, row.data)
