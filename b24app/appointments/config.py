"""The ``appointments`` section of the portal settings: defaults and validation.

* ``offsets`` — reminders before the appointment (``24h``, ``2h``, ``30m``).
* ``channels`` — the order in which a reminder tries to reach the client: ``chat`` (the
  client's open-line chat), ``workflow`` (the admin-picked business process, e.g. with an SMS
  action), ``todo`` (the manager's to-do, always last in effect: it cannot fail for lack of a
  client channel).
* ``sender_user_id`` — who writes into the chat (must be able to see the CRM item; added to the
  chat when not a member); default the installing admin.
* ``workflow`` — ``template_id`` from ``bizproc.workflow.template.list``, its
  ``document_type`` (``DEAL`` or ``LEAD``) and the names of its text / time parameters.
* ``date_field`` — a datetime field of the lead or deal read as the appointment time.
* ``confirm_prompt`` — appended to the reminder while the appointment is unconfirmed.
* ``booking_nudge`` — where Bitrix24 Booking itself sends the confirmation request or the
  reminder for a booking (its resource type's settings), the app sends no copy; with this on
  it still sends its short reminders (≤ 2 h before). Off by default.
* ``outcome`` — who saw it is asked after the appointment (b24app/appointments/question.py):
  ``ask`` ``bot`` (a message with buttons), ``task`` or ``off``; ``length_minutes`` (an
  appointment's length when its end is unknown) and ``grace_minutes`` after its end.
* ``confirm_request`` — the one message a booking made less than the first offset ahead gets
  at once instead of the reminders already past (the prompt is appended).
* ``quiet_hours`` — ``from`` / ``to`` (``HH:MM``, the client's local time): no client message
  in between (:mod:`b24app.appointments.quiet`); equal times = none.
* ``refill`` — a freed time is offered, besides Booking's waitlist, to the clients whose visit
  was a no-show in the last ``no_show_days`` (0: none) and who gave advertising consent, at
  most ``no_show_offers`` of them per freed time (:mod:`b24app.appointments.refill`).
"""

from __future__ import annotations

from typing import Any

from marshmallow import fields
from marshmallow import RAISE
from marshmallow import Schema
from marshmallow import validate

from b24app.bounded import BoundedList

CHANNELS = ("chat", "workflow", "todo")

DEFAULTS: dict[str, Any] = {
    "offsets": ["24h", "2h"],
    "channels": ["chat", "workflow", "todo"],
    "sender_user_id": None,
    "workflow": {
        "template_id": None,
        "document_type": "DEAL",
        "text_param": "reminder_text",
        "time_param": "appointment_time",
    },
    "date_field": {"entity": None, "field": ""},
    "import_days": 30,
    # Let the configured language model rephrase the reminder template (off by default).
    "rephrase": False,
    "booking_nudge": False,
    "confirm_prompt": {
        "ru": "Ответьте: 1 — подтверждаю, 2 — перенести / отменить.",
        "en": "Reply: 1 — I confirm, 2 — reschedule / cancel.",
    },
    "outcome": {"ask": "bot", "length_minutes": 60, "grace_minutes": 30},
    "confirm_request": {
        "ru": "{client_name}, вы записаны: {service} {date} в {time}.",
        "en": "{client_name}, you are booked: {service} on {date} at {time}.",
    },
    "quiet_hours": {"from": "21:00", "to": "09:00"},
    "refill": {"no_show_days": 30, "no_show_offers": 5},
}
OUTCOME_ASK = ("bot", "task", "off")


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class WorkflowSchema(_Strict):
    template_id = fields.Integer(allow_none=True, validate=validate.Range(min=1))
    document_type = fields.String(validate=validate.OneOf(("DEAL", "LEAD")))
    text_param = fields.String(validate=validate.Regexp(r"^[A-Za-z][A-Za-z0-9_]{0,63}$"))
    time_param = fields.String(validate=validate.Regexp(r"^[A-Za-z][A-Za-z0-9_]{0,63}$"))


class DateFieldSchema(_Strict):
    entity = fields.String(allow_none=True, validate=validate.OneOf(("lead", "deal")))
    field = fields.String(validate=validate.Regexp(r"^(|[A-Za-z][A-Za-z0-9_]{0,63})$"))


class PromptSchema(_Strict):
    ru = fields.String(validate=validate.Length(max=300))
    en = fields.String(validate=validate.Length(max=300))


