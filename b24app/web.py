"""Edge helpers shared by the blueprints: read Bitrix24's form posts, authenticate the portal,
and make pages frameable by that portal only."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask import request
from flask import Response

from b24app.bitrix.payload import MalformedPayload
from b24app.bitrix.payload import parse_php_form
from b24app.context import Services
from b24app.errors import ApiError
from b24app.storage.models import Portal
from b24app.storage.models import PortalStatus
from b24app.storage.portals import get_portal
from b24app.storage.portals import tokens_match

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def services() -> Services:
    """The process services stored on the app by the factory."""
    svc: Services = current_app.extensions["b24app"]
    return svc


def read_form() -> dict[str, Any]:
    """The POST body as nested data; 400 if it is not a well-formed form, 413 if too big."""
    if request.content_length is not None and request.content_length > (
        current_app.config["MAX_CONTENT_LENGTH"] or 0
    ):
        raise ApiError(413, "Payload too large.")
    if request.mimetype not in FORM_TYPES:
        raise ApiError(400, "Expected an application/x-www-form-urlencoded body.")
    try:
        return parse_php_form(request.form.items(multi=True))
    except MalformedPayload as exc:
        raise ApiError(400, str(exc)) from exc


def read_query() -> dict[str, Any]:
    """The query string as nested data (placements split their data across query and body)."""
    try:
        return parse_php_form(request.args.items(multi=True))
    except MalformedPayload as exc:
        raise ApiError(400, str(exc)) from exc


FORGED_MESSAGE = "Unknown portal or wrong application_token."
_NO_PORTAL_TOKEN = "-" * 32


def authenticate(member_id: Any, application_token: Any, *, allow_inactive: bool = False) -> Portal:
    """The portal that ``member_id`` names, if ``application_token`` is its own.

    :raise ApiError 401: no credentials at all.
    :raise ApiError 403: no such portal or the token does not match (one answer for both, so
        a caller cannot tell which portals exist), or the portal is no longer installed.
    """
    if not isinstance(member_id, str) or not member_id:
        raise ApiError(401, "Missing member_id.")
    if not isinstance(application_token, str) or not application_token:
        raise ApiError(401, "Missing application_token.")
    with services().db() as session:
        portal = get_portal(session, member_id) if len(member_id) <= 64 else None
        if portal is None:
            tokens_match(_NO_PORTAL_TOKEN, application_token)  # same work as a real compare
            raise ApiError(403, FORGED_MESSAGE)
        if not tokens_match(portal.application_token, application_token):
            raise ApiError(403, FORGED_MESSAGE)
        if portal.status == PortalStatus.UNINSTALLED and not allow_inactive:
            raise ApiError(403, "The app is not installed on this portal.")
        session.expunge(portal)
        return portal


def frameable(response: Response, portal_domain: str | None) -> Response:
    """Allow the page inside the portal's iframe only (and nowhere else)."""
    ancestors = "'self'"
    if portal_domain:
        ancestors += f" https://{portal_domain} http://{portal_domain}"
    extra = current_app.config.get("FRAME_ANCESTORS_EXTRA", "")
    if extra:
        ancestors += " " + extra
    response.headers["Content-Security-Policy"] = f"frame-ancestors {ancestors}"
    response.headers.pop("X-Frame-Options", None)
    return response
