"""OAuth server: refresh rotation, errors shaped like the fixtures, OAuth-server app.info."""

from __future__ import annotations

import json

import requests

from devportal import DevPortal
from devportal import Portal
from tests.conftest import FIXTURES
from tests.devportal.conftest import Rest


def _refresh(emu: DevPortal, refresh_token: str, **extra: str) -> requests.Response:
    params = {
        "grant_type": "refresh_token",
        "client_id": emu.client_id,
        "client_secret": emu.client_secret,
        "refresh_token": refresh_token,
        **extra,
    }
    return requests.get(emu.token_url, params=params, timeout=10)


def test_refresh_rotates_and_old_tokens_die(emulator: DevPortal, installed: Portal) -> None:
    pair = installed.tokens_for(1)
    response = _refresh(emulator, pair.refresh_token)
    assert response.status_code == 200
    body = response.json()
    expected = json.loads((FIXTURES / "oauth_refresh_response.json").read_text())
    assert set(body) == set(expected)
    assert body["domain"] == emulator.host
    assert body["client_endpoint"] == installed.client_endpoint
    assert body["member_id"] == installed.member_id
    assert body["refresh_token"] != pair.refresh_token
    assert emulator.token_refreshes(installed) == 1

    again = _refresh(emulator, pair.refresh_token)
    assert again.status_code == 400
    assert again.json() == {"error": "invalid_grant"}
    old = Rest(installed, pair.access_token)("user.current")
    assert old.status_code == 401
    assert Rest(installed, body["access_token"])("user.current").status_code == 200


def test_wrong_client_secret_is_invalid_client(emulator: DevPortal, installed: Portal) -> None:
    pair = installed.tokens_for(1)
    response = _refresh(emulator, pair.refresh_token, client_secret="nope")
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_client"}


def test_revoked_grant_and_missing_token(emulator: DevPortal, installed: Portal) -> None:
    pair = installed.tokens_for(1)
    installed.revoke_grant()
    assert _refresh(emulator, pair.refresh_token).json() == {"error": "invalid_grant"}
    missing = requests.get(
        emulator.token_url,
        params={"grant_type": "refresh_token", "client_id": emulator.client_id,
                "client_secret": emulator.client_secret},
        timeout=10,
    )  # fmt: skip
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"


def test_authorization_code_is_single_use(emulator: DevPortal, installed: Portal) -> None:
    code = installed.authorization_code(2)
    params = {"grant_type": "authorization_code", "client_id": emulator.client_id,
              "client_secret": emulator.client_secret, "code": code}  # fmt: skip
    first = requests.post(emulator.token_url, params=params, timeout=10)
    assert first.status_code == 200 and first.json()["user_id"] == 2
    assert requests.post(emulator.token_url, params=params, timeout=10).json() == {
        "error": "invalid_grant"
    }


def test_oauth_server_app_info_names_the_real_portal(
    emulator: DevPortal, installed: Portal
) -> None:
    token = installed.tokens_for(1).access_token
    response = requests.get(
        emulator.server_endpoint + "app.info", params={"auth": token}, timeout=10
    )
    assert response.status_code == 200
    result = response.json()["result"]
    shape = json.loads((FIXTURES / "oauth_server_app_info.SYNTHETIC.json").read_text())["result"]
    assert set(result) == set(shape)
    assert set(result["install"]) == set(shape["install"])
    assert result["install"]["member_id"] == installed.member_id
    assert result["install"]["domain"] == installed.domain
    assert result["install"]["client_endpoint"] == installed.client_endpoint
    assert result["install"]["installed"] is True
    bad = requests.get(emulator.server_endpoint + "app.info", params={"auth": "x"}, timeout=10)
    assert bad.status_code == 401
