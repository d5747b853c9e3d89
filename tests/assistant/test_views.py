"""POST /assistant/events: an authentic event of our bot is queued once on the ``assistant``
queue; anything else is a 4xx in the one error shape and nothing is queued or written."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy import select

from b24app.context import Services
from b24app.storage.models import AssistantDialog
from b24app.storage.portals import get_portal
from b24app.storage.portals import InstallAuth
from b24app.storage.portals import upsert_install
from tests.conftest import FIXTURES

FIXTURE = FIXTURES / "client-loop" / "onimbotv2messageadd_openline.DERIVED.form.json"
MEMBER_ID = "bac1cd5c8940947a75e0d71b1a84e348"
APP_TOKEN = "831c76b092f9f135d9b6b36c3a720757"


@pytest.fixture
def stored_portal(services: Services) -> int:
    with services.db() as session:
        portal = upsert_install(
            session,
            InstallAuth(member_id=MEMBER_ID, domain="some-domain.bitrix24.com",
                        client_endpoint="https://some-domain.bitrix24.com/rest/",
                        access_token="a", refresh_token="r", application_token=APP_TOKEN),
        )  # fmt: skip
        portal.registration = {"assistant_bot": {"id": 567, "hash": "x"}}
        return portal.id


def form(**overrides: str | None) -> dict[str, str]:
    data: dict[str, str] = json.loads(FIXTURE.read_text())
    for key, value in overrides.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def post(client: Any, data: dict[str, str]) -> Any:
    return client.post("/assistant/events", data=data)


def queued(services: Services) -> int:
    return services.queue("assistant").count


def test_event_is_queued_once(client: Any, services: Services, stored_portal: int) -> None:
    first = post(client, form())
    assert first.status_code == 200 and first.get_json() == {"status": "queued"}
    again = post(client, form())
    assert again.get_json() == {"status": "duplicate"}
    assert queued(services) == 1
    job = services.queue("assistant").jobs[0]
    # ids only: the text waits in the chat's short-lived waiting list (tests/assistant/
    # test_job_privacy.py)
    assert job.kwargs == {"member_id": MEMBER_ID, "chat_id": "1777", "message_id": 41047}


@pytest.mark.parametrize(
    ("overrides", "status"),
    [
        ({"auth[member_id]": "f" * 32}, 403),  # unknown portal: the same answer as a bad token
        ({"auth[application_token]": "wrong"}, 403),
        ({"auth[application_token]": None}, 400),
        ({"data[bot][id]": "568"}, 404),  # not our bot on this portal
        ({"data[bot][auth][member_id]": "f" * 32}, 404),  # another portal's bot credentials
        ({"data[bot][id]": "x"}, 400),
        ({"data[chat][id]": None}, 400),
        ({"data[message][id]": None}, 400),
        ({"event": "ONIMBOTV2REACTIONCHANGE"}, 400),
        ({"data[chat][dialogId]": "chat1777; drop"}, 400),
    ],
)
def test_bad_deliveries_are_refused_and_change_nothing(
    client: Any,
    services: Services,
    stored_portal: int,
    overrides: dict[str, str | None],
    status: int,
) -> None:
    response = post(client, form(**overrides))
    assert response.status_code == status
    body = response.get_json()
    assert body["code"] == status and body["message"]
    assert queued(services) == 0
    with services.db() as session:
        assert session.scalar(select(func.count()).select_from(AssistantDialog)) == 0


def test_unknown_bot_when_the_portal_never_registered_one(
    client: Any, services: Services, stored_portal: int
) -> None:
    with services.db() as session:
        portal = get_portal(session, MEMBER_ID)
        assert portal is not None
        portal.registration = {}
    assert post(client, form()).status_code == 404
    assert queued(services) == 0


@pytest.mark.parametrize(
    "overrides",
    [
        {"data[chat][entityType]": ""},  # a private chat, not Open Lines
        {"data[user][bot]": "1"},  # a bot's message
        {"data[user][connector]": "0"},  # an operator writing in the chat
    ],
)
def test_messages_not_for_the_assistant_are_ignored(
    client: Any, services: Services, stored_portal: int, overrides: dict[str, str]
) -> None:
    response = post(client, form(**overrides))
    assert response.status_code == 200 and response.get_json() == {"status": "ignored"}
    assert queued(services) == 0


def test_join_event_is_queued_as_a_greeting(
    client: Any, services: Services, stored_portal: int
) -> None:
    data = form(event="ONIMBOTV2JOINCHAT")
    for key in [k for k in data if k.startswith("data[message]")]:
        del data[key]
    assert post(client, data).get_json() == {"status": "queued"}
    assert services.queue("assistant").jobs[0].kwargs["message_id"] == 0


def test_json_body_is_refused(client: Any, services: Services, stored_portal: int) -> None:
    response = client.post("/assistant/events", json={"event": "ONIMBOTV2MESSAGEADD"})
    assert response.status_code == 400 and queued(services) == 0
