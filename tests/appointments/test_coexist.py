"""Issue 22, items 2 and 4, end to end through a real ``b24app worker``.

* Where Bitrix24 Booking itself sends the confirmation request or the reminder (its resource
  type's settings, on by default), the app sends no second copy; where it does not, the app
  reminds; the settings page shows who sends what per resource type.
* A Telegram and a WhatsApp client's «1» reach the app by a documented route — the chat read
  back while the answer is awaited — since ``ONOPENLINEMESSAGEADD`` reaches only an app whose
  own connector the line uses; a forged «1» still confirms nothing.

Offsets are policy minutes (``B24APP_SLA_SECONDS_PER_MINUTE=1``), as in test_integration.py;
waits are deadlines, never timings.
"""

from __future__ import annotations

from typing import Any

import pytest

from b24app.context import Services
from b24app.storage.models import AppointmentStatus
from tests.appointments.conftest import appointments
from tests.appointments.conftest import drive_reminders
from tests.appointments.conftest import make_journey
from tests.appointments.test_forged import post_forged
from tests.appointments.test_integration import at
from tests.appointments.test_integration import configure
from tests.appointments.test_integration import fast  # noqa: F401
from tests.appointments.test_integration import fired
from tests.appointments.test_integration import pending
from tests.placements.conftest import Framed
from tests.plugins.worker import WorkerProcess
from tests.sla.test_integration import wait_for

BOOKING_SENDS = {"isConfirmationNotificationOn": True, "isReminderNotificationOn": True}


def by_deal(services: Services) -> dict[int, Any]:
    return {a.deal_id: a for a in appointments(services)}


def client_chat(portal: Any, deal: int, connector: str) -> Any:
    """A messenger chat as Bitrix24 has one: the client wrote first (a WhatsApp chat opens
    with the client's message, and so does its 24 h window; b24app/reach/channels.py)."""
    chat = portal.open_chat([("deal", deal)], connector_id=connector)
    with portal.lock:
        portal.chats.lines.add_message(chat, chat.client_user_id, "client", "Здравствуйте")
    return chat


def ours(portal: Any, chat_id: int) -> list[dict[str, Any]]:
    """What the app wrote into the chat (not the client's own messages)."""
    return [m for m in portal.chat_messages(chat_id) if m["kind"] != "client"]


def test_bookings_own_reminders_on_no_second_copy_off_the_app_reminds(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, fast: None,  # noqa: F811
    client: Any, rq_worker: WorkerProcess,
) -> None:  # fmt: skip
    """Resource type 1 (the master) has Booking's own confirmation and reminder on, as
    Bitrix24's defaults are; type 2 (the rooms) has them off. A booking of the master gets no
    reminder from the app, a booking of a room gets the app's; with the admin's nudge on the
    master's booking gets the short one only. The settings page says so per type."""
    installed_portal.booking.types.switch(1, **BOOKING_SENDS)
    # read again at the next booking, as ten minutes after the install's reading
    services.redis.delete(f"b24app:booking-notices:{installed_portal.member_id}")
    configure(services, portal_id, offsets=["3h", "2h"])
    for deal in (601, 602):
        make_journey(services, portal_id, deal_id=deal)
    master = installed_portal.open_chat([("deal", 601)])
    room = client_chat(installed_portal, 602, "whatsapp")
    rq_worker.start()
    first = installed_portal.add_booking(at(600), name="Стрижка", deal_id=601, resource_ids=[1])
    installed_portal.add_booking(at(600), name="Кабинет", deal_id=602, resource_ids=[2])
    wait_for(lambda: len(by_deal(services)) == 2 and len(pending(services)) == 2)
    rows = by_deal(services)
    assert rows[601].booking_sends == ["confirmation", "reminder"]
    assert rows[602].booking_sends == []
    drive_reminders(services, portal_id, spacing=1.0)  # the 3 h and 2 h ones, not 60 s apart
    wait_for(lambda: len(fired(services)) == 2, timeout=90)
    assert installed_portal.chat_messages(master.id) == []  # no second copy
    assert len(ours(installed_portal, room.id)) == 2  # Booking sends nothing here
    # the admin wants the 2 h nudge beside Booking's own messages
    configure(services, portal_id, booking_nudge=True)
    installed_portal.move_booking(first, at(660))
    wait_for(lambda: len(pending(services)) == 1)
    (nudge,) = pending(services)
    assert nudge.level.startswith("2h@")
    with services.db() as session:
        from b24app.storage.portals import get_portal

        stored = get_portal(session, installed_portal.member_id)
        assert stored is not None
        framed = Framed(installed_portal, stored.id, client)
    html = framed.open("/app/settings", "DEFAULT", None).get_data(as_text=True)
    assert 'id="booking-sides"' in html and html.count('class="booking-type"') == 2
    master_row, room_row = html.split('class="booking-type"')[1:3]
    assert "Мастера" in master_row and "просьбу подтвердить" in master_row
    assert "напоминания: 2h" in master_row
    assert "Кабинеты" in room_row and "напоминания: 3h, 2h" in room_row


