"""Each messenger's rules, delivery rather than acceptance, quiet hours: end to end through a
real ``b24app worker`` (``B24APP_SLA_SECONDS_PER_MINUTE=1``: "8m" is eight seconds and the
delivery check comes ten seconds after a send), plus a VK chat run in-process.

The emulator's connectors (``devportal.connectors``): a WhatsApp chat takes a message outside
the 24 h window and marks it undelivered a second later; a client who refused the sender
(VK 901, WhatsApp 131026) likewise.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from b24app.context import Services
from b24app.storage.models import ReminderAttempt
from b24app.storage.models import TimerState
from b24app.timers.fire import fire_timer
from devportal.connectors import backdate_client
from tests.appointments.conftest import appointment_timers
from tests.appointments.conftest import drive_reminders
from tests.appointments.conftest import make_journey
from tests.appointments.conftest import utc_now
from tests.appointments.test_integration import at
from tests.appointments.test_integration import configure
from tests.appointments.test_integration import pending
from tests.plugins.worker import WorkerProcess
from tests.sla.test_integration import wait_for

WHATSAPP = "whatsappbytwilio"


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("B24APP_SLA_SECONDS_PER_MINUTE", "1")


def states(services: Services) -> list[tuple[str, str, str]]:
    """(channel, state, error) of every attempt, in order."""
    with services.db() as session:
        rows = session.scalars(select(ReminderAttempt).order_by(ReminderAttempt.id))
        return [(a.channel, a.state, a.error) for a in rows]


def operator_texts(portal: Any, chat_id: int) -> list[str]:
    return [m["text"] for m in portal.chat_messages(chat_id) if m["kind"] != "client"]


def whatsapp_client(portal: Any, deal_id: int, silent_seconds: float) -> Any:
    """A WhatsApp chat on the deal whose client last wrote ``silent_seconds`` ago."""
    chat = portal.open_chat([("deal", deal_id)], connector_id=WHATSAPP)
    portal.client_writes(chat.id, "Здравствуйте, хочу записаться")
    with portal.lock:
        backdate_client(chat, silent_seconds)
    return chat


def test_a_whatsapp_client_silent_for_3_days_gets_the_reminder_by_the_business_process(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, fast: None,
    rq_worker: WorkerProcess,
) -> None:  # fmt: skip
    """Outside the 24 h window free text would never arrive: the chat is not written to, the
    admin's business process (the portal's SMS / WhatsApp template) takes the reminder."""
    configure(services, portal_id, offsets=["8m"], workflow={"template_id": 525})
    make_journey(services, portal_id, deal_id=701)
    chat = whatsapp_client(installed_portal, 701, 3 * 86400)
    rq_worker.start()
    installed_portal.add_booking(at(600), name="Маникюр", deal_id=701)
    wait_for(lambda: len(pending(services)) == 1)
    drive_reminders(services, portal_id)
    wait_for(lambda: len(installed_portal.workflows) == 1, timeout=90)
    wait_for(lambda: len(states(services)) == 2)
    assert operator_texts(installed_portal, chat.id) == []  # nothing into the closed window
    assert states(services) == [("chat", "failed", "window_closed"),
                                ("workflow", "unknown", "")]  # fmt: skip
    assert "Маникюр" in installed_portal.workflows[0]["parameters"]["reminder_text"]


def test_inside_the_window_it_goes_to_the_chat_and_is_marked_delivered(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, fast: None,
    rq_worker: WorkerProcess,
) -> None:  # fmt: skip
    """The client wrote an hour ago: the chat takes it; the WhatsApp delivery mark read back
    at the check makes the attempt "delivered"; no business process runs."""
    configure(services, portal_id, offsets=["8m"], workflow={"template_id": 525})
    make_journey(services, portal_id, deal_id=702)
    chat = whatsapp_client(installed_portal, 702, 3600)
    rq_worker.start()
    installed_portal.add_booking(at(600), name="Стрижка", deal_id=702)
    wait_for(lambda: len(pending(services)) == 1)
    drive_reminders(services, portal_id)
    wait_for(lambda: [s[1] for s in states(services)] == ["delivered"], timeout=90)
    assert len(operator_texts(installed_portal, chat.id)) == 1
    assert installed_portal.workflows == []


def test_a_whatsapp_message_marked_undelivered_later_falls_through(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, fast: None,
    rq_worker: WorkerProcess,
) -> None:  # fmt: skip
    """The send is accepted, the messenger says "not delivered" afterwards: by the check the
    attempt is "failed" with the messenger's reason and the business process sends it."""
    configure(services, portal_id, offsets=["8m"], workflow={"template_id": 525})
    make_journey(services, portal_id, deal_id=703)
    chat = whatsapp_client(installed_portal, 703, 600)
    installed_portal.openlines.connectors.refuse(chat.id)
    rq_worker.start()
    installed_portal.add_booking(at(600), name="Окрашивание", deal_id=703)
    wait_for(lambda: len(pending(services)) == 1)
    drive_reminders(services, portal_id)
    wait_for(lambda: len(installed_portal.workflows) == 1, timeout=90)
    wait_for(lambda: len(states(services)) == 2)
    assert len(operator_texts(installed_portal, chat.id)) == 1  # accepted…
    assert states(services) == [("chat", "failed", "131026"),  # …not delivered
                                ("workflow", "unknown", "")]  # fmt: skip


