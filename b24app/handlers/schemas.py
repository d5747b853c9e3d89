"""What a Bitrix24 event delivery carries: a form with bracket keys (tests/fixtures/raw/).

``event=ONCRMLEADADD``, ``data[FIELDS][ID]=1000983``, ``ts=1742807175``,
``auth[member_id]``, ``auth[application_token]`` (+ tokens, which may be missing when an
automation made the change). Unknown keys are ignored at every level.
"""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE
from marshmallow import fields
from marshmallow import pre_load
from marshmallow import Schema
from marshmallow import validate

from b24app.handlers.definitions import EVENTS

MAX_ID = 2**31 - 1


class _Base(Schema):
    class Meta:
        unknown = EXCLUDE


class EventAuthSchema(_Base):
    member_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    application_token = fields.String(required=True, validate=validate.Length(min=1, max=256))
    domain = fields.String(validate=validate.Length(max=255))


class EventFieldsSchema(_Base):
    ID = fields.Integer(required=True, strict=False, validate=validate.Range(min=1, max=MAX_ID))


class EventDataSchema(_Base):
    FIELDS = fields.Nested(EventFieldsSchema, required=True)


class EventSchema(_Base):
    """The envelope of a lead or activity event (``oncrmleadadd_event.form.json``)."""

    event = fields.String(required=True, validate=validate.OneOf(EVENTS))
    event_handler_id = fields.String(validate=validate.Length(max=32))
    data = fields.Nested(EventDataSchema, required=True)
    ts = fields.Integer(required=True, strict=False, validate=validate.Range(min=0, max=2**40))
    auth = fields.Nested(EventAuthSchema, required=True)

    @pre_load
    def _upper_event(self, data: Any, **_: Any) -> Any:
        # Deliveries carry the code upper-case; tolerate a lower-case one from a test tool.
        if isinstance(data, dict) and isinstance(data.get("event"), str):
            data = {**data, "event": data["event"].strip().upper()}
        return data
