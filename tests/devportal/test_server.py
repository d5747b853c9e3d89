"""REST transport: auth errors, envelope, limits, faults, recording."""

from __future__ import annotations

import json

import pytest
import requests

from devportal import DevPortal
from devportal import Portal
from devportal.limits import LeakyBucket
from tests.conftest import FIXTURES
from tests.devportal.conftest import Rest


def test_envelope_has_documented_time_fields(rest: Rest) -> None:
    body = rest("app.info").json()
    assert set(body["time"]) == {"start", "finish", "duration", "processing", "date_start",
                                 "date_finish", "operating_reset_at", "operating"}  # fmt: skip
    assert body["result"]["INSTALLED"] is True
    expected = json.loads((FIXTURES / "rest_success_app_info.json").read_text())["result"]
    assert set(body["result"]) == set(expected)


def test_form_and_query_params_and_json_suffix(installed: Portal) -> None:
    token = installed.tokens_for(1).access_token
    form = requests.post(
        installed.client_endpoint + "crm.lead.add.json",
        data={"auth": token, "fields[TITLE]": "Форма", "fields[PHONE][0][VALUE]": "+7900"},
        timeout=10,
    )
    lead_id = form.json()["result"]
    got = requests.get(
        installed.client_endpoint + "crm.lead.get",
        params={"auth": token, "id": lead_id},
        timeout=10,
    ).json()["result"]
    assert got["TITLE"] == "Форма"
    assert got["PHONE"][0]["VALUE"] == "+7900" and got["HAS_PHONE"] == "Y"


def test_expired_token_and_other_portal(emulator: DevPortal, installed: Portal) -> None:
    other = emulator.create_portal("other")
    other.prepare_install(None, api_only=True)
    foreign = other.tokens_for(1).access_token
    response = Rest(installed, foreign)("user.current")
    assert response.status_code == 401 and response.json()["error"] == "NO_AUTH_FOUND"

    token = installed.tokens_for(1).access_token
    installed.expire_tokens()
    response = Rest(installed, token)("user.current")
    assert response.status_code == 401
    assert response.json() == json.loads((FIXTURES / "error_expired_token.json").read_text())


def test_unknown_method_and_admin_only(rest: Rest, installed: Portal) -> None:
    missing = rest("crm.nothing.here")
    assert missing.status_code == 404 and missing.json()["error"] == "ERROR_METHOD_NOT_FOUND"
    manager = Rest(installed, installed.tokens_for(2).access_token)
    denied = manager("event.bind", event="ONCRMLEADADD", handler="http://x.test/h")
    assert denied.status_code == 403 and denied.json()["error"] == "ACCESS_DENIED"
    assert manager("user.admin").json()["result"] is False


def test_leaky_bucket_refuses_after_burst(emulator: DevPortal) -> None:
    """The bucket's clock is fake and only moves when the test says so: however slow the
    requests, nothing drains between them."""
    portal = emulator.create_portal("busy", rate=2, burst=10)
    now = [0.0]
    portal.bucket = LeakyBucket(rate=2, burst=10, clock=lambda: now[0])
    portal.prepare_install(None, api_only=True)
    rest = Rest(portal, portal.tokens_for(1).access_token)
    codes = [rest("server.time").status_code for _ in range(14)]
    assert codes == [200] * 10 + [503] * 4
    refused = rest("server.time")
    assert refused.json() == json.loads((FIXTURES / "error_query_limit_exceeded.json").read_text())
    now[0] += 0.4  # not yet one unit drained
    assert rest("server.time").status_code == 503
    now[0] += 0.7  # two units drained since the refusals
    assert [rest("server.time").status_code for _ in range(3)] == [200, 200, 503]
    assert emulator.http_requests(portal) == 19


def test_faults_by_count_and_method(emulator: DevPortal, rest: Rest, installed: Portal) -> None:
    emulator.inject_fault("internal_error", count=2, portal=installed)
    assert [rest("server.time").status_code for _ in range(3)] == [500, 500, 200]
    emulator.inject_fault("operation_time_limit", count=1, method="crm.lead.list")
    limited = rest("crm.lead.list")
    assert limited.status_code == 429
    assert limited.json()["error"] == "OPERATION_TIME_LIMIT"
    assert "operating_reset_at" in limited.json()["time"]
    emulator.inject_fault("expired_token", count=1)
    assert rest("server.time").json()["error"] == "expired_token"
    assert (
        len(emulator.calls(method="server.time", portal=installed, error="INTERNAL_SERVER_ERROR"))
        == 2
    )


def test_hang_fault_times_out_the_client(emulator: DevPortal, rest: Rest) -> None:
    emulator.inject_fault("hang", count=1, hang_seconds=2)
    with pytest.raises(requests.Timeout):
        requests.post(
            rest.portal.client_endpoint + "server.time", json={"auth": rest.token}, timeout=0.5
        )


def test_calls_are_recorded(emulator: DevPortal, rest: Rest, installed: Portal) -> None:
    rest("event.bind", event="ONCRMLEADADD", handler=emulator.app_url("/handlers/events"))
    [call] = emulator.calls(method="event.bind", portal=installed)
    assert call.status == 200 and call.params["event"] == "ONCRMLEADADD" and call.user_id == 1