def _zone_where_hour_is(hour: int, moment: dt.datetime) -> str:
    """An ``Etc/GMT±N`` zone where ``moment`` (naive UTC) falls in local ``hour``."""
    shift = (hour - moment.hour) % 24
    shift = shift - 24 if shift > 14 else shift
    return f"Etc/GMT{-shift:+d}" if shift else "Etc/GMT"


def test_a_7am_reminder_moves_out_of_quiet_hours_in_the_bookings_time_zone(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, fast: None,
    rq_worker: WorkerProcess,
) -> None:  # fmt: skip
    """A reminder due at 07:xx in the booking's own time zone (not the portal's) moves to the
    end of the quiet hours, before the visit; then it is sent."""
    start = at(900)
    due = (start - dt.timedelta(seconds=600)).replace(tzinfo=None)
    zone = _zone_where_hour_is(7, due)
    local_due = due.replace(tzinfo=dt.UTC).astimezone(ZoneInfo(zone))
    end = (local_due + dt.timedelta(minutes=3)).replace(second=0, microsecond=0)
    assert end.hour == 7 or end.hour == 8
    configure(services, portal_id, offsets=["600m"],  # 600 s before the visit
              quiet_hours={"from": "21:00", "to": end.strftime("%H:%M")})  # fmt: skip
    make_journey(services, portal_id, deal_id=704)
    chat = installed_portal.open_chat([("deal", 704)])
    rq_worker.start()
    installed_portal.add_booking(start, name="Чистка", deal_id=704, time_zone=zone)
    wait_for(lambda: len(pending(services)) == 1)
    (timer,) = pending(services)
    assert timer.due_at == end.astimezone(dt.UTC).replace(tzinfo=None)  # moved out
    assert due < timer.due_at < start.replace(tzinfo=None)  # never after the visit
    drive_reminders(services, portal_id)
    wait_for(lambda: len(operator_texts(installed_portal, chat.id)) == 1, timeout=90)


def test_a_same_day_booking_gets_one_confirmation_request(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, fast: None,
    rq_worker: WorkerProcess,
) -> None:  # fmt: skip
    """Booked less than the first offset ahead: one confirmation request at once, no "24 h"
    reminder; the later offset still comes."""
    configure(services, portal_id, offsets=["24h", "8m"])  # 24h = 1440 s: already past
    make_journey(services, portal_id, deal_id=705)
    chat = installed_portal.open_chat([("deal", 705)])
    rq_worker.start()
    installed_portal.add_booking(at(600), name="Маникюр", deal_id=705)
    wait_for(lambda: len(operator_texts(installed_portal, chat.id)) == 1, timeout=90)
    (text,) = operator_texts(installed_portal, chat.id)
    assert "вы записаны: Маникюр" in text and "1 — подтверждаю" in text
    assert "напоминаем" not in text
    levels = sorted(t.level.split("@")[0] for t in appointment_timers(services)
                    if t.policy == "appointment")  # fmt: skip
    assert levels == ["8m", "confirm"]
    drive_reminders(services, portal_id)
    wait_for(lambda: len(operator_texts(installed_portal, chat.id)) == 2, timeout=90)
    assert "напоминаем" in operator_texts(installed_portal, chat.id)[1]


