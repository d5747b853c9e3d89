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


def test_no_expiry_message_after_stop(
    emulator: Any, installed_portal: Any, services: Services, rq_worker: Any
) -> None:
    """A pre-booking's expiry is told to the client (b24app/assistant/holds.py) — not after
    the client wrote «СТОП»: the hold is released all the same, the chat hears nothing more."""
    import datetime as dt

    from rq.job import Job

    from tests.assistant.conftest import enable_assistant
    from tests.assistant.test_holds import dialog_of
    from tests.assistant.test_holds import pre_book
    from tests.assistant.test_worker import _open_day
    from tests.assistant.test_worker import start_chat
    from tests.consent.conftest import worker_idle
    from tests.waiting import wait_for

    enable_assistant(services, installed_portal, hold_minutes=45)
    rq_worker.start()
    chat = start_chat(emulator, installed_portal, services)
    assert "Подтверждаете" in pre_book(chat, _open_day(3), "8 912 345 67 89")
    held = dialog_of(services, chat)
    chat.say("СТОП")  # confirmed by the bot or, its event read first, by the open line's path
    wait_for(lambda: worker_idle(emulator, services), what="the «СТОП» read")
    messages = installed_portal.chat_messages(chat.chat_id)
    assert sum("отписались" in m["text"] for m in messages) == 1
    said = len(messages)
    registry = services.queue("timers").scheduled_job_registry
    job_id = f"asst-hold-{installed_portal.member_id}-{held.id}"  # holds.release_job_id
    registry.schedule(Job.fetch(job_id, connection=services.redis), dt.datetime.now(dt.UTC))
    wait_for(lambda: dialog_of(services, chat).booked_at is None, what="the hold's release")
    wait_for(lambda: worker_idle(emulator, services), what="the release job done")
    assert len(installed_portal.chat_messages(chat.chat_id)) == said
