"""POST /handlers/events: authentic deliveries are queued once; anything else is a 4xx and
nothing is queued."""

from __future__ import annotations

import json
from typing import Any

import pytest

from b24app.context import Services
from b24app.handlers.jobs import event_job_id
from b24app.storage.portals import InstallAuth
from b24app.storage.portals import upsert_install
from tests.conftest import FIXTURES

MEMBER_ID = "m" + "0" * 31
APP_TOKEN = "app-token-0123456789abcdef"


@pytest.fixture
def stored_portal(services: Services) -> int:
    with services.db() as session:
        portal = upsert_install(
            session,
            InstallAuth(
                member_id=MEMBER_ID,
                domain="salon.bitrix24.ru",
                client_endpoint="https://salon.bitrix24.ru/rest/",
                access_token="access",
                refresh_token="refresh",
                application_token=APP_TOKEN,
            ),
        )
        return portal.id


def event_form(name: str = "oncrmleadadd_event.form.json", **overrides: str) -> dict[str, str]:
    """A fixture's form body with the stored portal's credentials (and ``overrides``)."""
    form: dict[str, str] = json.loads((FIXTURES / name).read_text())
    form["auth[member_id]"] = MEMBER_ID
    form["auth[application_token]"] = APP_TOKEN
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


def queued(services: Services) -> list[Any]:
    return services.queue("events").get_jobs()


@pytest.mark.parametrize(
    "fixture",
    [
        "oncrmleadadd_event.form.json",
        "oncrmleadupdate_event.form.json",
        "oncrmleaddelete_event.form.json",
    ],
)
def test_valid_event_is_queued(client, services, stored_portal, fixture) -> None:  # type: ignore[no-untyped-def]
    """A documented lead event is answered 200 and one job is on the events queue."""
    form = event_form(fixture)
    response = client.post("/handlers/events", data=form)
    assert response.status_code == 200, response.json
    assert response.json == {"status": "queued"}
    jobs = queued(services)
    assert len(jobs) == 1
    assert jobs[0].id == event_job_id(MEMBER_ID, form["event"], 1000983, int(form["ts"]))
    assert jobs[0].args == (MEMBER_ID, form["event"], 1000983, int(form["ts"]))


def test_activity_event_is_queued(client, services, stored_portal) -> None:  # type: ignore[no-untyped-def]
    """ONCRMACTIVITYADD has the same envelope and is queued too."""
    form = event_form(event="ONCRMACTIVITYADD", **{"data[FIELDS][ID]": "55"})
    assert client.post("/handlers/events", data=form).status_code == 200
    assert [j.args[1:3] for j in queued(services)] == [("ONCRMACTIVITYADD", 55)]


def test_duplicate_delivery_is_queued_once(client, services, stored_portal) -> None:  # type: ignore[no-untyped-def]
    """The same delivery twice: both 200, one job; a different ts is a new job."""
    form = event_form()
    first = client.post("/handlers/events", data=form)
    second = client.post("/handlers/events", data=form)
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json == {"status": "duplicate"}
    assert len(queued(services)) == 1
    client.post("/handlers/events", data=event_form(ts="1742807176"))
    assert len(queued(services)) == 2


@pytest.mark.parametrize(
    ("overrides", "status"),
    [
        ({"auth[member_id]": "unknown-member"}, 403),
        ({"auth[member_id]": None}, 400),
        ({"auth[application_token]": "forged"}, 403),
        ({"auth[application_token]": None}, 400),
    ],
)
def test_forged_events_are_refused(client, services, stored_portal, overrides, status) -> None:  # type: ignore[no-untyped-def]
    """Unknown portal and wrong token: the same 403 and message (issue 10 item 7: no portal
    enumeration); missing credentials 400; nothing queued."""
    response = client.post("/handlers/events", data=event_form(**overrides))
    assert response.status_code == status
    assert response.json["code"] == status
    if status == 403:
        assert response.json["message"] == "Unknown portal or wrong application_token."
    assert queued(services) == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"data[FIELDS][ID]": None},
        {"data[FIELDS][ID]": "abc"},
        {"data[FIELDS][ID]": "0"},
        {"data[FIELDS][ID]": "-5"},
        {"data[FIELDS][ID]": "1.5"},
        {"data[FIELDS][ID]": "99999999999999999999"},
        {"event": "ONCRMDEALADD"},
        {"event": "ONAPPINSTALL"},
        {"event": None},
        {"ts": None},
        {"ts": "yesterday"},
        {"data[FIELDS": "1"},
        {"data[FIELDS][ID][x]": "1"},
        {"auth[member_id][0]": "x"},
    ],
)
def test_malformed_events_are_400(client, services, stored_portal, overrides) -> None:  # type: ignore[no-untyped-def]
    """Missing/non-numeric ids, unknown events, malformed bracket keys → 400, nothing queued."""
    response = client.post("/handlers/events", data=event_form(**overrides))
    assert response.status_code == 400, response.json
    assert queued(services) == []


def test_json_body_is_400(client, services, stored_portal) -> None:  # type: ignore[no-untyped-def]
    """Bitrix24 posts forms; a JSON body is refused."""
    response = client.post("/handlers/events", json=event_form())
    assert response.status_code == 400
    assert queued(services) == []


def test_oversized_body_is_413(client, services, stored_portal) -> None:  # type: ignore[no-untyped-def]
    """A body over the limit is refused before it is read."""
    form = event_form(**{"data[FIELDS][TITLE]": "x" * (300 * 1024)})
    response = client.post("/handlers/events", data=form)
    assert response.status_code == 413
    assert queued(services) == []


def test_events_are_counted(client, services, stored_portal) -> None:  # type: ignore[no-untyped-def]
    """Accepted events show in /metrics by event name."""
    from b24app import metrics

    counter = metrics.EVENTS_IN.labels(event="ONCRMLEADUPDATE")
    before = counter._value.get()
    client.post("/handlers/events", data=event_form("oncrmleadupdate_event.form.json"))
    assert counter._value.get() == before + 1