def test_a_vk_user_who_refused_messages_falls_through_and_the_chat_is_skipped_after(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, run_jobs: Any
) -> None:
    """VK answers 901 after accepting: the check falls through to the to-do; the next
    reminder skips the refused chat without writing to it."""
    from tests.appointments.test_flow import book

    make_journey(services, portal_id, deal_id=706)
    chat = installed_portal.open_chat([("deal", 706)], connector_id="vkgroup")
    installed_portal.openlines.connectors.refuse(chat.id)
    installed_portal.openlines.connectors.mark_delay = 0.0
    book(emulator, installed_portal, run_jobs, 30, deal_id=706)
    first = [t for t in appointment_timers(services) if t.state == TimerState.PENDING][0]
    assert fire_timer(first.id) == "fired"
    (check,) = [t for t in appointment_timers_all(services) if t.policy == "reminder_delivery"]
    assert check.due_at > utc_now()  # the deadline, after the send
    assert fire_timer(check.id) == "fired"
    assert states(services)[:2] == [("chat", "failed", "901"), ("workflow", "failed",
                                                              "no_workflow_configured")]  # fmt: skip
    assert states(services)[2][:2] == ("todo", "delivered")
    second = [t for t in appointment_timers(services) if t.state == TimerState.PENDING][0]
    assert fire_timer(second.id) == "fired"
    assert states(services)[3] == ("chat", "failed", "vk_901")
    assert len(operator_texts(installed_portal, chat.id)) == 1  # only the first, refused one


def appointment_timers_all(services: Services) -> list[Any]:
    from b24app.storage.models import Timer

    with services.db() as session:
        rows = list(session.scalars(select(Timer).order_by(Timer.id)))
        session.expunge_all()
        return rows


def test_no_chat_means_no_join_with_an_empty_chat_id(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, run_jobs: Any
) -> None:
    """No active chat: ``imopenlines.crm.chat.user.add`` is never called (an empty
    ``CHAT_ID`` means "the item's last chat" — an old closed one would get the sender)."""
    from tests.appointments.test_flow import book
    from tests.appointments.test_flow import fire_next

    make_journey(services, portal_id, deal_id=707)
    old = installed_portal.open_chat([("deal", 707)])
    with installed_portal.lock:
        old.active = False  # an old, closed chat of the deal
    book(emulator, installed_portal, run_jobs, 30, deal_id=707)
    assert fire_next(services) == "fired"
    assert emulator.calls("imopenlines.crm.chat.user.add", portal=installed_portal) == []
    assert states(services)[0] == ("chat", "failed", "no_active_chat")
    assert installed_portal.chat_messages(old.id) == []


def test_a_chat_found_on_the_contact_is_written_to_on_the_contact_next_time(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, run_jobs: Any
) -> None:
    """The chat is bound to the contact, not the booking's deal: the booking's own read finds
    it (look-up + history in its batch), so the first reminder is one request (join + send),
    and the next one names the contact again (one request)."""
    from tests.appointments.test_flow import book
    from tests.appointments.test_flow import fire_next

    contact = installed_portal.add_contact("Ольга")
    make_journey(services, portal_id, deal_id=708, contact_id=contact)
    chat = installed_portal.open_chat([("contact", contact)])
    book(emulator, installed_portal, run_jobs, 30, deal_id=708, contact_id=contact)
    for requests in (1, 1):
        before = emulator.http_requests(installed_portal)
        assert fire_next(services) == "fired"
        assert emulator.http_requests(installed_portal) - before == requests
    assert len(operator_texts(installed_portal, chat.id)) == 2


def last_inbound(services: Services, chat_id: int) -> dt.datetime | None:
    from b24app.storage.models import ClientChat

    with services.db() as session:
        row = session.scalars(select(ClientChat).where(ClientChat.chat_id == chat_id)).one()
        return row.last_inbound_at


