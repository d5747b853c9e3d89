"""The assistant end to end through real ``b24app worker`` processes: dates and phones in the
client's words, going back, a duplicate event delivery, the model timing out (the rules take
over), and a hand-off. Each turn is awaited by condition (its recorded turn), never by time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
from rq.registry import StartedJobRegistry
from sqlalchemy import select

from b24app.context import Services
from b24app.storage.models import AssistantDialog
from b24app.storage.models import AssistantTurn
from b24app.storage.models import Journey
from devportal import DevPortal
from devportal.portal import Portal as EmuPortal
from tests.assistant.conftest import ClientChat
from tests.assistant.conftest import enable_assistant
from tests.assistant.llm_stub import LlmStub
from tests.plugins.worker import WorkerProcess
from tests.waiting import wait_for

MSK = ZoneInfo("Europe/Moscow")


def turns(services: Services) -> list[AssistantTurn]:
    with services.db() as session:
        rows = list(session.scalars(select(AssistantTurn).order_by(AssistantTurn.id)))
        session.expunge_all()
        return rows


def dialog(services: Services) -> AssistantDialog:
    with services.db() as session:
        row = session.scalars(select(AssistantDialog)).one()
        session.expunge(row)
        return row


class WorkerChat(ClientChat):
    services: Services

    def say(self, text: str) -> str:
        message_id = self.portal.client_writes(self.chat_id, text)
        wait_for(lambda: any(t.message_id == message_id for t in turns(self.services)),
                 what=f"the turn of {text!r}")  # fmt: skip
        return self.last_reply()


def start_chat(emulator: DevPortal, portal: EmuPortal, services: Services) -> WorkerChat:
    lead_id = portal.add_lead({"TITLE": "Telegram", "SOURCE_ID": "1|TELEGRAMBOT",
                               "ASSIGNED_BY_ID": 2})  # fmt: skip
    chat_row = portal.open_chat([("lead", lead_id)], connector_id="telegrambot")
    chat = WorkerChat(emulator, portal, chat_row.id, lead_id, lambda: None)
    chat.services = services
    wait_for(lambda: len(turns(services)) == 1, what="the greeting")
    return chat


@pytest.fixture
def worker_chat(
    emulator: DevPortal,
    installed_portal: EmuPortal,
    services: Services,
    rq_worker: WorkerProcess,
) -> Iterator[WorkerChat]:
    enable_assistant(services, installed_portal)
    rq_worker.start()
    yield start_chat(emulator, installed_portal, services)


def test_dates_and_phones_in_free_text(worker_chat: WorkerChat, services: Services) -> None:
    worker_chat.say("хочу на маникюр в субботу утром")
    worker_chat.say("8 912 345 67 89")
    assert "обращаться" in worker_chat.last_reply()
    state = dialog(services)
    assert state.slots["phone"] == "+79123456789"
    assert state.slots["when"]["earliest"] == "09:00" and state.slots["when"]["latest"] == "12:00"
    worker_chat.say("Ольга")
    offered = worker_chat.buttons()
    assert offered and all(b.startswith("Сб") for b in offered)
    assert all("09:00" <= b.split()[-1] < "12:00" for b in offered)
    worker_chat.say(offered[-1])
    worker_chat.say("да")
    assert dialog(services).state == "confirmed"
    recorded = turns(services)
    assert recorded[1].understood["service"] == "manicure"
    assert recorded[2].understood["phone"] == "+79123456789"
    assert all(t.total_ms > 0 and t.answered_at for t in recorded)


def test_going_back(worker_chat: WorkerChat, services: Services) -> None:
    worker_chat.say("стрижка")
    worker_chat.say("завтра в 10")
    assert dialog(services).state == "contact"
    assert "вернёмся" in worker_chat.say("назад")
    assert dialog(services).state == "when" and dialog(services).slots["when"] is None
    worker_chat.say("послезавтра после 18")
    state = dialog(services)
    assert state.state == "contact" and state.slots["when"]["earliest"] == "18:00"
    assert state.slots["service"] == "haircut"


def test_duplicate_delivery_answers_once(
    emulator: DevPortal, worker_chat: WorkerChat, services: Services
) -> None:
    emulator.delivery.duplicate = True  # at-least-once: every event POSTed twice
    before = len(worker_chat.bot_messages())
    worker_chat.say("маникюр")
    emulator.wait_idle(timeout=30)
    started = StartedJobRegistry(queue=services.queue("assistant"))
    wait_for(lambda: services.queue("assistant").count == 0 and started.count == 0,
             what="every job of both deliveries to finish")  # fmt: skip
    assert len(worker_chat.bot_messages()) == before + 1
    assert [t.state_after for t in turns(services)] == ["service", "when"]
    deliveries = [d for d in emulator.deliveries("event", "ONIMBOTV2MESSAGEADD")]
    assert len(deliveries) == 2 and all(d.status == 200 for d in deliveries)


def test_handoff_through_the_worker(worker_chat: WorkerChat, services: Services) -> None:
    worker_chat.say("у меня аллергия на гель-лак, можно ли мне?")
    wait_for(lambda: dialog(services).operator_notified_at is not None, what="the operator")
    state = dialog(services)
    assert state.handoff_reason == "sensitive"
    assert worker_chat.portal.imbot.sessions[worker_chat.chat_id].holder == "operator"
    assert "специалист" in worker_chat.last_reply()


def test_model_timing_out_falls_back_to_rules(
    emulator: DevPortal,
    installed_portal: EmuPortal,
    services: Services,
    rq_worker_factory: Callable[..., WorkerProcess],
) -> None:
    with LlmStub({"service": "manicure", "confidence": 0.9}, delay=5.0) as stub:
        enable_assistant(services, installed_portal, model=True)
        rq_worker_factory(env={"B24APP_LLM_API_URL": stub.url, "B24APP_LLM_API_KEY": "k",
                               "B24APP_ASSISTANT_LLM_TIMEOUT": "0.3"})  # fmt: skip
        chat = start_chat(emulator, installed_portal, services)
        reply = chat.say("хочу что-нибудь красивое")
        assert "не совсем" in reply  # the rules' answer, not the slow model's
        last = turns(services)[-1]
        assert last.source == "rules_fallback" and last.state_after == "service"
        assert len(stub.requests) == 1
        chat.say("маникюр")  # the rules are sure: the model is not asked
        assert len(stub.requests) == 1 and dialog(services).state == "when"


def _open_day(days_ahead: int) -> dt.date:
    """A day ``days_ahead`` or later that is not a public holiday in Russia (the salon's
    calendar closes those for resources too)."""
    from b24app.sla.worktime import WorkCalendar

    calendar = WorkCalendar.from_settings({"time_zone": "Europe/Moscow"})
    day = dt.datetime.now(MSK).date() + dt.timedelta(days=days_ahead)
    while calendar.is_holiday(day):
        day += dt.timedelta(days=1)
    return day


def test_free_times_follow_the_booking_resources_slots_and_bookings(
    emulator: DevPortal,
    installed_portal: EmuPortal,
    services: Services,
    rq_worker: WorkerProcess,
) -> None:
    """The resource works 13:30-17:30 in Yekaterinburg (11:30-15:30 in Moscow, the salon's
    zone; the salon's own working hours say 09:00-21:00) in hour slots; 12:30 is booked in the
    Booking UI. Offered: 11:30, 13:30, 14:30 — then a booking made after the first chat read
    the resource reaches the next chat through the event, without a second read."""
    day = _open_day(3)
    with installed_portal.lock:
        installed_portal.booking.set_slots(1, [{
            "from": 810, "to": 1050, "slotSize": 60, "timezone": "Asia/Yekaterinburg",
            "weekDays": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
        }])  # fmt: skip
    installed_portal.add_booking(dt.datetime.combine(day, dt.time(12, 30), tzinfo=MSK), 60)
    enable_assistant(services, installed_portal, booking_resource_id=1)
    rq_worker.start()
    first = start_chat(emulator, installed_portal, services)
    first.say(f"маникюр {day:%d.%m} в 12:30")
    first.say("8 912 345 67 89")
    first.say("Анна")
    label = f"{day:%d.%m}"
    offered = first.buttons()
    assert [b.split()[-1] for b in offered] == ["11:30", "13:30", "14:30"], offered
    assert all(label in b for b in offered)
    assert emulator.calls("booking.v1.resource.slots.list", installed_portal, in_batch=True)
    # the cache must outlive a slow machine: the check below is about reads, not about time
    cached = list(services.redis.scan_iter(f"b24app:booking-avail:{installed_portal.member_id}:*"))
    assert cached
    for key in cached:
        services.redis.persist(key)

    # staff books 13:30 in the Booking UI: the event patches the cached window
    installed_portal.add_booking(dt.datetime.combine(day, dt.time(13, 30), tzinfo=MSK), 60)
    wait_for(lambda: _booking_seen(services, installed_portal.member_id), what="the event job")
    second = start_chat_n(emulator, installed_portal, services, 2)
    second.say(f"стрижка {day:%d.%m} в 12:30")
    second.say("+7 912 000-00-00")
    second.say("Ольга")
    assert [b.split()[-1] for b in second.buttons()] == ["11:30", "14:30"], second.buttons()
    # one read of the resource for both chats (the cache), the rest came by the event
    assert len(emulator.calls("booking.v1.resource.slots.list", installed_portal)) == 1

    first.say(offered[0])
    first.say("да")
    bookings = [b for b in installed_portal.booking.bookings.values() if b["name"]]
    assert [b["resourceIds"] for b in bookings] == [[1]]  # the pre-booking, on the resource
    start = dt.datetime.fromtimestamp(bookings[0]["datePeriod"]["from"]["timestamp"], MSK)
    assert start == dt.datetime.combine(day, dt.time(11, 30), tzinfo=MSK)


def _booking_seen(services: Services, member_id: str) -> bool:
    from b24app.storage.models import Appointment

    with services.db() as session:
        return len(list(session.scalars(select(Appointment.id)))) >= 2


def start_chat_n(emulator: DevPortal, portal: EmuPortal, services: Services, n: int) -> WorkerChat:
    """Another client chat on the portal (the ``n``-th), awaited until it is greeted."""
    lead_id = portal.add_lead({"TITLE": "Telegram", "SOURCE_ID": "1|TELEGRAMBOT",
                               "ASSIGNED_BY_ID": 2})  # fmt: skip
    chat_row = portal.open_chat([("lead", lead_id)], connector_id="telegrambot")
    chat = WorkerChat(emulator, portal, chat_row.id, lead_id, lambda: None)
    chat.services = services
    wait_for(lambda: sum(t.state_before == "new" for t in turns(services)) == n,
             what="the greeting")  # fmt: skip
    return chat


def test_a_confirmed_prebooking_confirms_through_the_appointments_one_confirm(
    worker_chat: WorkerChat, services: Services, installed_portal: EmuPortal
) -> None:
    """The assistant confirms as a reminder's «1» does (b24app/appointments/outcomes.py): the
    appointment and the journey Confirmed, the lead on the mapped status, the confirmation SLA
    stopped — at the confirmation, not later through an event."""
    from b24app.sla.engine import start_timer
    from b24app.storage.models import Appointment
    from b24app.storage.models import Portal
    from b24app.storage.models import Timer

    lead_id = worker_chat.lead_id
    wait_for(lambda: _journey(services, lead_id) is not None, what="the lead's journey")
    with services.db() as session:
        portal = session.scalars(select(Portal)).one()
        portal_id, statuses = portal.id, dict(portal.registration["statuses"])
    start_timer(services, portal_id, lead_id, "confirmation", minutes=600)
    worker_chat.say("хочу на маникюр завтра")
    worker_chat.say("8 912 345 67 89")
    worker_chat.say("Ольга")
    worker_chat.say(worker_chat.buttons()[0])
    worker_chat.say("да")
    assert dialog(services).state == "confirmed"
    with services.db() as session:
        (appt,) = session.scalars(select(Appointment)).all()
        assert appt.status == "confirmed"
        sla = list(session.scalars(select(Timer).where(Timer.policy == "confirmation")))
    assert sla and all(t.state == "cancelled" for t in sla)
    assert _journey(services, lead_id).confirmed_at is not None  # type: ignore[union-attr]
    wait_for(lambda: installed_portal.lead(lead_id)["STATUS_ID"] == statuses["confirmed"],
             what="the lead on the confirmed status")  # fmt: skip


def _journey(services: Services, lead_id: int) -> Journey | None:
    with services.db() as session:
        row = session.scalar(select(Journey).where(Journey.lead_id == lead_id))
        if row is not None:
            session.expunge(row)
        return row
