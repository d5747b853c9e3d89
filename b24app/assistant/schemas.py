"""What a Chatbots 2.0 webhook delivery carries (``ONIMBOTV2MESSAGEADD``/``ONIMBOTV2JOINCHAT``,
and ``ONIMBOTV2COMMANDADD`` with ``data[command][command|params|context]``).

Form-encoded bracket keys, every scalar a string
(tests/fixtures/client-loop/onimbotv2messageadd_openline.DERIVED.form.json): ``event``,
``data[bot][id|code]``, ``data[bot][auth][…]`` (the bot's own tokens; we reply with the app's),
``data[message][id|chatId|authorId|text]``, ``data[chat][id|dialogId|entityType|entityId|
entityData2]``, ``data[user][id|name|bot|connector]``, and the top-level ``auth[member_id]``,
``auth[application_token]`` that authenticate the request (v2 says: the top-level token, not
the bot's). Unknown keys are ignored at every level.
"""

from __future__ import annotations

from marshmallow import fields
from marshmallow import validate

from b24app.schemas import EventAuthSchema
from b24app.schemas import EventEnvelopeSchema
from b24app.schemas import PayloadSchema

# the top-level auth is the same as in any event delivery
AuthSchema = EventAuthSchema
EVENTS = ("ONIMBOTV2MESSAGEADD", "ONIMBOTV2JOINCHAT", "ONIMBOTV2COMMANDADD")
MAX_ID = 2**53


class BotAuthSchema(PayloadSchema):
    member_id = fields.String(validate=validate.Length(max=64))


class BotSchema(PayloadSchema):
    id = fields.Integer(required=True, strict=False, validate=validate.Range(min=1, max=MAX_ID))
    code = fields.String(validate=validate.Length(max=64))
    auth = fields.Nested(BotAuthSchema)


class MessageSchema(PayloadSchema):
    id = fields.Integer(required=True, strict=False, validate=validate.Range(min=1, max=MAX_ID))
    chatId = fields.Integer(strict=False, validate=validate.Range(min=1, max=MAX_ID))  # noqa: N815
    authorId = fields.Integer(strict=False, validate=validate.Range(min=0, max=MAX_ID))  # noqa: N815
    text = fields.String(load_default="", validate=validate.Length(max=20000))


class ChatSchema(PayloadSchema):
    id = fields.Integer(required=True, strict=False, validate=validate.Range(min=1, max=MAX_ID))
    dialogId = fields.String(validate=validate.Regexp(r"^(chat)?\d{1,18}$"))  # noqa: N815
    entityType = fields.String(load_default="", validate=validate.Length(max=64))  # noqa: N815
    entityId = fields.String(load_default="", validate=validate.Length(max=255))  # noqa: N815
    entityData2 = fields.String(load_default="", validate=validate.Length(max=255))  # noqa: N815


class UserSchema(PayloadSchema):
    id = fields.Integer(strict=False, validate=validate.Range(min=0, max=MAX_ID))
    name = fields.String(load_default="", validate=validate.Length(max=255))
    bot = fields.String(load_default="0")
    connector = fields.String(load_default="0")


class CommandSchema(PayloadSchema):
    """``data[command]`` of ``ONIMBOTV2COMMANDADD`` (a keyboard button's command)."""

    command = fields.String(required=True, validate=validate.Length(max=64))
    params = fields.String(load_default="", validate=validate.Length(max=255))
    context = fields.String(load_default="", validate=validate.Length(max=16))


class DataSchema(PayloadSchema):
    bot = fields.Nested(BotSchema, required=True)
    message = fields.Nested(MessageSchema)
    command = fields.Nested(CommandSchema)
    chat = fields.Nested(ChatSchema, required=True)
    user = fields.Nested(UserSchema, load_default=dict)


class BotEventSchema(EventEnvelopeSchema):
    event = fields.String(required=True, validate=validate.OneOf(EVENTS))
    data = fields.Nested(DataSchema, required=True)
    ts = fields.Integer(strict=False, validate=validate.Range(min=0, max=2**40))
    auth = fields.Nested(AuthSchema, required=True)