def test_a_message_to_the_assistants_bot_reopens_the_messenger_window(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int,
    rq_worker: WorkerProcess,
) -> None:  # fmt: skip
    """Where the assistant's bot holds the chat, the client's messages reach the app as
    ``ONIMBOTV2MESSAGEADD`` (form-encoded): the client's last message — what the 24 h window
    is decided by — is refreshed both when the message answers a reminder (the reply route)
    and when the assistant takes it. Real policy minutes: no read-back of the chat in
    between could refresh it instead."""
    from tests.appointments.conftest import appointments
    from tests.assistant.conftest import enable_assistant
    from tests.assistant.test_worker import turns

    enable_assistant(services, installed_portal)
    configure(services, portal_id, offsets=["8m"], workflow={"template_id": 525})
    make_journey(services, portal_id, deal_id=708)
    make_journey(services, portal_id, deal_id=709)
    silent = whatsapp_client(installed_portal, 708, 3 * 86400)  # → the business process
    talking = whatsapp_client(installed_portal, 709, 3600)  # → the chat
    rq_worker.start()
    installed_portal.add_booking(at(600), name="Маникюр", deal_id=708)
    installed_portal.add_booking(at(600), name="Стрижка", deal_id=709)
    wait_for(lambda: len(pending(services)) == 2)
    drive_reminders(services, portal_id)
    wait_for(lambda: len(states(services)) == 3, timeout=90)
    assert sorted(states(services)) == [("chat", "accepted", ""), ("chat", "failed",
                                        "window_closed"), ("workflow", "unknown", "")]  # fmt: skip
    before = {c: last_inbound(services, c) for c in (silent.id, talking.id)}
    assert all(t is not None and t < utc_now() - dt.timedelta(minutes=30) for t in before.values())
    written_at = utc_now().replace(microsecond=0) - dt.timedelta(seconds=1)
    installed_portal.client_writes(talking.id, "1")  # the reminder's answer
    hello = installed_portal.client_writes(silent.id, "Здравствуйте, а можно пораньше?")
    wait_for(lambda: {a.status for a in appointments(services)
                      if a.deal_id == 709} == {"confirmed"}, timeout=90)  # fmt: skip
    wait_for(lambda: any(t.message_id == hello for t in turns(services)), timeout=90)
    for chat in (silent, talking):
        refreshed = last_inbound(services, chat.id)
        assert refreshed is not None and refreshed >= written_at, chat.id


def check_timer(services: Services) -> Any:
    """The latest delivery check timer."""
    return [t for t in appointment_timers_all(services) if t.policy == "reminder_delivery"][-1]


def quiet_from_now(services: Services, portal_id: int, minutes: int) -> dt.datetime:
    """Quiet hours (UTC, the bookings' zone here) that began a minute ago and end in about
    ``minutes``; returns their end (naive UTC)."""
    now = utc_now()
    end = (now + dt.timedelta(minutes=minutes)).replace(second=0, microsecond=0)
    begin = (now - dt.timedelta(minutes=1)).strftime("%H:%M")
    configure(services, portal_id, quiet_hours={"from": begin, "to": end.strftime("%H:%M")})
    return end