class OutcomeSchema(_Strict):
    ask = fields.String(validate=validate.OneOf(OUTCOME_ASK))
    length_minutes = fields.Integer(validate=validate.Range(min=5, max=24 * 60))
    grace_minutes = fields.Integer(validate=validate.Range(min=0, max=24 * 60))


class QuietHoursSchema(_Strict):
    from_ = fields.String(data_key="from", attribute="from",
                          validate=validate.Regexp(r"^([01]\d|2[0-3]):[0-5]\d$"))  # fmt: skip
    to = fields.String(validate=validate.Regexp(r"^([01]\d|2[0-3]):[0-5]\d$"))


class RefillSchema(_Strict):
    no_show_days = fields.Integer(validate=validate.Range(min=0, max=90))
    no_show_offers = fields.Integer(validate=validate.Range(min=0, max=20))


class AppointmentsSchema(_Strict):
    offsets = BoundedList(fields.String(validate=validate.Regexp(r"^\d{1,4}[mhd]$")), max_items=5)
    channels = BoundedList(
        fields.String(validate=validate.OneOf(CHANNELS)),
        max_items=len(CHANNELS),
        validate=validate.Length(min=1),
    )
    sender_user_id = fields.Integer(allow_none=True, validate=validate.Range(min=1))
    workflow = fields.Nested(WorkflowSchema)
    date_field = fields.Nested(DateFieldSchema)
    import_days = fields.Integer(validate=validate.Range(min=0, max=90))
    rephrase = fields.Boolean()
    booking_nudge = fields.Boolean()
    confirm_prompt = fields.Nested(PromptSchema)
    outcome = fields.Nested(OutcomeSchema)
    confirm_request = fields.Nested(PromptSchema)
    quiet_hours = fields.Nested(QuietHoursSchema)
    refill = fields.Nested(RefillSchema)


def _csv(value: Any) -> list[str]:
    return [part.strip() for part in str(value or "").split(",") if part.strip()]


TEMPLATE_ENTITIES = {"CCrmDocumentDeal": "DEAL", "CCrmDocumentLead": "LEAD"}


def workflow_templates(rows: Any) -> list[dict[str, Any]]:
    """``bizproc.workflow.template.list`` rows → the lead/deal templates the settings page
    offers: ``{"id", "name", "document_type", "params"}`` (other documents are left out: a
    reminder starts on the journey's lead or deal)."""
    templates = []
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, dict):
            continue
        document_type = TEMPLATE_ENTITIES.get(str(row.get("ENTITY") or ""))
        try:
            template_id = int(str(row.get("ID")))
        except ValueError:
            continue
        if document_type is None or template_id < 1:
            continue
        params = row.get("PARAMETERS")
        templates.append(
            {
                "id": template_id,
                "name": str(row.get("NAME") or "")[:200] or f"#{template_id}",
                "document_type": document_type,
                "params": sorted(str(k) for k in params)[:50] if isinstance(params, dict) else [],
            }
        )
    return templates[:200]


DATE_TYPES = ("datetime", "date")


def date_fields(lead_fields: Any, deal_fields: Any) -> dict[str, list[dict[str, str]]]:
    """``crm.lead.fields`` / ``crm.deal.fields`` answers → the writable date and datetime fields
    (standard and user fields) the admin may pick as the appointment time, by entity."""
    chosen: dict[str, list[dict[str, str]]] = {}
    for entity, answer in (("lead", lead_fields), ("deal", deal_fields)):
        rows = []
        for name, spec in answer.items() if isinstance(answer, dict) else []:
            if not isinstance(spec, dict) or str(spec.get("type")) not in DATE_TYPES:
                continue
            if spec.get("isReadOnly") in (True, "Y") or spec.get("isMultiple") in (True, "Y"):
                continue  # DATE_CREATE, MOVED_TIME…: not an appointment the business sets
            label = spec.get("listLabel") or spec.get("formLabel") or spec.get("title") or name
            rows.append({"id": str(name)[:64], "name": str(label)[:200]})
        chosen[entity] = rows[:100]
    return chosen


def align_with_template(section: dict[str, Any], templates: list[dict[str, Any]]) -> None:
    """A template picked from the portal's list starts on its own document type: the page's
    "document" choice follows it, so a deal template is never started on a lead."""
    workflow = section.get("workflow") or {}
    chosen = str(workflow.get("template_id") or "")
    for template in templates:
        if str(template["id"]) == chosen:
            workflow["document_type"] = template["document_type"]


def _blank_none(value: Any) -> Any:
    text = str(value or "").strip()
    return text or None


