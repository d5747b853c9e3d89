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
"""

from __future__ import annotations

from typing import Any

from marshmallow import fields
from marshmallow import RAISE
from marshmallow import Schema
from marshmallow import validate

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
    "confirm_prompt": {
        "ru": "Ответьте: 1 — подтверждаю, 2 — перенести / отменить.",
        "en": "Reply: 1 — I confirm, 2 — reschedule / cancel.",
    },
}


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


class AppointmentsSchema(_Strict):
    offsets = fields.List(
        fields.String(validate=validate.Regexp(r"^\d{1,4}[mhd]$")),
        validate=validate.Length(max=5),
    )
    channels = fields.List(
        fields.String(validate=validate.OneOf(CHANNELS)), validate=validate.Length(min=1, max=3)
    )
    sender_user_id = fields.Integer(allow_none=True, validate=validate.Range(min=1))
    workflow = fields.Nested(WorkflowSchema)
    date_field = fields.Nested(DateFieldSchema)
    import_days = fields.Integer(validate=validate.Range(min=0, max=90))
    confirm_prompt = fields.Nested(PromptSchema)
