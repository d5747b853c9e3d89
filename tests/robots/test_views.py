"""``POST /robots/<code>`` with Bitrix24's form-encoded robot call: authentic calls are recorded
and enqueued once and answered at once; forged and malformed calls are refused with nothing
written or enqueued; invalid properties are accepted so the job can tell the workflow."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy import select

from b24app.robots import definitions as d
from b24app.robots.jobs import token_hash
from b24app.storage.models import RobotCall
from b24app.storage.portals import InstallAuth
from b24app.storage.portals import upsert_install
from tests.conftest import FIXTURES

FORM: dict[str, str] = json.loads(
    (FIXTURES / "robot_handler_call_lead.DERIVED.form.json").read_text()
)
MEMBER_ID = FORM["auth[member_id]"]
APP_TOKEN = FORM["auth[application_token]"]


@pytest.fixture
def stored_portal(services):  # type: ignore[no-untyped-def]
    """The fixture's portal, installed with the fixture's application_token."""
    with services.db() as session:
        portal = upsert_install(
            session,
            InstallAuth(
                member_id=MEMBER_ID,
                domain=FORM["auth[domain]"],
                client_endpoint=FORM["auth[client_endpoint]"],
                application_token=APP_TOKEN,
                access_token="a" * 32,
                refresh_token="r" * 32,
            ),
        )
        return portal.id


def robot_form(
    code: str, properties: dict[str, Any] | None = None, **overrides: str
) -> dict[str, str]:
    """The fixture's form body for robot ``code`` with our properties (lists as [0], [1]…)."""
    form = {k: v for k, v in FORM.items() if not k.startswith("properties[")}
    form["code"] = code
    for key, value in (properties or {}).items():
        if isinstance(value, list):
            for i, item in enumerate(value):
                form[f"properties[{key}][{i}]"] = item
        else:
            form[f"properties[{key}]"] = value
    form.update(overrides)
    return form


def robot_rows(services) -> int:  # type: ignore[no-untyped-def]
    with services.db() as session:
        return session.scalar(select(func.count()).select_from(RobotCall)) or 0


def queued(services) -> int:  # type: ignore[no-untyped-def]
    return services.queue("events").count


QUALIFY_PROPS = {"goal": "Стрижка", "desired_time": "завтра в 15:00", "contact": "+79161234567"}


def test_authentic_call_is_recorded_and_enqueued(client, services, stored_portal) -> None:  # type: ignore[no-untyped-def]
    """A valid call answers 200, stores a RobotCall for LEAD_456 and enqueues one events job."""
    response = client.post(f"/robots/{d.QUALIFY}", data=robot_form(d.QUALIFY, QUALIFY_PROPS))
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"accepted": True, "problems": {}}
    with services.db() as session:
        call = session.scalars(select(RobotCall)).one()
    assert (call.code, call.journey_key, call.state) == (d.QUALIFY, 456, "queued")
    assert call.token_hash == token_hash(FORM["event_token"])
    jobs = services.queue("events").get_jobs()
    assert len(jobs) == 1
    assert jobs[0].func_name == "b24app.robots.jobs.run_robot"
    # The job description is what the worker logs: no token and no client answers in it.
    assert FORM["event_token"] not in jobs[0].description
    assert "79161234567" not in jobs[0].description


def test_repeated_event_token_is_enqueued_once(client, services, stored_portal) -> None:  # type: ignore[no-untyped-def]
    """The same delivery twice: both answered 200, one row, one job."""
    form = robot_form(d.KPI_SNAPSHOT)
    first = client.post(f"/robots/{d.KPI_SNAPSHOT}", data=form)
    second = client.post(f"/robots/{d.KPI_SNAPSHOT}", data=form)
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.get_json()["accepted"] is True
    assert second.get_json()["accepted"] is False
    assert robot_rows(services) == 1
    assert queued(services) == 1


def test_list_properties_arrive_as_bracket_lists(client, services, stored_portal) -> None:  # type: ignore[no-untyped-def]
    """``properties[remind_before][0..1]`` reaches the job as a list."""
    props = {"appointment_time": "23.05.2030 14:30:00", "remind_before": ["24h", "2h"]}
    response = client.post(f"/robots/{d.REMINDERS}", data=robot_form(d.REMINDERS, props))
    assert response.get_json() == {"accepted": True, "problems": {}}
    job = services.queue("events").get_jobs()[0]
    assert job.args[4]["remind_before"] == ["24h", "2h"]


