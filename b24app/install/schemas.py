"""Marshmallow schemas for the installer page POST and the app lifecycle events."""

from __future__ import annotations

from typing import Any

from marshmallow import fields
from marshmallow import validate

from b24app.schemas import PayloadSchema

_TOKEN = validate.Length(min=8, max=512)
_MEMBER = validate.Regexp(r"^[A-Za-z0-9_.-]{1,64}$")


class InstallerQuerySchema(PayloadSchema):
    """Query string of any frame load: ``DOMAIN, PROTOCOL, LANG, APP_SID``."""

    DOMAIN = fields.String(required=True, validate=validate.Length(min=1, max=255))
    PROTOCOL = fields.String(load_default="1", validate=validate.OneOf(["0", "1"]))
    LANG = fields.String(load_default="ru", validate=validate.Length(max=8))
    APP_SID = fields.String(load_default="", validate=validate.Length(max=128))


class InstallerFormSchema(PayloadSchema):
    """Body of the installer POST (EN: settings/oauth/simple-way.md)."""

    AUTH_ID = fields.String(required=True, validate=_TOKEN)
    AUTH_EXPIRES = fields.Integer(load_default=3600, validate=validate.Range(min=1, max=86400))
    REFRESH_ID = fields.String(required=True, validate=_TOKEN)
    SERVER_ENDPOINT = fields.Url(
        load_default="https://oauth.bitrix.info/rest/", require_tld=False, schemes={"http", "https"}
    )
    APPLICATION_TOKEN = fields.String(load_default="", validate=validate.Length(max=128))
    APPLICATION_SCOPE = fields.String(load_default="", validate=validate.Length(max=1024))
    member_id = fields.String(required=True, validate=_MEMBER)
    status = fields.String(load_default="", validate=validate.Length(max=4))
    PLACEMENT = fields.String(load_default="DEFAULT", validate=validate.Length(max=64))


class EventAuthSchema(PayloadSchema):
    """``auth[...]`` of an app lifecycle event; tokens are absent on ONAPPUNINSTALL."""

    member_id = fields.String(required=True, validate=_MEMBER)
    application_token = fields.String(required=True, validate=validate.Length(min=1, max=128))
    domain = fields.String(load_default="", validate=validate.Length(max=255))
    client_endpoint = fields.Url(load_default="", require_tld=False, schemes={"http", "https"})
    server_endpoint = fields.Url(load_default="", require_tld=False, schemes={"http", "https"})
    access_token = fields.String(load_default="", validate=validate.Length(max=512))
    refresh_token = fields.String(load_default="", validate=validate.Length(max=512))
    expires_in = fields.Integer(load_default=3600, validate=validate.Range(min=1, max=86400))
    scope = fields.String(load_default="", validate=validate.Length(max=1024))
    status = fields.String(load_default="", validate=validate.Length(max=4))
    user_id = fields.Integer(load_default=None, allow_none=True)


class AppEventSchema(PayloadSchema):
    """``ONAPPINSTALL`` / ``ONAPPUPDATE`` / ``ONAPPUNINSTALL`` as form data."""

    event = fields.String(
        required=True, validate=validate.OneOf(["ONAPPINSTALL", "ONAPPUPDATE", "ONAPPUNINSTALL"])
    )
    data = fields.Dict(keys=fields.String(), values=fields.Raw(), load_default=dict)
    ts = fields.Integer(load_default=0)
    auth = fields.Nested(EventAuthSchema, required=True)


def scope_list(raw: str) -> str:
    """Normalise a scope list: the docs say spaces, every example uses commas."""
    parts: list[Any] = [p for p in raw.replace(" ", ",").split(",") if p]
    return ",".join(parts)