def test_a_fall_through_at_the_check_keeps_out_of_quiet_hours_a_managers_todo_goes_at_once(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, run_jobs: Any
) -> None:
    """A WhatsApp send is accepted and marked undelivered; its check comes inside the client's
    quiet hours. The business process (it texts the client) moves to the morning window and
    goes then, not now. For a visit inside the quiet hours no time is left: the manager's to-do
    goes at once, the client gets nothing."""
    from tests.appointments.test_flow import book
    from tests.appointments.test_flow import fire_next

    configure(services, portal_id, workflow={"template_id": 525},
              quiet_hours={"from": "00:00", "to": "00:00"})  # fmt: skip
    installed_portal.openlines.connectors.mark_delay = 0.0
    make_journey(services, portal_id, deal_id=711)
    chat = whatsapp_client(installed_portal, 711, 600)
    installed_portal.openlines.connectors.refuse(chat.id)
    book(emulator, installed_portal, run_jobs, 30, deal_id=711, time_zone="Etc/GMT")
    assert fire_next(services) == "fired"
    morning = quiet_from_now(services, portal_id, 30)
    assert fire_timer(check_timer(services).id) == "moved"
    assert installed_portal.workflows == []  # not into the quiet hours
    assert states(services) == [("chat", "failed", "131026")]
    moved = check_timer(services)
    assert moved.state == TimerState.PENDING and moved.due_at == morning
    configure(services, portal_id, quiet_hours={"from": "00:00", "to": "00:00"})  # morning
    assert fire_timer(moved.id) == "fired"
    assert len(installed_portal.workflows) == 1
    assert states(services)[1] == ("workflow", "unknown", "")

    make_journey(services, portal_id, deal_id=712)
    late = whatsapp_client(installed_portal, 712, 600)
    installed_portal.openlines.connectors.refuse(late.id)
    book(emulator, installed_portal, run_jobs, 1 / 3, deal_id=712, time_zone="Etc/GMT")
    assert fire_next(services) == "fired"  # the same-day confirmation request
    quiet_from_now(services, portal_id, 60)  # the visit, 20 minutes ahead, inside them
    assert fire_timer(check_timer(services).id) == "fired"
    assert len(installed_portal.workflows) == 1  # no SMS to the client
    assert [s[:2] for s in states(services)[2:]] == [("chat", "failed"), ("todo", "delivered")]


def test_the_chat_read_back_for_the_answer_serves_the_delivery_check(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, run_jobs: Any
) -> None:
    """The reply watch's read of the chat shows the reminder's delivery mark: the attempt is
    marked by it, and the check at its deadline reads nothing of its own."""
    from b24app.appointments.replies import watch_job
    from tests.appointments.conftest import appointments
    from tests.appointments.test_flow import book
    from tests.appointments.test_flow import fire_next

    installed_portal.openlines.connectors.mark_delay = 0.0
    make_journey(services, portal_id, deal_id=713)
    chat = whatsapp_client(installed_portal, 713, 600)
    book(emulator, installed_portal, run_jobs, 30, deal_id=713)
    assert fire_next(services) == "fired"
    assert states(services) == [("chat", "accepted", "")]
    (appt,) = appointments(services)
    assert appt.reminded_at is not None
    watch_job(installed_portal.member_id, appt.id, chat.id, appt.reminded_at.isoformat(), 0, 0)
    assert states(services) == [("chat", "delivered", "")]
    before = emulator.http_requests(installed_portal)
    assert fire_timer(check_timer(services).id) == "fired"
    assert emulator.http_requests(installed_portal) == before  # no read of its own
    assert states(services) == [("chat", "delivered", "")]


def test_a_chat_the_client_wrote_in_serves_the_assistants_pre_booking_in_one_request(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, run_jobs: Any
) -> None:
    """The client writes to the assistant's bot in a WhatsApp chat bound to their lead; the
    message, read back, tells the app the chat's messenger, its client's last message and its
    CRM item. A pre-booking the assistant made on that lead (no booking read of its own) is
    then reminded in that chat in one request (join + send), not two."""
    from b24app.appointments.remind import schedule_appointment
    from b24app.appointments.store import upsert_appointment
    from tests.appointments.test_flow import fire_next
    from tests.assistant.conftest import enable_assistant

    enable_assistant(services, installed_portal)
    lead = installed_portal.add_lead({"TITLE": "WhatsApp", "ASSIGNED_BY_ID": 2})
    chat = installed_portal.open_chat([("lead", lead)], connector_id=WHATSAPP)
    installed_portal.client_writes(chat.id, "Здравствуйте, хочу на маникюр")
    assert emulator.wait_idle()
    run_jobs()
    with services.db() as session:
        appt, _ = upsert_appointment(session, portal_id, starts_at=utc_now() + dt.timedelta(
            hours=30), source="assistant", lead_id=lead, service="Маникюр")  # fmt: skip
        session.flush()
        appointment_id = appt.id
    schedule_appointment(services, appointment_id)
    before = emulator.http_requests(installed_portal)
    assert fire_next(services) == "fired"
    assert emulator.http_requests(installed_portal) - before == 1
    assert [s[:2] for s in states(services)] == [("chat", "accepted")]
    assert any("Маникюр" in t for t in operator_texts(installed_portal, chat.id))
