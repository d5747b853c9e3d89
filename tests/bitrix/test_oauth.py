"""Token refresh and ``app.info`` at the OAuth server named by the portal's server_endpoint."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from responses import matchers

from b24app.bitrix.errors import AuthRevoked
from b24app.bitrix.errors import OAuthError
from b24app.bitrix.errors import TransportError
from b24app.bitrix.oauth import check_endpoint
from b24app.bitrix.oauth import InsecureEndpoint
from b24app.bitrix.oauth import oauth_app_info
from b24app.bitrix.oauth import refresh_tokens
from b24app.bitrix.oauth import token_url
from tests.bitrix.conftest import fixture

QUERY = fixture("request_oauth_refresh.query.json")


def _refresh(server: str = "https://oauth.bitrix.info/rest/", **kwargs: Any) -> Any:
    return refresh_tokens(
        server, QUERY["client_id"], QUERY["client_secret"], QUERY["refresh_token"],
        requests.Session(), 5.0, **kwargs,
    )  # fmt: skip


@pytest.mark.parametrize(
    "server, expected",
    [
        ("https://oauth.bitrix.info/rest/", "https://oauth.bitrix.info/oauth/token/"),
        ("https://oauth.bitrix24.tech/rest/", "https://oauth.bitrix24.tech/oauth/token/"),
        ("http://127.0.0.1:8123/oauth/rest/", "http://127.0.0.1:8123/oauth/token/"),
    ],
)
def test_token_url_comes_from_server_endpoint(server: str, expected: str) -> None:
    """The token URL is derived from the portal's own server_endpoint host, never hard-coded."""
    assert token_url(server) == expected


def test_refresh_sends_documented_query_and_parses_pair(rsps: Any) -> None:
    """GET /oauth/token/ with grant_type=refresh_token; the answer's NEW refresh token is kept."""
    rsps.get(
        "https://oauth.bitrix24.tech/oauth/token/",
        json=fixture("oauth_refresh_response.json"),
        match=[matchers.query_param_matcher(QUERY)],
    )
    pair = _refresh("https://oauth.bitrix24.tech/rest/")
    expected = fixture("oauth_refresh_response.json")
    assert pair.access_token == expected["access_token"]
    assert pair.refresh_token == expected["refresh_token"]
    assert pair.expires_in == 3600
    assert pair.client_endpoint == "https://portal.bitrix24.com/rest/"
    assert pair.member_id == expected["member_id"] and pair.user_id == 67
    assert expected["access_token"] not in repr(pair)


@pytest.mark.parametrize(
    "name, status, exc",
    [
        ("oauth_error_invalid_grant.json", 400, AuthRevoked),
        ("oauth_error_wrong_client.json", 200, AuthRevoked),
        ("oauth_error_payment_required.json", 402, AuthRevoked),
        ("oauth_error_invalid_client.json", 400, OAuthError),
        ("oauth_error_invalid_request.json", 400, OAuthError),
    ],
)
def test_refresh_errors(rsps: Any, name: str, status: int, exc: type[Exception]) -> None:
    """Revoked grants (even with HTTP 200) are AuthRevoked; other refusals OAuthError."""
    rsps.get("https://oauth.bitrix.info/oauth/token/", json=fixture(name), status=status)
    with pytest.raises(exc) as info:
        _refresh()
    assert QUERY["client_secret"] not in str(info.value)
    assert QUERY["refresh_token"] not in str(info.value)


def test_refresh_network_error_hides_the_url(rsps: Any) -> None:
    """A connection error's text (which names the URL with the secret) is not propagated."""
    rsps.get(
        "https://oauth.bitrix.info/oauth/token/",
        body=requests.ConnectionError(f"failed: ...client_secret={QUERY['client_secret']}"),
    )
    with pytest.raises(TransportError) as info:
        _refresh()
    assert QUERY["client_secret"] not in str(info.value)
    assert info.value.__cause__ is None


@pytest.mark.parametrize(
    "url, allow, ok",
    [
        ("https://oauth.bitrix.info/rest/", False, True),
        ("http://oauth.bitrix.info/rest/", False, False),
        ("http://oauth.bitrix.info/rest/", True, False),  # never plain http off loopback
        ("http://127.0.0.1:9000/oauth/rest/", False, False),
        ("http://127.0.0.1:9000/oauth/rest/", True, True),
        ("http://localhost:9000/oauth/rest/", True, True),
    ],
)
def test_https_required_unless_loopback_allowed(url: str, allow: bool, ok: bool) -> None:
    """https always; plain http only for loopback with allow_insecure_endpoints."""
    if ok:
        assert check_endpoint(url, allow_insecure=allow) == url
    else:
        with pytest.raises(InsecureEndpoint):
            check_endpoint(url, allow_insecure=allow)


def test_refresh_refuses_http_server_endpoint(rsps: Any) -> None:
    with pytest.raises(InsecureEndpoint):
        _refresh("http://oauth.example.com/rest/")
    assert len(rsps.calls) == 0


def test_app_info_asks_the_oauth_server(rsps: Any) -> None:
    """GET {server_endpoint}app.info?auth=… returns ``result`` (client_id, install.member_id)."""
    rsps.get(
        "https://oauth.bitrix.info/rest/app.info",
        json=fixture("oauth_server_app_info.SYNTHETIC.json"),
        match=[matchers.query_param_matcher({"auth": "frame-token"})],
    )
    info = oauth_app_info("https://oauth.bitrix.info/rest/", "frame-token", requests.Session())
    assert info["client_id"] == "local.abc123def456"
    assert info["install"]["member_id"] == "123456"


def test_app_info_error_raises(rsps: Any) -> None:
    rsps.get(
        "https://oauth.bitrix.info/rest/app.info",
        json=fixture("error_invalid_token.json"),
        status=401,
    )
    with pytest.raises(Exception) as info:
        oauth_app_info("https://oauth.bitrix.info/rest/", "frame-token")
    assert getattr(info.value, "code", None) == "invalid_token"
    assert "frame-token" not in str(info.value)
