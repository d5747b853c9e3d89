"""Talking to the Bitrix24 OAuth server: refreshing a portal's token pair, and ``app.info``.

The OAuth server differs by region (``oauth.bitrix.info`` west, ``oauth.bitrix24.tech``
east), so its address is never hard-coded: every URL is derived from the
``server_endpoint`` the portal itself sent us at install (``auth[server_endpoint]``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from b24app.bitrix.errors import BitrixError
from b24app.bitrix.errors import from_envelope
from b24app.bitrix.errors import from_oauth
from b24app.bitrix.errors import is_error_envelope
from b24app.bitrix.errors import OAuthError
from b24app.bitrix.errors import TransportError

USER_AGENT = "b24app/0.1 (+https://github.com/b24app; python-requests)"


class InsecureEndpoint(ValueError):
    """An endpoint is not https (and plain http is not allowed for it)."""


@dataclass(frozen=True)
class TokenSet:
    """A fresh token pair from ``grant_type=refresh_token`` (the refresh token is NEW)."""

    access_token: str
    refresh_token: str
    expires_in: int
    client_endpoint: str
    server_endpoint: str
    member_id: str
    scope: str = ""
    user_id: int | None = None

    def __repr__(self) -> str:  # tokens never reach a log line through repr()
        return f"TokenSet(member_id={self.member_id!r}, expires_in={self.expires_in})"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_trusted_oauth_server(
    server_endpoint: str, trusted: tuple[str, ...], *, allow_insecure: bool = False
) -> bool:
    """Only the known Bitrix24 OAuth servers (and loopback in development) are asked."""
    if server_endpoint in trusted:
        return True
    return allow_insecure and _is_loopback(urlsplit(server_endpoint).hostname or "")


def check_endpoint(url: str, *, allow_insecure: bool = False) -> str:
    """Return ``url`` if it is https, or plain http on loopback when ``allow_insecure``.

    Bitrix24 refuses plain http ("Https required"); a token sent over http to a non-loopback
    host would leak, so the only exception is the local emulator.
    """
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and allow_insecure and _is_loopback(parts.hostname or ""):
        return url
    raise InsecureEndpoint(f"refusing non-https endpoint {parts.scheme}://{parts.hostname}")


def token_url(server_endpoint: str) -> str:
    """``https://oauth.bitrix.info/rest/`` → ``https://oauth.bitrix.info/oauth/token/``."""
    parts = urlsplit(server_endpoint)
    if not parts.scheme or not parts.netloc:
        raise ValueError("server_endpoint must be an absolute URL")
    return f"{parts.scheme}://{parts.netloc}/oauth/token/"