@pytest.mark.parametrize(
    ("overrides", "status"),
    [
        ({"auth[member_id]": "0" * 32}, 403),
        ({"auth[application_token]": "f" * 32}, 403),
    ],
)
def test_forged_calls_are_refused(client, services, stored_portal, overrides, status) -> None:  # type: ignore[no-untyped-def]
    """Unknown portal or another application_token: one 403; nothing written or enqueued."""
    response = client.post(
        f"/robots/{d.QUALIFY}", data=robot_form(d.QUALIFY, QUALIFY_PROPS, **overrides)
    )
    assert response.status_code == status
    assert response.get_json()["code"] == status
    assert robot_rows(services) == 0
    assert queued(services) == 0


def _without(form: dict[str, str], prefix: str) -> dict[str, str]:
    return {k: v for k, v in form.items() if not k.startswith(prefix)}


@pytest.mark.parametrize(
    "make_form",
    [
        lambda f: _without(f, "auth["),
        lambda f: _without(f, "event_token"),
        lambda f: _without(f, "document_id["),
        lambda f: {**f, "auth[member_id": "x"},
        lambda f: {**f, "properties": "oops", "properties[goal]": "x"},
        lambda f: {**f, "code": d.KPI_SNAPSHOT},
    ],
    ids=[
        "no-auth",
        "no-event-token",
        "no-document",
        "bad-bracket",
        "both-value-and-container",
        "code-mismatch",
    ],
)
def test_malformed_calls_are_400(client, services, stored_portal, make_form) -> None:  # type: ignore[no-untyped-def]
    """Malformed payloads (and a posted code that differs from the URL) are 400, nothing kept."""
    response = client.post(
        f"/robots/{d.QUALIFY}", data=make_form(robot_form(d.QUALIFY, QUALIFY_PROPS))
    )
    assert response.status_code == 400
    assert robot_rows(services) == 0
    assert queued(services) == 0


def test_json_body_is_400(client, services, stored_portal) -> None:  # type: ignore[no-untyped-def]
    """A JSON body is not what Bitrix24 sends: 400."""
    response = client.post(f"/robots/{d.QUALIFY}", json={"code": d.QUALIFY})
    assert response.status_code == 400
    assert queued(services) == 0


def test_unknown_robot_is_400(client, services, stored_portal) -> None:  # type: ignore[no-untyped-def]
    """A URL naming no robot of ours: 400, nothing kept."""
    response = client.post("/robots/lead_tagger", data=robot_form("lead_tagger"))
    assert response.status_code == 400
    assert response.get_json()["message"] == "Unknown robot."
    assert robot_rows(services) == 0


def test_invalid_properties_are_accepted_for_reporting(client, services, stored_portal) -> None:  # type: ignore[no-untyped-def]
    """Authentic call with bad properties: 200 with the problems, and a job to tell the workflow."""
    props = {"policy": "custom", "minutes": "ten"}
    response = client.post(f"/robots/{d.SLA_START}", data=robot_form(d.SLA_START, props))
    assert response.status_code == 200
    assert response.get_json() == {"accepted": True, "problems": {"minutes": ["not_int"]}}
    assert queued(services) == 1


def test_non_lead_document_is_accepted_for_reporting(client, services, stored_portal) -> None:  # type: ignore[no-untyped-def]
    """A contact document: 200 naming the problem, recorded without a lead id, job enqueued."""
    form = robot_form(
        d.KPI_SNAPSHOT,
        **{"document_id[2]": "CONTACT_5", "document_id[1]": "CCrmDocumentContact"},
    )
    response = client.post(f"/robots/{d.KPI_SNAPSHOT}", data=form)
    assert response.get_json() == {"accepted": True, "problems": {"document_id": ["not_a_lead"]}}
    with services.db() as session:
        assert session.scalars(select(RobotCall)).one().journey_key is None
    assert queued(services) == 1


def test_deal_document_is_accepted(client, services, stored_portal) -> None:  # type: ignore[no-untyped-def]
    """A deal document (robots are offered on deals too): accepted, keyed by -deal id."""
    form = robot_form(
        d.KPI_SNAPSHOT, **{"document_id[2]": "DEAL_5", "document_id[1]": "CCrmDocumentDeal"}
    )
    response = client.post(f"/robots/{d.KPI_SNAPSHOT}", data=form)
    assert response.get_json() == {"accepted": True, "problems": {}}
    with services.db() as session:
        assert session.scalars(select(RobotCall)).one().journey_key == -5
    assert queued(services) == 1
