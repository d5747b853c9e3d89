"""What a Bitrix24 event delivery carries: a form with bracket keys (tests/fixtures/raw/).

``event=ONCRMLEADADD``, ``data[FIELDS][ID]=1000983``, ``ts=1742807175``,
``auth[member_id]``, ``auth[application_token]`` (+ tokens, which may be missing when an
automation made the change). Unknown keys are ignored at every level.
"""

from __future__ import annotations

from marshmallow import fields
from marshmallow import validate

from b24app.handlers.definitions import EVENTS
from b24app.schemas import EventAuthSchema
from b24app.schemas import EventEnvelopeSchema
from b24app.schemas import PayloadSchema

MAX_ID = 2**31 - 1


class EventFieldsSchema(PayloadSchema):
    ID = fields.Integer(required=True, strict=False, validate=validate.Range(min=1, max=MAX_ID))


class EventDataSchema(PayloadSchema):
    FIELDS = fields.Nested(EventFieldsSchema, required=True)


class EventSchema(EventEnvelopeSchema):
    """The envelope of a lead or activity event (``oncrmleadadd_event.form.json``)."""

    event = fields.String(required=True, validate=validate.OneOf(EVENTS))
    event_handler_id = fields.String(validate=validate.Length(max=32))
    data = fields.Nested(EventDataSchema, required=True)
    ts = fields.Integer(required=True, strict=False, validate=validate.Range(min=0, max=2**40))
    auth = fields.Nested(EventAuthSchema, required=True)