def _json_body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def refresh_tokens(
    server_endpoint: str,
    client_id: str,
    client_secret: str,
    refresh_token: str,
    session: requests.Session | None = None,
    timeout: float = 30.0,
    *,
    allow_insecure: bool = False,
) -> TokenSet:
    """Exchange ``refresh_token`` for a new pair at the portal's own OAuth server.

    Raises :class:`AuthRevoked` for ``invalid_grant``/``wrong_client``/``NOT_INSTALLED``/
    ``PAYMENT_REQUIRED`` (HTTP 200 included: ``wrong_client`` comes that way),
    :class:`OAuthError` for other refusals and :class:`TransportError` when no JSON answer
    came. The caller serialises refreshes per portal: refresh tokens are single-use.
    """
    url = check_endpoint(token_url(server_endpoint), allow_insecure=allow_insecure)
    http = session or requests.Session()
    try:
        response = http.get(
            url,
            params={
                "grant_type": "refresh_token",
                "client_id": client_id,
                "client_secret": client_secret,
                "refresh_token": refresh_token,
            },
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            timeout=timeout,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        # The exception text may contain the URL with the secret in its query: drop it.
        raise TransportError(
            "NETWORK_ERROR", type(exc).__name__, None, method="oauth.token"
        ) from None
    finally:
        if session is None:
            http.close()
    body = _json_body(response)
    if is_error_envelope(body):
        raise from_oauth(body, response.status_code)
    if response.status_code != 200 or not isinstance(body, dict):
        raise TransportError(
            "BAD_RESPONSE", "OAuth server answered without JSON", response.status_code,
            method="oauth.token",
        )  # fmt: skip
    if not body.get("access_token") or not body.get("refresh_token"):
        raise OAuthError("BAD_RESPONSE", "no token pair in the answer", response.status_code)
    user_id = body.get("user_id")
    return TokenSet(
        access_token=str(body["access_token"]),
        refresh_token=str(body["refresh_token"]),
        expires_in=int(body.get("expires_in") or 3600),
        client_endpoint=str(body.get("client_endpoint") or ""),
        server_endpoint=str(body.get("server_endpoint") or server_endpoint),
        member_id=str(body.get("member_id") or ""),
        scope=str(body.get("scope") or ""),
        user_id=int(user_id) if user_id not in (None, "") else None,
    )


def oauth_app_info(
    server_endpoint: str,
    access_token: str,
    session: requests.Session | None = None,
    timeout: float = 10.0,
    *,
    allow_insecure: bool = False,
) -> dict[str, Any]:
    """``GET {server_endpoint}app.info?auth=…``: what the OAuth server knows about a token.

    The trusted way to verify a placement/app-page ``AUTH_ID`` or an installer token: the
    answer names the ``client_id`` and ``install.member_id`` the token belongs to, which the
    posted DOMAIN cannot fake (docs/security.md). Returns ``result``; raises like a REST call.
    """
    base = check_endpoint(server_endpoint, allow_insecure=allow_insecure)
    url = base if base.endswith("/") else base + "/"
    http = session or requests.Session()
    try:
        response = http.get(
            url + "app.info",
            params={"auth": access_token},
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            timeout=timeout,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        raise TransportError("NETWORK_ERROR", type(exc).__name__, None, method="app.info") from None
    finally:
        if session is None:
            http.close()
    body = _json_body(response)
    if is_error_envelope(body):
        raise from_envelope(body, response.status_code, "app.info")
    if not isinstance(body, dict) or not isinstance(body.get("result"), dict):
        raise TransportError(
            "BAD_RESPONSE", "app.info answered without a result", response.status_code,
            method="app.info",
        )  # fmt: skip
    return dict(body["result"])


def call_as_user(
    client_endpoint: str,
    access_token: str,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    timeout: float = 5.0,
    allow_insecure: bool = False,
) -> Any:
    """One REST call with a **user's own** token (a page's ``AUTH_ID``); returns ``result``.

    What Bitrix24 answers is what that user may do, so this is how the app asks "may this
    person see / do X". No retries, no refresh and no shared bucket: a person is waiting, and
    the token is not the portal's. ``client_endpoint`` must come from a trusted source (the
    stored portal), never from the request being checked.

    :raise BitrixError: the error envelope as its subclass (``AccessDenied``, ``NotFound``…).
    :raise TransportError: no JSON answer. :raise InsecureEndpoint: a non-https endpoint.
    """
    base = check_endpoint(client_endpoint, allow_insecure=allow_insecure)
    url = (base if base.endswith("/") else base + "/") + method
    try:
        response = requests.post(
            url,
            json={**(params or {}), "auth": access_token},
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            timeout=timeout,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        raise TransportError("NETWORK_ERROR", type(exc).__name__, None, method=method) from None
    body = _json_body(response)
    if is_error_envelope(body):
        raise from_envelope(body, response.status_code, method)
    if response.status_code != 200 or not isinstance(body, dict) or "result" not in body:
        raise TransportError(
            f"HTTP_{response.status_code}", "answer without a result", response.status_code,
            method=method,
        )  # fmt: skip
    return body["result"]


def user_is_admin(
    client_endpoint: str, access_token: str, *, timeout: float = 5.0, allow_insecure: bool = False
) -> bool:
    """``user.admin`` called with the user's own token on the portal's REST endpoint.

    ``client_endpoint`` must come from a trusted source (the stored portal or the OAuth
    server's ``app.info``), never from the request being checked. Any failure means "not an
    admin".
    """
    try:
        result = call_as_user(
            client_endpoint, access_token, "user.admin", timeout=timeout,
            allow_insecure=allow_insecure,
        )  # fmt: skip
    except (BitrixError, InsecureEndpoint):
        return False
    return result is True
