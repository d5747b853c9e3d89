"""The OAuth server's HTTP surface: ``/oauth/token/`` (refresh and authorization-code grants)
and ``/oauth/rest/app.info`` (the ``server_endpoint``). Tokens themselves are
:mod:`devportal.oauth`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from werkzeug.wrappers import Request
from werkzeug.wrappers import Response

from b24app.bitrix.payload import MalformedPayload
from devportal.errors import method_not_found
from devportal.errors import RestError
from devportal.oauth import TokenPair
from devportal.wire import fault_response
from devportal.wire import iso
from devportal.wire import json_response
from devportal.wire import request_params

if TYPE_CHECKING:
    from devportal.server import DevPortal


def _missing(name: str) -> Response:
    return json_response(
        {"error": "invalid_request", "error_description": f'No "{name}" parameter found'}, 400
    )


def token(emu: DevPortal, request: Request) -> Response:
    """``/oauth/token/``: a new token pair for a refresh token or an authorization code."""
    try:
        params = request_params(request)
    except (MalformedPayload, RestError, ValueError):
        return json_response({"error": "invalid_request"}, 400)
    fault = emu.faults.take(None, "oauth.token")
    if fault is not None:
        return fault_response(fault, emu.stopping)
    grant = params.get("grant_type")
    if not grant:
        return _missing("grant_type")
    if params.get("client_id") != emu.client_id or params.get("client_secret") != emu.client_secret:
        return json_response({"error": "invalid_client"}, 400)
    pair: TokenPair | None
    if grant == "refresh_token":
        if not params.get("refresh_token"):
            return _missing("refresh_token")
        pair = emu.tokens.refresh(str(params["refresh_token"]))
    elif grant == "authorization_code":
        pair = emu.tokens.redeem_code(str(params.get("code") or ""))
    else:
        return json_response({"error": "unsupported_grant_type"}, 400)
    if pair is None:
        return json_response({"error": "invalid_grant"}, 400)
    portal = emu.portals[pair.slug]
    return json_response(
        {
            "access_token": pair.access_token,
            "client_endpoint": portal.client_endpoint,
            "domain": emu.host,
            "expires": int(pair.expires_at),
            "expires_in": emu.tokens.access_ttl,
            "member_id": portal.member_id,
            "refresh_token": pair.refresh_token,
            "scope": portal.scope,
            "server_endpoint": emu.server_endpoint,
            "status": portal.app_status,
            "user_id": pair.user_id,
        }
    )


def rest(emu: DevPortal, request: Request, method: str) -> Response:
    """``/oauth/rest/<method>``: only ``app.info``, answered for the token's portal."""
    if request.method == "OPTIONS":
        return json_response({})
    method = method.strip("/").lower().removesuffix(".json")
    try:
        params = request_params(request)
    except (MalformedPayload, RestError, ValueError):
        return json_response({"error": "INVALID_REQUEST", "error_description": "Bad request"}, 400)
    if method != "app.info":
        return json_response(method_not_found(method).body(), 404)
    pair = emu.tokens.by_access(str(params.get("auth") or ""))
    if pair is None:
        return json_response({"error": "invalid_token", "error_description": "Unable to get application by token"}, 401)  # fmt: skip
    if emu.tokens.is_expired(pair):
        return json_response({"error": "expired_token", "error_description": "The access token provided has expired."}, 401)  # fmt: skip
    portal = emu.portals[pair.slug]
    return json_response(
        {
            "result": {
                "client_id": emu.client_id,
                "scope": portal.scope,
                "expires": iso(pair.expires_at),
                "install": {
                    "installed": portal.app.install_finished,
                    "version": str(portal.app.version),
                    "status": portal.app_status,
                    "scope": portal.scope,
                    "domain": portal.domain,
                    "uri": f"http://{portal.domain}",
                    "client_endpoint": portal.client_endpoint,
                    "member_id": portal.member_id,
                    "member_type": "user",
                },
                "user_id": str(pair.user_id),
            }
        }
    )
