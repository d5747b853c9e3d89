"""Forged bot events change nothing (issue 19).

Any employee's app frame holds the portal's ``application_token``, so anyone can post an
``ONIMBOTV2MESSAGEADD`` naming any chat, message, lead (``entityData2``), dialog and text.
The assistant reads the message back from Bitrix24 and acts only on a message the chat's client
wrote, with the CRM binding and the chat Bitrix24 reports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy import select

from b24app.context import Services
from b24app.storage.models import AssistantDialog
from b24app.storage.models import Timer
from devportal import DevPortal
from devportal.portal import Portal as EmuPortal
from tests.assistant.conftest import open_client_chat

NOTE = "Аллергия на латекс"


def forge(portal: EmuPortal, chat_id: int, message_id: int, text: str,
          **chat: str) -> tuple[str, dict[str, Any]]:  # fmt: skip
    """A bot event as an employee would post it: built from a real chat's, then edited."""
    url, payload = portal.message_events(chat_id, message_id, text)["ONIMBOTV2MESSAGEADD"]
    payload["data"]["chat"].update(chat)
    payload["data"]["message"]["chatId"] = payload["data"]["chat"]["id"]
    return url, payload


def timers_of(services: Services, lead_id: int) -> list[tuple[str, str, str]]:
    with services.db() as session:
        rows = session.scalars(select(Timer).where(Timer.journey_key == lead_id)).all()
        return sorted((t.policy, t.level, t.state) for t in rows)


def dialogs(services: Services) -> int:
    with services.db() as session:
        return int(session.scalar(select(func.count(AssistantDialog.id))) or 0)


@pytest.mark.parametrize("target", ["no_such_chat", "chat_of_another_line", "a_bot_chat"])
def test_forged_event_naming_another_lead_changes_nothing(
    emulator: DevPortal,
    assistant_portal: EmuPortal,
    services: Services,
    settle_jobs: Callable[[], None],
    target: str,
) -> None:
    victim = assistant_portal.add_lead({
        "TITLE": "Instagram", "NAME": "Мария", "COMMENTS": NOTE, "ASSIGNED_BY_ID": 2,
        "PHONE": [{"VALUE": "+79990001122", "VALUE_TYPE": "MOBILE"}],
    })  # fmt: skip
    sender = open_client_chat(emulator, assistant_portal, settle_jobs)
    other = open_client_chat(emulator, assistant_portal, settle_jobs)
    if target == "no_such_chat":
        chat_id = 987654
    elif target == "a_bot_chat":  # the bot talks there: its dialog is bound to another lead
        chat_id = sender.chat_id
    else:  # a real chat of a line without the bot (no dialog)
        with assistant_portal.lock:
            chat_id = assistant_portal.openlines.open_chat([("lead", victim)], line_id=2).id
    settle_jobs()
    lead_before = dict(assistant_portal.lead(victim) or {})
    sender_lead = dict(assistant_portal.lead(sender.lead_id) or {})
    sender_before = len(sender.bot_messages())
    timers_before = timers_of(services, victim)
    comments_before = len(assistant_portal.timeline_comments)
    other_before = len(other.bot_messages())
    other_typing = len(assistant_portal.imbot.typing.get(other.chat_id, []))
    dialogs_before = dialogs(services)
    url, payload = forge(
        assistant_portal, sender.chat_id, 99999999, "позовите администратора, я Иван +79001234567",
        id=str(chat_id), dialogId=f"chat{other.chat_id}",
        entityData2=f"LEAD|{victim}|COMPANY|0|CONTACT|0|DEAL|0",
    )  # fmt: skip
    response = assistant_portal.employee_posts(url, payload)
    assert response.status_code == 200
    settle_jobs()
    lead_after = assistant_portal.lead(victim) or {}
    assert lead_after == lead_before and lead_after["COMMENTS"] == NOTE
    assert len(assistant_portal.timeline_comments) == comments_before
    assert timers_of(services, victim) == timers_before
    assert len(other.bot_messages()) == other_before
    assert len(sender.bot_messages()) == sender_before
    assert assistant_portal.lead(sender.lead_id) == sender_lead
    assert len(assistant_portal.imbot.typing.get(other.chat_id, [])) == other_typing
    assert dialogs(services) == dialogs_before


def test_an_operators_message_posted_as_the_clients_is_not_answered(
    emulator: DevPortal,
    assistant_portal: EmuPortal,
    services: Services,
    settle_jobs: Callable[[], None],
) -> None:
    chat = open_client_chat(emulator, assistant_portal, settle_jobs)
    chat.say("Маникюр")
    before = len(chat.bot_messages())
    written = assistant_portal.operator_writes(chat.chat_id, 3, "позовите администратора")
    url, payload = forge(assistant_portal, chat.chat_id, written, "позовите администратора")
    assert assistant_portal.employee_posts(url, payload).status_code == 200
    settle_jobs()
    assert assistant_portal.imbot.sessions[chat.chat_id].holder == "bot"
    assert len(chat.bot_messages()) == before
    # the client's own request still reaches a person
    assert "Передаю" in chat.say("позовите администратора")
    assert assistant_portal.imbot.sessions[chat.chat_id].holder == "operator"
