"""Booking, open-line chats and workflows of the emulator, against the documented shapes."""

from __future__ import annotations

import json
import time
from typing import Any
from unittest.mock import ANY

from devportal import Portal
from tests.conftest import FIXTURES
from tests.devportal.conftest import Rest
from tests.devportal.conftest import Sink

LOOP = FIXTURES / "client-loop"


def fixture(name: str) -> Any:
    return json.loads((LOOP / name).read_text())


def bind(rest: Rest, event: str) -> None:
    url = rest.portal.emu.app_url("/handlers/client")
    assert rest("event.bind", event=event, handler=url).json()["result"] is True


def wait_events(sink: Sink, event: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [r for r in sink.find("/handlers/client") if r["form"].get("event") == event]
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{event} not delivered")


def test_booking_add_get_list_shapes_and_events(rest: Rest, sink: Sink) -> None:
    bind(rest, "ONBOOKINGADD")
    request = fixture("booking_v1_booking_add.request.json")
    added = rest("booking.v1.booking.add", **request).json()
    assert set(added["result"]) == set(fixture("booking_v1_booking_add.response.json")["result"])
    booking_id = added["result"]["id"]
    got = rest("booking.v1.booking.get", id=booking_id).json()["result"]
    expected = fixture("booking_v1_booking_get.response.json")["result"]
    assert set(got) == set(expected) and set(got["booking"]) == set(expected["booking"])
    listed = rest(
        "booking.v1.booking.list",
        filter={"within": {"dateFrom": got["booking"]["datePeriod"]["from"]["timestamp"] - 10,
                           "dateTo": got["booking"]["datePeriod"]["to"]["timestamp"] + 10}},
    ).json()  # fmt: skip
    assert [b["id"] for b in listed["result"]["booking"]] == [booking_id]
    (event,) = wait_events(sink, "ONBOOKINGADD", 1)
    form = event["form"]
    documented = fixture("onbookingupdate_event.DERIVED.form.json")
    assert form["data[ID]"] == str(booking_id)
    assert {k for k in form if k.startswith("data")} == {
        k for k in documented if k.startswith("data")
    }


def test_booking_errors_are_numeric(rest: Rest) -> None:
    body = rest("booking.v1.booking.get", id=999).json()
    assert body == fixture("error_booking_not_found_1021.json")
    assert rest("booking.v1.booking.update", id=999, fields={"name": "x"}).json()["error"] == 1019
    bad = {"resourceIds": [1], "datePeriod": {"from": {"timestamp": 20, "timezone": "UTC"},
                                              "to": {"timestamp": 10, "timezone": "UTC"}}}  # fmt: skip
    assert rest("booking.v1.booking.add", fields=bad).json() == fixture(
        "error_booking_invalid_date_period_422.json"
    )
    bad["resourceIds"] = [404]
    assert rest("booking.v1.booking.add", fields=bad).json()["error"] == 1018


def test_clients_and_deal_links(rest: Rest, installed: Portal) -> None:
    booking_id = installed.add_booking(time.time() + 3600)
    client_set = fixture("booking_v1_booking_client_set.request.json")
    client_set["bookingId"] = booking_id
    assert rest("booking.v1.booking.client.set", **client_set).json()["result"] is True
    clients = rest("booking.v1.booking.client.list", bookingId=booking_id).json()["result"]
    assert (
        set(clients) == {"bookingClient"} and clients["bookingClient"][0]["type"]["module"] == "crm"
    )
    ext = fixture("booking_v1_booking_externaldata_set.request.json")
    ext["bookingId"] = booking_id
    assert rest("booking.v1.booking.externalData.set", **ext).json()["result"] is True
    links = rest("booking.v1.booking.externalData.list", bookingId=booking_id).json()["result"]
    assert links["externalData"][0]["entityTypeId"] == "DEAL"
    assert isinstance(links["externalData"][0]["value"], str)
    resources = rest("booking.v1.resource.list").json()["result"]
    assert set(resources) == {"resource"} and resources["resource"][0]["isMain"] in ("Y", "N")


def test_resource_slot_settings(rest: Rest) -> None:
    """``resource.slots.set/list/unset`` in the documented shapes; 1009 for an unknown
    resource, 0 for a range the docs' rules exclude."""
    documented = fixture("booking_v1_resource_slots_list.response.json")["result"]
    listed = rest("booking.v1.resource.slots.list", resourceId=1).json()["result"]
    assert set(listed) == set(documented) and listed["slots"]  # the demo master's week
    assert all(set(s) == set(documented["slots"][0]) for s in listed["slots"])
    ranges = [{"from": 540, "to": 780, "timezone": "Europe/Berlin", "weekDays": ["Mon", "Tue"],
               "slotSize": 30},
              {"from": 840, "to": 1080, "timezone": "Europe/Berlin", "weekDays": ["Mon"],
               "slotSize": 30}]  # fmt: skip
    assert rest("booking.v1.resource.slots.set", resourceId=2, slots=ranges).json() == {
        "result": True,
        "time": ANY,
    }
    got = rest("booking.v1.resource.slots.list", resourceId=2).json()["result"]["slots"]
    assert [{k: v for k, v in s.items() if k != "id"} for s in got] == ranges
    assert all(isinstance(s["id"], int) for s in got)
    assert rest("booking.v1.resource.slots.unset", resourceId=2).json()["result"] is True
    assert rest("booking.v1.resource.slots.list", resourceId=2).json()["result"] == {"slots": []}
    assert rest("booking.v1.resource.slots.list", resourceId=404).json() == {
        "error": 1009,
        "error_description": "Resource not found",
    }
    backwards = [{**ranges[0], "from": 800, "to": 700}]
    assert rest("booking.v1.resource.slots.set", resourceId=2,
                slots=backwards).json()["error"] == 0  # fmt: skip
    assert rest("booking.v1.resource.slots.set", resourceId=2).json()["error"] == 100


def test_chat_get_member_rule_and_client_reply_event(
    rest: Rest, installed: Portal, sink: Sink
) -> None:
    bind(rest, "ONOPENLINEMESSAGEADD")
    # a WhatsApp line of Bitrix24's own connector: its messages never reach the app's handler
    other = installed.open_chat([("deal", 70)], connector_id="whatsapp")
    installed.client_writes(other.id, "1")
    # the app's own connector (on-open-line-message-add.md): its line's messages do
    installed.openlines.app_connectors.add("telegrambot")
    chat = installed.open_chat([("deal", 7), ("contact", 3)])
    found = rest("imopenlines.crm.chat.get", CRM_ENTITY_TYPE="deal", CRM_ENTITY=7).json()["result"]
    assert found == [chat.as_rest()] and isinstance(found[0]["CHAT_ID"], str)
    assert set(found[0]) == set(fixture("imopenlines_crm_chat_get.response.json")["result"][0])
    send = {"CRM_ENTITY_TYPE": "deal", "CRM_ENTITY": 7, "USER_ID": 1,
            "CHAT_ID": int(found[0]["CHAT_ID"]), "MESSAGE": "Напоминаем о записи"}  # fmt: skip
    refused = rest("imopenlines.crm.message.add", **send)
    assert refused.status_code == 403 and refused.json()["error"] == "CANCELED"
    wrong = rest("imopenlines.crm.message.add", **{**send, "CRM_ENTITY": 8}).json()
    assert wrong == fixture("error_imopenlines_chat_not_in_crm.json")
    added = rest("imopenlines.crm.chat.user.add", CRM_ENTITY_TYPE="deal", CRM_ENTITY=7,
                 USER_ID=1, CHAT_ID=chat.id).json()  # fmt: skip
    assert added["result"] == chat.id
    message_id = rest("imopenlines.crm.message.add", **send).json()["result"]
    assert isinstance(message_id, int)
    installed.client_writes(chat.id, "1")
    events = wait_events(sink, "ONOPENLINEMESSAGEADD", 2)
    texts = {e["form"]["data[DATA][0][message][text]"] for e in events}
    assert texts == {"Напоминаем о записи", "1"}
    assert all(e["form"]["data[DATA][0][chat][id]"] == str(chat.id) for e in events)
    reply = next(e["form"] for e in events if e["form"]["data[DATA][0][message][text]"] == "1")
    assert reply["data[DATA][0][message][user_id]"] == reply["data[DATA][0][connector][user_id]"]
    assert reply["data[DATA][0][chat][id]"] == str(chat.id)
    chat.active = False
    assert (
        rest("imopenlines.crm.chat.get", CRM_ENTITY_TYPE="deal", CRM_ENTITY=7).json()["result"]
        == []
    )
    assert (
        rest("imopenlines.crm.chat.getLastId", CRM_ENTITY_TYPE="deal", CRM_ENTITY=7).json()[
            "result"
        ]
        == chat.id
    )
    assert (
        rest("imopenlines.crm.chat.getLastId", CRM_ENTITY_TYPE="deal", CRM_ENTITY=9).json()["error"]
        == "CRM_CHAT_EMPTY_CRM_DATA"
    )


def test_workflows_admin_only_and_document_checks(installed: Portal) -> None:
    admin = Rest(installed, installed.tokens_for(1).access_token)
    manager = Rest(installed, installed.tokens_for(2).access_token)
    request = fixture("bizproc_workflow_template_list_deal.request.DERIVED.json")
    listed = admin("bizproc.workflow.template.list", **request).json()
    assert [t["DOCUMENT_TYPE"] for t in listed["result"]] == ["DEAL"] and "total" in listed
    assert manager("bizproc.workflow.template.list", **request).status_code == 403
    start = fixture("bizproc_workflow_start_deal.request.DERIVED.json")
    assert admin("bizproc.workflow.start", **start).json()["error"] == "ERROR_WRONG_WORKFLOW_ID"
    start["TEMPLATE_ID"] = 525
    assert isinstance(admin("bizproc.workflow.start", **start).json()["result"], str)
    assert manager("bizproc.workflow.start", **start).json()["error"] == "ACCESS_DENIED"
    mismatch = {**start, "TEMPLATE_ID": 526}
    assert admin("bizproc.workflow.start", **mismatch).json()["error_description"] == (
        "Template type and DOCUMENT_ID mismatch!"
    )
    installed.license = "ru_free"
    assert admin("bizproc.workflow.start", **start).status_code == 403
    assert len(installed.workflows) == 1


def test_session_history_has_the_documented_shape_and_authors(
    rest: Rest, installed: Portal
) -> None:
    from b24app.bitrix.chat_history import client_message
    from b24app.bitrix.chat_history import parse_history

    chat = installed.open_chat([("lead", 12)])
    said = installed.client_writes(chat.id, "1")
    answered = installed.operator_writes(chat.id, 2, "Спасибо!")
    got = rest("imopenlines.session.history.get", CHAT_ID=chat.id).json()["result"]
    documented = fixture("imopenlines_session_history_get.response.json")["result"]
    assert set(got) == set(documented)
    assert set(got["chat"][str(chat.id)]) >= set(documented["chat"]["1763"])
    assert set(got["message"][str(said)]) == set(documented["message"]["85851"])
    assert set(got["users"][str(chat.client_user_id)]) >= set(documented["users"]["103"])
    assert got["chat"][str(chat.id)]["entityData2"] == "LEAD|12|COMPANY|0|CONTACT|0|DEAL|0"
    parsed = parse_history(got, chat.id)
    assert parsed is not None
    assert client_message(parsed, said) is not None
    assert client_message(parsed, answered) is None
    by_session = rest("imopenlines.session.history.get", SESSION_ID=got["sessionId"]).json()
    assert by_session["result"]["chatId"] == chat.id
    assert rest("imopenlines.session.history.get").json()["error"] == "MISSING_REQUIRED_PARAM"
    missing = rest("imopenlines.session.history.get", CHAT_ID=999999).json()
    assert missing["error"] == "INVALID_SESSION_ID"
