"""Isolation: portal A's tokens, settings and figures are unreachable from portal B through
any route — events, robots, placements and the signed page session."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
import requests

from b24app.context import Services
from devportal import DevPortal
from tests.conftest import FIXTURES
from tests.plugins.live import LiveServer
from tests.reliability.conftest import db_portal
from tests.sla.conftest import make_lead


@pytest.fixture
def portal_b(emulator: DevPortal, installed_portal: Any, run_jobs: Callable[..., None]) -> Any:
    """A second installed portal (``clinic``) next to ``installed_portal`` (A)."""
    other = emulator.create_portal("clinic", lang="en", time_zone="Europe/Berlin")
    assert other.install().installer.status_code == 200
    run_jobs()
    return other


def _jobs(services: Services) -> int:
    return sum(services.queue(q).count for q in ("events", "timers", "default", "bulk"))


def test_event_and_robot_with_a_member_id_and_b_token_are_403(
    live_app: LiveServer, installed_portal: Any, portal_b: Any, services: Services
) -> None:
    """A's member_id with B's (valid) application_token: 403, nothing queued or recorded."""
    event: dict[str, str] = json.loads((FIXTURES / "oncrmleadadd_event.form.json").read_text())
    event["auth[member_id]"] = installed_portal.member_id
    event["auth[application_token]"] = portal_b.application_token
    robot: dict[str, str] = json.loads(
        (FIXTURES / "robot_handler_call_lead.DERIVED.form.json").read_text()
    )
    robot["auth[member_id]"] = installed_portal.member_id
    robot["auth[application_token]"] = portal_b.application_token
    code = robot["code"] = "b24app_mark_ai"
    before = _jobs(services)
    assert requests.post(f"{live_app.url}/handlers/events", data=event).status_code == 403
    response = requests.post(f"{live_app.url}/robots/{code}", data=robot)
    assert response.status_code == 403, response.text
    assert _jobs(services) == before


def _frame(portal: Any, user_id: int = 1) -> tuple[dict[str, Any], dict[str, Any]]:
    query, form = portal.frame_payload(user_id, "CRM_ANALYTICS_MENU", {}, None)
    return dict(query), dict(form)


def test_placement_post_mixing_portals_is_403(
    live_app: LiveServer, installed_portal: Any, portal_b: Any
) -> None:
    """A's member_id with B's APPLICATION_TOKEN, or with A's token but B's AUTH_ID: 403."""
    query_a, form_a = _frame(installed_portal)
    _query_b, form_b = _frame(portal_b)
    url = f"{live_app.url}/app/"
    mixed_token = {**form_a, "APPLICATION_TOKEN": form_b["APPLICATION_TOKEN"]}
    assert requests.post(url, params=query_a, data=mixed_token).status_code == 403
    mixed_auth = {**form_a, "AUTH_ID": form_b["AUTH_ID"], "REFRESH_ID": form_b["REFRESH_ID"]}
    assert requests.post(url, params=query_a, data=mixed_auth).status_code == 403
    assert requests.post(url, params=query_a, data=form_a).status_code == 200  # control


def test_signed_session_of_a_shows_only_a(
    live_app: LiveServer, installed_portal: Any, portal_b: Any, services: Services
) -> None:
    """A's page session reads A's figures whatever the request names; a forged token is
    refused."""
    portal_id_b = db_portal(services, portal_b.member_id).id
    for lead_id in range(1, 6):
        make_lead(services, portal_id_b, lead_id, channel="call")
    page = installed_portal.open_app()
    assert page.status_code == 200
    match = re.search(r'name="t" value="([^"]+)"', page.text)
    assert match, "the page carries its session token"
    token = match.group(1)
    url = f"{live_app.url}/app/api/dashboard.json"
    own = requests.get(url, params={"member_id": portal_b.member_id},
                       headers={"X-B24App-Session": token})  # fmt: skip
    assert own.status_code == 200
    assert own.json()["total"]["leads"] == 0  # B's five leads are not A's
    page_b = portal_b.open_app()
    token_b = re.search(r'name="t" value="([^"]+)"', page_b.text).group(1)  # type: ignore[union-attr]
    assert requests.get(url, headers={"X-B24App-Session": token_b}).json()["total"]["leads"] == 5
    forged = token_b[:-4] + ("AAAA" if not token_b.endswith("AAAA") else "BBBB")
    assert requests.get(url, headers={"X-B24App-Session": forged}).status_code in (401, 403)
    csv = requests.post(f"{live_app.url}/app/export/leads.csv", data={"t": token})
    assert csv.status_code in (200, 404)
    assert portal_b.member_id not in csv.text