def test_telegram_and_whatsapp_clients_1_reach_the_app_by_the_chat_read_back(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, fast: None,  # noqa: F811
    rq_worker: WorkerProcess, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Neither line is the app's own connector, so Bitrix24 sends the app no
    ``ONOPENLINEMESSAGEADD`` for them: the answer is read back from each chat while it is
    awaited, and confirms. A forged «1» (an operator's message claimed as the client's) is read
    back too, and confirms nothing."""
    # the read-back ladder (appointments/watch.py: 3, 15, 60, 240 policy minutes) at half speed
    monkeypatch.setenv("B24APP_SLA_SECONDS_PER_MINUTE", "0.5")
    configure(services, portal_id, offsets=["8m"])
    make_journey(services, portal_id, deal_id=611)
    make_journey(services, portal_id, deal_id=612)
    telegram = installed_portal.open_chat([("deal", 611)], connector_id="telegrambot")
    whatsapp = client_chat(installed_portal, 612, "whatsapp")
    rq_worker.start()
    installed_portal.add_booking(at(600), name="Маникюр", deal_id=611, resource_ids=[2])
    installed_portal.add_booking(at(600), name="Педикюр", deal_id=612, resource_ids=[3])
    wait_for(lambda: len(pending(services)) == 2)
    drive_reminders(services, portal_id)
    wait_for(lambda: len(fired(services)) == 2, timeout=90)
    operator = installed_portal.operator_writes(whatsapp.id, 2, "1")
    post_forged(installed_portal, whatsapp.id, operator, "1")

    def reads(chat_id: int) -> int:
        return len([c for c in emulator.calls("imopenlines.session.history.get",
                                              portal=installed_portal)
                    if str(c.params.get("CHAT_ID")) == str(chat_id)])  # fmt: skip

    # the forged claim's own read and at least two reads of the chat while awaited
    wait_for(lambda: reads(whatsapp.id) >= 3, timeout=90)
    assert {a.status for a in appointments(services)} == {AppointmentStatus.SCHEDULED}
    installed_portal.client_writes(telegram.id, "1")
    installed_portal.client_writes(whatsapp.id, "1")
    wait_for(
        lambda: {a.status for a in appointments(services)} == {AppointmentStatus.CONFIRMED},
        timeout=90,
    )
    assert not [c for c in emulator.calls() if c.method == "event.offline.get"]


def test_where_the_assistants_bot_holds_the_chat_it_hands_the_answer_over(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, run_jobs: Any
) -> None:
    """The other documented route: the line's bot receives the client's «1»
    (``ONIMBOTV2MESSAGEADD``); it is read back and confirms the reminded appointment at once
    (no read of the chat needed), and the assistant does not answer it as a dialog turn."""
    from tests.appointments.test_flow import book
    from tests.appointments.test_flow import fire_next
    from tests.assistant.conftest import enable_assistant

    enable_assistant(services, installed_portal)
    make_journey(services, portal_id, deal_id=621)
    chat = client_chat(installed_portal, 621, "whatsapp")
    book(emulator, installed_portal, run_jobs, 30, deal_id=621, resource_ids=[2])
    assert fire_next(services) == "fired"
    bot_said = [m for m in installed_portal.chat_messages(chat.id) if m["kind"] == "bot"]
    installed_portal.client_writes(chat.id, "1")
    assert emulator.wait_idle()
    run_jobs()
    assert appointments(services)[0].status == AppointmentStatus.CONFIRMED
    assert [m for m in installed_portal.chat_messages(chat.id) if m["kind"] == "bot"] == bot_said
