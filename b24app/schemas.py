"""The marshmallow bases the surfaces' payload schemas share (``*/schemas.py``)."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE
from marshmallow import fields
from marshmallow import pre_load
from marshmallow import Schema
from marshmallow import validate


class PayloadSchema(Schema):
    """A payload from Bitrix24: keys we do not read are left out (Bitrix24 adds fields over
    time)."""

    class Meta:
        unknown = EXCLUDE


class EventAuthSchema(PayloadSchema):
    """``auth[…]`` of an event delivery or a robot call: whose portal, and the token that
    proves it."""

    member_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    application_token = fields.String(required=True, validate=validate.Length(min=1, max=256))
    domain = fields.String(validate=validate.Length(max=255))


class EventEnvelopeSchema(PayloadSchema):
    """An event delivery, its ``event`` code read upper-case."""

    @pre_load
    def _upper_event(self, data: Any, **_: Any) -> Any:
        # Deliveries carry the code upper-case; tolerate a lower-case one from a test tool.
        if isinstance(data, dict) and isinstance(data.get("event"), str):
            data = {**data, "event": data["event"].strip().upper()}
        return data
