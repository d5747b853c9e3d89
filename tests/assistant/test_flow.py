"""The assistant on an installed emulator portal (jobs run in-process): registration at
install, a whole dialog to a confirmed pre-booking with CRM writes, the hand-off."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from rq.job import Job
from sqlalchemy import select

from b24app.assistant import service
from b24app.assistant.bot import BOT_CODE
from b24app.assistant.dialog import Reply
from b24app.context import Services
from b24app.storage.models import AssistantDialog
from b24app.storage.models import AssistantTurn
from b24app.storage.models import Journey
from b24app.storage.models import Timer
from b24app.storage.portals import get_portal
from devportal import DevPortal
from devportal.portal import Portal as EmuPortal
from tests.assistant.conftest import open_client_chat
from tests.waiting import deadline_seconds


def test_bot_registered_at_install_once(installed_portal: EmuPortal, services: Services) -> None:
    bots = list(installed_portal.imbot.bots.values())
    assert [b["code"] for b in bots] == [BOT_CODE]
    assert bots[0]["type"] == "openline" and bots[0]["eventMode"] == "webhook"
    assert bots[0]["webhookUrl"].endswith("/assistant/events")
    assert bots[0]["properties"]["name"] == "Ассистент записи"
    with services.db() as session:
        portal = get_portal(session, installed_portal.member_id)
        assert portal is not None
        assert portal.registration["assistant_bot"]["id"] == bots[0]["id"]


def test_full_dialog_to_a_confirmed_prebooking(
    emulator: DevPortal,
    assistant_portal: EmuPortal,
    services: Services,
    settle_jobs: Callable[[], None],
) -> None:
    chat = open_client_chat(emulator, assistant_portal, settle_jobs)
    assert "Здравствуйте" in chat.last_reply()  # greeted on join
    assert chat.buttons() == ["Маникюр", "Стрижка", "Окрашивание"]
    assert "Когда" in chat.say("Маникюр")
    assert "телефон" in chat.say("завтра после 18")
    assert "обращаться" in chat.say("+7 (912) 345-67-89")
    assert "Свободное время" in chat.say("Анна")
    times = chat.buttons()
    assert times and all(t.split()[-1] >= "18:00" for t in times)
    assert "Подтверждаете" in chat.say(times[0])
    assert "Готово" in chat.say("да")

    lead = assistant_portal.lead(chat.lead_id)
    assert lead is not None
    assert lead["NAME"] == "Анна"
    assert "Маникюр" in lead["COMMENTS"]
    with services.db() as session:
        dialog = session.scalars(select(AssistantDialog)).one()
        assert dialog.state == "confirmed" and dialog.confirmed_at is not None
        assert dialog.booking_start is not None and dialog.lead_id == chat.lead_id
        journey = session.scalars(select(Journey).where(Journey.lead_id == chat.lead_id)).one()
        assert journey.booking_at == dialog.booking_start
        assert journey.is_ai and journey.ai_channel == "telegram"
        turns = session.scalars(select(AssistantTurn).order_by(AssistantTurn.id)).all()
        assert [t.state_after for t in turns] == [
            "service", "when", "contact", "name", "slot", "confirm", "confirmed"
        ]  # fmt: skip
        assert all(t.answered_at is not None for t in turns)
        assert float(turns[2].confidence) >= 0.8
        assert turns[2].understood["when"]["earliest"] == "18:00"
    assert assistant_portal.imbot.typing[chat.chat_id]  # typing shown before answers


def test_two_clients_offered_the_same_time_only_one_gets_it(
    emulator: DevPortal,
    assistant_portal: EmuPortal,
    services: Services,
    settle_jobs: Callable[[], None],
) -> None:
    """Both are offered the same times; the first pre-books one, the second taps it later:
    the second is told it was taken and gets fresh times without it."""
    first = open_client_chat(emulator, assistant_portal, settle_jobs)
    second = open_client_chat(emulator, assistant_portal, settle_jobs)
    for chat in (first, second):
        chat.say("Маникюр")
        chat.say("завтра после 18")
        chat.say("+7 (912) 345-67-89")
        chat.say("Анна")
    wanted = first.buttons()[0]
    assert wanted in second.buttons()
    assert "Подтверждаете" in first.say(wanted)
    answer = second.say(wanted)
    assert answer.startswith("Это время уже заняли")
    assert second.buttons() and wanted not in second.buttons()
    with services.db() as session:
        dialogs = {d.lead_id: d for d in session.scalars(select(AssistantDialog))}
    assert dialogs[first.lead_id].booking_start is not None
    assert dialogs[second.lead_id].booking_start is None
    assert dialogs[second.lead_id].state == "slot"


def test_two_quick_messages_are_answered_in_their_order(
    emulator: DevPortal,
    assistant_portal: EmuPortal,
    services: Services,
    settle_jobs: Callable[[], None],
) -> None:
    """The client sends "Маникюр" and "завтра после 18" at once and a worker starts on the
    second first: the first is still answered first, then the second, and once each."""
    chat = open_client_chat(emulator, assistant_portal, settle_jobs)
    assistant_portal.client_writes(chat.chat_id, "Маникюр")
    assistant_portal.client_writes(chat.chat_id, "завтра после 18")
    assert emulator.wait_idle()
    queue = services.queue("assistant")
    jobs = queue.get_jobs()
    assert len(jobs) == 2
    queue.remove(jobs[1])
    queue.enqueue_job(jobs[1], at_front=True)  # the second message's job runs first
    settle_jobs()
    with services.db() as session:
        dialog = session.scalars(select(AssistantDialog)).one()
        turns = session.scalars(
            select(AssistantTurn).where(AssistantTurn.dialog_id == dialog.id)
            .order_by(AssistantTurn.id)
        ).all()  # fmt: skip
        assert [t.state_after for t in turns] == ["service", "when", "contact"]
        assert turns[1].message_id < turns[2].message_id  # answered in the client's order
    replies = [m["text"] for m in chat.bot_messages()]
    assert "Когда" in replies[-2] and "телефон" in replies[-1]


def test_asking_for_a_person_hands_off_with_a_summary(
    emulator: DevPortal,
    assistant_portal: EmuPortal,
    services: Services,
    settle_jobs: Callable[[], None],
) -> None:
    chat = open_client_chat(emulator, assistant_portal, settle_jobs)
    chat.say("Маникюр")
    reply = chat.say("позовите администратора")
    assert "Передаю" in reply
    session = assistant_portal.imbot.sessions[chat.chat_id]
    assert session.holder == "operator" and session.operator_id == 2
    summary = [m for m in chat.bot_messages() if m["id"] in assistant_portal.imbot.system]
    assert summary and "клиент попросил человека" in summary[0]["text"]
    assert "Маникюр" in summary[0]["text"]
    # The answer and the hand-off went in ONE request (a busy portal's bucket is waited for
    # once), the answer first.
    (handoff,) = [c for c in emulator.calls("batch", assistant_portal)
                  if "imopenlines.bot.session.operator" in str(c.params.get("cmd"))]  # fmt: skip
    commands = [str(c) for c in (handoff.params.get("cmd") or {}).values()]
    assert sum(c.startswith("imbot.v2.Chat.Message.send") for c in commands) == 2
    texts = [m["text"] for m in chat.bot_messages()]
    assert texts.index(reply) < texts.index(summary[0]["text"])
    before = len(chat.bot_messages())
    chat.say("алло")  # the bot no longer gets the chat's messages
    assert len(chat.bot_messages()) == before
    with services.db() as session_:
        dialog = session_.scalars(select(AssistantDialog)).one()
        assert dialog.state == "handoff" and dialog.handoff_reason == "operator"
        assert dialog.operator_notified_at is not None
        timers = session_.scalars(
            select(Timer).where(Timer.journey_key == chat.lead_id, Timer.policy == "first_reply")
        ).all()
        assert {t.state for t in timers} == {"pending"}
        assert all(t.started_at >= dialog.handoff_at.replace(microsecond=0) for t in timers)


def test_prebooking_in_online_booking_and_going_back_frees_it(
    emulator: DevPortal,
    installed_portal: EmuPortal,
    services: Services,
    settle_jobs: Callable[[], None],
) -> None:
    from b24app.storage.models import Appointment
    from tests.assistant.conftest import ClientChat
    from tests.assistant.conftest import enable_assistant

    enable_assistant(services, installed_portal, booking_resource_id=1)
    lead_id = installed_portal.add_lead({"TITLE": "Telegram", "SOURCE_ID": "1|TELEGRAMBOT"})
    row = installed_portal.open_chat([("lead", lead_id), ("contact", 77)])
    chat = ClientChat(emulator, installed_portal, row.id, lead_id, settle_jobs)
    settle_jobs()
    chat.say("маникюр завтра после 18, меня зовут Анна, 89123456789")
    first = chat.buttons()[0]
    chat.say(first)
    bookings = installed_portal.booking.bookings
    assert len(bookings) == 1
    booking_id = next(iter(bookings))
    assert bookings[booking_id]["resourceIds"] == [1]
    assert installed_portal.booking.clients[booking_id][0]["id"] == 77
    with services.db() as session:
        dialog = session.scalars(select(AssistantDialog)).one()
        assert dialog.booking_id == booking_id
        appointment = session.get(Appointment, dialog.appointment_id)
        assert appointment is not None and appointment.booking_id == booking_id
        assert appointment.starts_at == dialog.booking_start
    chat.say("нет")  # another time, please: the booking is deleted, the appointment cancelled
    assert installed_portal.booking.bookings == {}
    with services.db() as session:
        dialog = session.scalars(select(AssistantDialog)).one()
        assert dialog.booking_id is None and dialog.booking_start is None
        assert {a.status for a in session.scalars(select(Appointment))} == {"cancelled"}
    chat.say("послезавтра в 12")
    chat.say(chat.buttons()[0])
    chat.say("да")
    with services.db() as session:
        dialog = session.scalars(select(AssistantDialog)).one()
        assert dialog.state == "confirmed"
        live = [a for a in session.scalars(select(Appointment)) if a.status != "cancelled"]
        assert len(live) == 1 and live[0].status == "confirmed"
        assert live[0].booking_id == dialog.booking_id


def test_kpis_of_the_assistant(
    emulator: DevPortal,
    assistant_portal: EmuPortal,
    services: Services,
    settle_jobs: Callable[[], None],
) -> None:
    import datetime as dt

    from b24app.assistant.kpi import assistant_kpis
    from b24app.storage.models import utc_now

    booked = open_client_chat(emulator, assistant_portal, settle_jobs)
    booked.say("маникюр завтра после 18, меня зовут Анна, 89123456789")
    booked.say(booked.buttons()[0])
    booked.say("да")
    handed = open_client_chat(emulator, assistant_portal, settle_jobs)
    handed.say("хочу жалобу оставить")
    with services.db() as session:
        portal = get_portal(session, assistant_portal.member_id)
        assert portal is not None
        now = utc_now()
        k = assistant_kpis(
            session, portal.id, now - dt.timedelta(hours=1), now + dt.timedelta(hours=1)
        )
    assert (k["dialogs"], k["booked"], k["confirmed"], k["handoffs"]) == (2, 1, 1, 1)
    assert k["booked_pct"] == 50.0 and k["handoff_pct"] == 50.0
    assert k["reasons"] == {"complaint": 1}
    assert k["turns"] == 6 and k["answer_median_s"] is not None
    assert k["came"] == 0 and k["model_pct"] == 0.0

    from b24app.kpi import metrics
    from b24app.kpi.reports import daily_message
    from b24app.settings import load_settings

    with services.db() as session:
        settings = load_settings(session, portal.id)
        period = metrics.period_for("7d", settings["time_zone"])
        dashboard = metrics.compute_dashboard(session, portal.id, period, settings)
    assert "ИИ-ассистент: диалогов 2, до записи 50" in daily_message(dashboard, "ru")


def test_disabled_assistant_or_unserved_line_goes_straight_to_operators(
    emulator: DevPortal,
    installed_portal: EmuPortal,
    services: Services,
    settle_jobs: Callable[[], None],
) -> None:
    from tests.assistant.conftest import enable_assistant

    enable_assistant(services, installed_portal, lines=["7"])  # line 1 is not served
    chat = open_client_chat(emulator, installed_portal, settle_jobs)
    assert chat.bot_messages() == []  # no greeting
    assert installed_portal.imbot.sessions[chat.chat_id].holder == "operator"
    with services.db() as session:
        dialog = session.scalars(select(AssistantDialog)).one()
        assert dialog.state == "handoff" and dialog.handoff_reason == "disabled"
        assert session.scalars(select(AssistantTurn)).all() == []


def test_a_resource_without_slot_settings_offers_the_working_hours(
    emulator: DevPortal,
    installed_portal: EmuPortal,
    services: Services,
    settle_jobs: Callable[[], None],
) -> None:
    """``slots.list`` answers no ranges: the times are those the working hours give."""
    from tests.assistant.conftest import enable_assistant

    with installed_portal.lock:
        installed_portal.booking.slots.pop(1)
    enable_assistant(services, installed_portal, booking_resource_id=1)
    text = "маникюр завтра после 18, меня зовут Анна, 89123456789"
    with_resource = open_client_chat(emulator, installed_portal, settle_jobs)
    with_resource.say(text)
    assert emulator.calls("booking.v1.resource.slots.list", installed_portal, in_batch=True)
    enable_assistant(services, installed_portal, booking_resource_id=None)
    without = open_client_chat(emulator, installed_portal, settle_jobs)
    without.say(text)
    assert with_resource.buttons() and with_resource.buttons() == without.buttons()


def test_two_clients_tapping_the_same_time_at_once_only_one_gets_it(
    emulator: DevPortal,
    assistant_portal: EmuPortal,
    services: Services,
    settle_jobs: Callable[[], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both clients tap the same time and their turns run at once (two workers): one gets it,
    the other is told it was taken — the read of what is taken, the re-check and the claim
    happen under the portal's slot lock. Before, both were pre-booked into the same time
    (`bench/assistant.py --booking`: 2 overlapping pairs among 5 pre-bookings)."""
    chats = [open_client_chat(emulator, assistant_portal, settle_jobs) for _ in range(2)]
    for chat in chats:
        for text in ("Маникюр", "завтра после 18", "+7 (912) 345-67-89", "Анна"):
            chat.say(text)
    wanted = chats[0].buttons()[0]
    assert wanted in chats[1].buttons()
    for chat in chats:
        assistant_portal.client_writes(chat.chat_id, wanted)
    assert emulator.wait_idle()
    queue = services.queue("assistant")
    taps = queue.get_jobs()
    assert len(taps) == 2
    for job in taps:
        queue.remove(job)

    # Each turn's step waits (boundedly) for the other's: without the lock both check the
    # time before either claims it; with it, the second cannot start until the first is done.
    real_step = service.step
    entered: list[int] = []
    both_in = threading.Event()

    def step_meeting_the_other(*args: Any, **kwargs: Any) -> Reply:
        entered.append(1)
        if len(entered) >= 2:
            both_in.set()
        both_in.wait(timeout=5)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(service, "step", step_meeting_the_other)
    failures: list[BaseException] = []

    def run(job: Job) -> None:  # what a worker does with the job, on a thread of its own
        try:
            job.func(*job.args, **job.kwargs)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in taps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=deadline_seconds())
    assert not any(t.is_alive() for t in threads) and not failures, failures
    monkeypatch.undo()
    settle_jobs()  # the answers that waited in the outbox

    answers = sorted(chat.last_reply() for chat in chats)
    assert "Подтверждаете" in answers[0], answers
    assert answers[1].startswith("Это время уже заняли"), answers
    with services.db() as session:
        booked = [d.booking_start for d in session.scalars(select(AssistantDialog))]
    assert len([b for b in booked if b is not None]) == 1
