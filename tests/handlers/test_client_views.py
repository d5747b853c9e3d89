"""POST /handlers/booking and /handlers/openlines: documented deliveries are queued once;
anything else is a 4xx and nothing is queued; others' chat messages are acknowledged only."""

from __future__ import annotations

from typing import Any

import pytest

from b24app.appointments.replies import classify
from b24app.context import Services
from b24app.storage.portals import InstallAuth
from b24app.storage.portals import upsert_install
from tests.handlers.test_views import APP_TOKEN
from tests.handlers.test_views import event_form
from tests.handlers.test_views import MEMBER_ID
from tests.handlers.test_views import queued


@pytest.fixture
def stored(services: Services) -> int:
    with services.db() as session:
        portal = upsert_install(
            session,
            InstallAuth(member_id=MEMBER_ID, domain="salon.bitrix24.ru",
                        client_endpoint="https://salon.bitrix24.ru/rest/", access_token="access",
                        refresh_token="refresh", application_token=APP_TOKEN),
        )  # fmt: skip
        return portal.id


BOOKING = "client-loop/onbookingupdate_event.DERIVED.form.json"
MESSAGE = "client-loop/onopenlinemessageadd_event.DERIVED.form.json"


@pytest.mark.parametrize("event", ["ONBOOKINGADD", "ONBOOKINGUPDATE", "ONBOOKINGDELETE"])
def test_booking_event_is_queued_once(client, services, stored, event) -> None:  # type: ignore[no-untyped-def]
    form = event_form(BOOKING, event=event)
    first = client.post("/handlers/booking", data=form)
    again = client.post("/handlers/booking", data=form)
    assert first.status_code == 200 and first.get_json() == {"status": "queued"}
    assert again.get_json() == {"status": "duplicate"}
    (job,) = queued(services)
    assert job.args[1:3] == (event, 66)


@pytest.mark.parametrize(
    ("overrides", "status"),
    [
        ({"data[ID]": "abc"}, 400),
        ({"data[ID]": None}, 400),
        ({"event": "ONCRMLEADADD"}, 400),
        ({"auth[application_token]": "wrong"}, 403),
        ({"auth[member_id]": "unknown-member"}, 403),
    ],
)
def test_bad_booking_event_changes_nothing(
    client: Any, services: Services, stored: int, overrides: dict[str, Any], status: int
) -> None:
    response = client.post("/handlers/booking", data=event_form(BOOKING, **overrides))
    assert response.status_code == status
    assert set(response.get_json()) >= {"code", "status", "message"}
    assert queued(services) == []


def test_client_message_is_queued_and_others_are_ignored(
    client: Any, services: Services, stored: int
) -> None:
    response = client.post("/handlers/openlines", data=event_form(MESSAGE))
    assert response.get_json() == {"status": "queued"}
    (job,) = queued(services)
    assert job.args[1:] == (10585, 80964, False)  # ids only (and "a stop word is claimed")
    operator = event_form(MESSAGE, **{"data[DATA][0][message][user_id]": "7",
                                      "data[DATA][0][message][id]": "80965"})  # fmt: skip
    assert client.post("/handlers/openlines", data=operator).get_json() == {"status": "ignored"}
    system = event_form(MESSAGE, **{"data[DATA][0][message][system]": "Y",
                                    "data[DATA][0][message][id]": "80966"})  # fmt: skip
    assert client.post("/handlers/openlines", data=system).get_json() == {"status": "ignored"}
    assert len(queued(services)) == 1


@pytest.mark.parametrize(
    ("overrides", "status"),
    [
        ({"data[DATA][0][chat][id]": "x"}, 400),
        ({"data[DATA][0][message][text]": None, "data[DATA][0][message][id]": None,
          "data[DATA][0][message][user_id]": None, "data[DATA][0][message][date]": None,
          "data[DATA][0][message][attach]": None, "data[DATA][0][message][system]": None}, 400),
        ({"event": "ONBOOKINGADD"}, 400),
        ({"auth[application_token]": "wrong"}, 403),
    ],
)  # fmt: skip
def test_bad_chat_event_changes_nothing(
    client: Any, services: Services, stored: int, overrides: dict[str, Any], status: int
) -> None:
    response = client.post("/handlers/openlines", data=event_form(MESSAGE, **overrides))
    assert response.status_code == status
    assert queued(services) == []


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("1", "confirm"), ("1 — подтверждаю", "confirm"), ("Да, буду!", "confirm"), ("👍", "confirm"),
        ("Yes", "confirm"), ("ok", "confirm"), ("Подтверждаю", "confirm"),
        ("2", "change"), ("Перенесите, пожалуйста", "change"), ("не смогу прийти", "change"),
        ("cancel", "change"), ("I can't come", "change"), ("❌", "change"), ("Отменить", "change"),
        ("1 или 2?", "other"), ("а сколько стоит?", "other"), ("", "other"), ("12", "other"),
        ("не приду, да", "change"),
    ],
)  # fmt: skip
def test_reply_rules(text: str, kind: str) -> None:
    assert classify(text) == kind
