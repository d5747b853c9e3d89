"""Envelopes of the client-loop events (``tests/fixtures/client-loop/on*_event*``).

* ``ONBOOKINGADD`` / ``UPDATE`` / ``DELETE``: ``data[ID]`` only (``onbookingadd_event``).
* ``ONOPENLINEMESSAGEADD``: ``data[DATA][0][connector|chat|message|…]``; the shape is checked
  by :func:`b24app.appointments.replies.parse_message` in the view.
"""

from __future__ import annotations

from marshmallow import fields
from marshmallow import validate

from b24app.handlers.schemas import MAX_ID
from b24app.schemas import EventAuthSchema
from b24app.schemas import EventEnvelopeSchema
from b24app.schemas import PayloadSchema


class BookingDataSchema(PayloadSchema):
    ID = fields.Integer(required=True, strict=False, validate=validate.Range(min=1, max=MAX_ID))


class BookingEventSchema(EventEnvelopeSchema):
    event = fields.String(
        required=True,
        validate=validate.OneOf(("ONBOOKINGADD", "ONBOOKINGUPDATE", "ONBOOKINGDELETE")),
    )
    event_handler_id = fields.String(validate=validate.Length(max=32))
    data = fields.Nested(BookingDataSchema, required=True)
    ts = fields.Integer(required=True, strict=False, validate=validate.Range(min=0, max=2**40))
    auth = fields.Nested(EventAuthSchema, required=True)


class OpenLineEventSchema(EventEnvelopeSchema):
    event = fields.String(required=True, validate=validate.OneOf(("ONOPENLINEMESSAGEADD",)))
    data = fields.Dict(required=True)
    ts = fields.Integer(strict=False, validate=validate.Range(min=0, max=2**40))
    auth = fields.Nested(EventAuthSchema, required=True)
