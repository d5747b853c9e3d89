"""«СТОП» written to the assistant's bot: recorded once and confirmed once, whichever of the
chat's two events (the bot's, the open line's) is read first; the dialog is not advanced
(b24app/assistant/service.py ``_opted_out``, b24app/consent/optout.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from b24app.consent.contact import Contact
from b24app.consent.policy import may_message
from b24app.context import Services
from b24app.storage.models import ConsentKind
from tests.assistant.conftest import open_client_chat
from tests.consent.conftest import records


def test_stop_to_the_bot_is_confirmed_once(
    emulator: Any, assistant_portal: Any, services: Services, settle_jobs: Callable[[], None]
) -> None:
    """The greeting, then «СТОП»: one confirmation in the chat, one record; «стоп» again:
    nothing more is written, nothing more is recorded."""
    client = open_client_chat(emulator, assistant_portal, settle_jobs)
    assert client.bot_messages()  # the greeting
    client.say("СТОП")
    confirmations = [
        m for m in assistant_portal.chat_messages(client.chat_id)
        if m["kind"] != "client" and "отписались" in m["text"]
    ]  # fmt: skip
    assert len(confirmations) == 1
    (record,) = records(services)
    assert record.kind == ConsentKind.OPT_OUT and record.chat_id == client.chat_id
    assert record.channel == "telegrambot" and record.confirmed_at is not None
    before = len(assistant_portal.chat_messages(client.chat_id))
    client.say("стоп")
    assert len(assistant_portal.chat_messages(client.chat_id)) == before + 1  # the client's only
    assert len(records(services)) == 1
    with services.db() as session:
        assert not may_message(session, record.portal_id, Contact(chat_id=client.chat_id),
                               "service")  # fmt: skip