def _date_field(form: dict[str, Any]) -> dict[str, Any]:
    """The page's one "entity:FIELD" choice (when the portal's fields are known), else its
    entity select and field name."""
    if "appt_date_choice" in form:
        entity, _, field = str(form.get("appt_date_choice") or "").strip().partition(":")
        return {"entity": entity or None, "field": field}
    return {
        "entity": _blank_none(form.get("appt_field_entity")),
        "field": str(form.get("appt_field") or "").strip(),
    }


def form_to_changes(form: dict[str, Any]) -> dict[str, Any]:
    """The settings page's ``appt_*`` fields → the ``appointments`` section (validated later);
    ``{}`` (no change) when the form has none of them."""
    if not any(str(key).startswith("appt_") for key in form):
        return {}
    return {
        "offsets": _csv(form.get("appt_offsets")),
        "channels": _csv(form.get("appt_channels")),
        "sender_user_id": _blank_none(form.get("appt_sender")),
        "workflow": {
            "template_id": _blank_none(form.get("appt_template")),
            "document_type": str(form.get("appt_doc_type") or "DEAL").strip().upper(),
            "text_param": str(form.get("appt_text_param") or "").strip(),
            "time_param": str(form.get("appt_time_param") or "").strip(),
        },
        "date_field": _date_field(form),
        "rephrase": str(form.get("appt_rephrase") or "").lower() in ("on", "1", "true", "y"),
        "booking_nudge": str(form.get("appt_booking_nudge") or "").lower()
        in ("on", "1", "true", "y"),
        "confirm_prompt": {
            "ru": str(form.get("appt_prompt_ru") or "").strip(),
            "en": str(form.get("appt_prompt_en") or "").strip(),
        },
        "quiet_hours": {
            "from": str(form.get("appt_quiet_from") or "00:00").strip(),
            "to": str(form.get("appt_quiet_to") or "00:00").strip(),
        },
        **_outcome_form(form),
        **_refill_form(form),
    }


def _outcome_form(form: dict[str, Any]) -> dict[str, Any]:
    """The page's ``appt_outcome_*`` fields (left out when the page has none)."""
    if "appt_outcome_ask" not in form:
        return {}
    return {
        "outcome": {
            "ask": str(form.get("appt_outcome_ask") or "").strip(),
            "length_minutes": str(form.get("appt_outcome_length") or "").strip() or 60,
            "grace_minutes": str(form.get("appt_outcome_grace") or "").strip() or 0,
        }
    }


def _refill_form(form: dict[str, Any]) -> dict[str, Any]:
    """The page's ``appt_refill_*`` fields (left out when the page has none; blank: kept)."""
    if "appt_refill_days" not in form:
        return {}
    pairs = (("no_show_days", "appt_refill_days"), ("no_show_offers", "appt_refill_offers"))
    refill = {key: str(form.get(name) or "").strip() for key, name in pairs}
    return {"refill": {key: value for key, value in refill.items() if value}}


def settings_to_form(settings: dict[str, Any]) -> dict[str, Any]:
    section = settings["appointments"]
    workflow = section["workflow"]
    return {
        "appt_offsets": ", ".join(section["offsets"]),
        "appt_channels": ", ".join(section["channels"]),
        "appt_sender": section.get("sender_user_id") or "",
        "appt_template": workflow.get("template_id") or "",
        "appt_doc_type": workflow.get("document_type") or "DEAL",
        "appt_text_param": workflow.get("text_param") or "",
        "appt_time_param": workflow.get("time_param") or "",
        "appt_field_entity": section["date_field"].get("entity") or "",
        "appt_field": section["date_field"].get("field") or "",
        "appt_rephrase": bool(section.get("rephrase")),
        "appt_booking_nudge": bool(section.get("booking_nudge")),
        "appt_date_choice": (
            f"{section['date_field']['entity']}:{section['date_field'].get('field') or ''}"
            if section["date_field"].get("entity")
            else ""
        ),
        "appt_prompt_ru": section["confirm_prompt"].get("ru") or "",
        "appt_prompt_en": section["confirm_prompt"].get("en") or "",
        "appt_outcome_ask": section["outcome"]["ask"],
        "appt_outcome_length": section["outcome"]["length_minutes"],
        "appt_outcome_grace": section["outcome"]["grace_minutes"],
        "appt_quiet_from": (section.get("quiet_hours") or {}).get("from") or "",
        "appt_quiet_to": (section.get("quiet_hours") or {}).get("to") or "",
        "appt_refill_days": section["refill"]["no_show_days"],
        "appt_refill_offers": section["refill"]["no_show_offers"],
    }
