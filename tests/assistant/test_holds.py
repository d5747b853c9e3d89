"""Pre-bookings nobody confirmed, through real ``b24app worker`` processes (issue 19): they
expire by their RQ job (its time driven, never waited for) and the time is offered again; one
client holds one; a line takes so many new dialogs an hour; no day beyond the horizon; a
message that finally failed no longer runs before the chat's later messages."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from rq.job import Job
from sqlalchemy import select

from b24app.context import Services
from b24app.storage.models import Appointment
from b24app.storage.models import AppointmentStatus
from b24app.storage.models import AssistantDialog
from devportal import DevPortal
from devportal.portal import Portal as EmuPortal
from tests.assistant.conftest import enable_assistant
from tests.assistant.test_worker import _open_day
from tests.assistant.test_worker import start_chat
from tests.assistant.test_worker import start_chat_n
from tests.assistant.test_worker import turns
from tests.assistant.test_worker import WorkerChat
from tests.plugins.worker import WorkerProcess
from tests.waiting import wait_for

MSK = ZoneInfo("Europe/Moscow")


def dialog_of(services: Services, chat: WorkerChat) -> AssistantDialog:
    with services.db() as session:
        row = session.scalars(
            select(AssistantDialog).where(AssistantDialog.chat_id == str(chat.chat_id))
        ).one()
        session.expunge(row)
        return row


def times_of(chat: WorkerChat) -> list[str]:
    return [b.split()[-1] for b in chat.buttons()]


def pre_book(chat: WorkerChat, day: dt.date, phone: str, at: str = "10:00") -> str:
    """Service, day and time, phone, name, then a tap on ``at``: the confirmation question."""
    chat.say(f"маникюр {day:%d.%m} в {at}")
    chat.say(phone)
    chat.say("Анна")
    button = next(b for b in chat.buttons() if b.endswith(at))
    return chat.say(button)


def test_an_unconfirmed_hold_expires_and_its_time_is_offered_again(
    emulator: DevPortal,
    installed_portal: EmuPortal,
    services: Services,
    rq_worker: WorkerProcess,
) -> None:
    """On a Booking resource: the hold is a real booking; its release job (scheduled at
    ``booked_at + hold_minutes``, moved to now here) deletes the booking the app added,
    cancels the appointment, tells the client, and another chat is offered the time again."""
    day = _open_day(3)
    with installed_portal.lock:
        installed_portal.booking.set_slots(1, [{
            "from": 540, "to": 780, "slotSize": 60, "timezone": "Europe/Moscow",
            "weekDays": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
        }])  # fmt: skip
    enable_assistant(services, installed_portal, booking_resource_id=1, hold_minutes=45)
    rq_worker.start()
    first = start_chat(emulator, installed_portal, services)
    assert "Подтверждаете" in pre_book(first, day, "8 912 345 67 89")
    held = dialog_of(services, first)
    assert held.booking_id in installed_portal.booking.bookings
    assert held.booked_at is not None

    # the release job waits on RQ's scheduler, due when the 45 minutes are over
    registry = services.queue("timers").scheduled_job_registry
    job_id = f"asst-hold-{installed_portal.member_id}-{held.id}"  # holds.release_job_id
    assert job_id in registry.get_job_ids()
    due = registry.get_scheduled_time(job_id).replace(tzinfo=None)
    assert dt.timedelta(minutes=45) <= due - held.booked_at < dt.timedelta(minutes=45, seconds=2)

    # meanwhile the time is taken for everyone else
    second = start_chat_n(emulator, installed_portal, services, 2)
    second.say(f"стрижка {day:%d.%m} в 10:00")
    second.say("+7 912 000-00-00")
    second.say("Ольга")
    assert "10:00" not in times_of(second)

    # drive the clock: the job is due now
    registry.schedule(Job.fetch(job_id, connection=services.redis), dt.datetime.now(dt.UTC))
    # the release frees the booking, then sets the dialog's step (two transactions): wait
    # for both
    wait_for(lambda: (d := dialog_of(services, first)).booked_at is None and d.state == "when",
             what="the hold's release")  # fmt: skip
    released = dialog_of(services, first)
    assert released.booking_id is None and released.booking_start is None
    assert released.state == "when"
    assert held.booking_id not in installed_portal.booking.bookings  # booking.v1.booking.delete
    with services.db() as session:
        appointment = session.get(Appointment, held.appointment_id)
        assert appointment is not None and appointment.status == AppointmentStatus.CANCELLED
    wait_for(lambda: "не была подтверждена" in first.last_reply(), what="the client is told")

    second.say(f"{day:%d.%m} в 10:00")
    assert "10:00" in times_of(second), second.buttons()


def test_one_unconfirmed_hold_per_phone(
    emulator: DevPortal,
    installed_portal: EmuPortal,
    services: Services,
    rq_worker: WorkerProcess,
) -> None:
    """A second chat with the same phone is refused politely while the first holds an
    unconfirmed pre-booking; once that one is confirmed, the second may book."""
    day = _open_day(3)
    enable_assistant(services, installed_portal)
    rq_worker.start()
    first = start_chat(emulator, installed_portal, services)
    assert "Подтверждаете" in pre_book(first, day, "8 912 345 67 89")
    second = start_chat_n(emulator, installed_portal, services, 2)
    reply = pre_book(second, day, "+7 (912) 345-67-89", at="12:00")
    assert "уже есть предварительная запись" in reply
    refused = dialog_of(services, second)
    assert refused.booking_start is None and refused.appointment_id is None
    assert refused.state == "slot" and any(b.endswith("12:00") for b in second.buttons())
    with services.db() as session:
        assert len(list(session.scalars(select(Appointment.id)))) == 1

    first.say("да")
    assert dialog_of(services, first).confirmed_at is not None
    button = next(b for b in second.buttons() if b.endswith("12:00"))
    assert "Подтверждаете" in second.say(button)
    assert dialog_of(services, second).booking_start is not None


def test_one_unconfirmed_hold_per_chat_user(
    emulator: DevPortal,
    installed_portal: EmuPortal,
    services: Services,
    rq_worker: WorkerProcess,
) -> None:
    """The same messenger user in a second chat (another line), with another phone: refused
    while the first chat's pre-booking waits for its confirmation."""
    day = _open_day(3)
    enable_assistant(services, installed_portal)
    rq_worker.start()
    first = start_chat(emulator, installed_portal, services)
    assert "Подтверждаете" in pre_book(first, day, "8 912 345 67 89")
    user_id = dialog_of(services, first).client_user_id
    assert user_id
    second = start_chat_n(emulator, installed_portal, services, 2)
    with services.db() as session:
        row = session.get(AssistantDialog, dialog_of(services, second).id)
        assert row is not None
        row.client_user_id = user_id
    reply = pre_book(second, day, "+7 912 000-00-00", at="12:00")
    assert "уже есть предварительная запись" in reply
    assert dialog_of(services, second).booking_start is None


def test_new_dialogs_per_line_are_bounded(
    emulator: DevPortal,
    installed_portal: EmuPortal,
    services: Services,
    rq_worker: WorkerProcess,
) -> None:
    """One new dialog an hour on the line: the second chat goes to the operators at once,
    the bot neither greets it nor books anything in it."""
    enable_assistant(services, installed_portal, dialogs_per_hour=1)
    rq_worker.start()
    first = start_chat(emulator, installed_portal, services)
    assert first.bot_messages()
    lead_id = installed_portal.add_lead({"TITLE": "Telegram", "SOURCE_ID": "1|TELEGRAMBOT",
                                         "ASSIGNED_BY_ID": 2})  # fmt: skip
    row = installed_portal.open_chat([("lead", lead_id)], connector_id="telegrambot")
    chat_id = str(row.id)

    def handed_off() -> bool:
        with services.db() as session:
            found = session.scalar(
                select(AssistantDialog).where(AssistantDialog.chat_id == chat_id)
            )
            return found is not None and found.state == "handoff"

    wait_for(handed_off, what="the second chat handed to the operators")
    with services.db() as session:
        second = session.scalars(
            select(AssistantDialog).where(AssistantDialog.chat_id == chat_id)
        ).one()
        assert second.handoff_reason == "rate_limited" and second.turns == 0
    assert installed_portal.imbot.sessions[row.id].holder == "operator"
    assert not [m for m in installed_portal.chat_messages(row.id) if m["kind"] == "bot"]
    # the first dialog goes on as before
    assert "Когда" in first.say("маникюр")


def test_no_day_beyond_the_horizon(
    emulator: DevPortal,
    installed_portal: EmuPortal,
    services: Services,
    rq_worker: WorkerProcess,
) -> None:
    """«31.12.9999 в 18:00» is refused in the chat (nothing pre-booked), and «31.12.9999 после
    22» no longer fails the job; a day inside the horizon goes on as usual."""
    enable_assistant(services, installed_portal)  # the default horizon: 60 days
    rq_worker.start()
    chat = start_chat(emulator, installed_portal, services)
    chat.say("маникюр")
    last_day = dt.datetime.now(MSK).date() + dt.timedelta(days=60)
    reply = chat.say("31.12.9999 в 18:00")
    assert "Так далеко вперёд" in reply and f"{last_day:%d.%m.%Y}" in reply
    state = dialog_of(services, chat)
    assert state.state == "when" and state.slots["when"] is None
    assert "Так далеко вперёд" in chat.say("31.12.9999 после 22")
    assert "Так далеко вперёд" in chat.say(f"{last_day + dt.timedelta(days=1):%d.%m.%Y} в 12:00")
    chat.say(f"{_open_day(3):%d.%m} после 12")
    chat.say("8 912 345 67 89")
    chat.say("Анна")
    assert chat.buttons() and dialog_of(services, chat).state == "slot"
    with services.db() as session:
        assert list(session.scalars(select(Appointment.id))) == []


def test_a_finally_failed_message_leaves_the_chats_waiting_list(
    emulator: DevPortal,
    installed_portal: EmuPortal,
    services: Services,
    rq_worker: WorkerProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A message whose job failed all its tries is out of the chat's waiting list: the chat's
    next message is answered without running it again first."""
    # every try still runs, a second apart instead of the product's 1 and 5 s (event_queue.retry)
    monkeypatch.setenv("B24APP_RETRY_SECONDS_SCALE", "0.2")
    enable_assistant(services, installed_portal)
    rq_worker.start()
    chat = start_chat(emulator, installed_portal, services)
    rq_worker.stop()
    # the bot is gone while the message's job runs: every try's answer is refused
    failing = installed_portal.client_writes(chat.chat_id, "маникюр")
    assert emulator.wait_idle()
    wait_for(lambda: services.queue("assistant").count == 1, what="the message's job queued")
    with installed_portal.lock:
        bots = dict(installed_portal.imbot.bots)
        installed_portal.imbot.bots.clear()
    rq_worker.start()
    failed = services.queue("assistant").failed_job_registry
    turn_id = f"asst-{installed_portal.member_id}-{chat.chat_id}-{failing}"  # jobs.turn_job_id
    wait_for(lambda: turn_id in failed.get_job_ids(), what="the job's last try failed")
    order = f"b24app:asst:waiting:{installed_portal.member_id}:{chat.chat_id}:order"
    assert services.redis.zrange(order, 0, -1) == []

    with installed_portal.lock:
        installed_portal.imbot.bots.update(bots)
    chat.say("маникюр")
    assert failing not in [t.message_id for t in turns(services)]
    assert dialog_of(services, chat).state == "when"


def test_a_hold_whose_release_job_redis_lost_is_released_by_the_sweep(
    emulator: DevPortal,
    installed_portal: EmuPortal,
    services: Services,
    rq_worker: WorkerProcess,
) -> None:
    """Redis lost the release job (restarted empty): the recurring sweep releases the
    pre-booking once its time plus the grace is over, through the worker; a fresh hold and a
    confirmed one stay."""
    from b24app.assistant.holds import SWEEP_GRACE
    from b24app.assistant.jobs import release_overdue_holds

    day = _open_day(3)
    enable_assistant(services, installed_portal, hold_minutes=30)
    rq_worker.start()
    lost, fresh, kept = (start_chat_n(emulator, installed_portal, services, n) for n in (1, 2, 3))
    assert "Подтверждаете" in pre_book(lost, day, "8 912 345 67 01", at="10:00")
    assert "Подтверждаете" in pre_book(fresh, day, "8 912 345 67 02", at="12:00")
    assert "Подтверждаете" in pre_book(kept, day, "8 912 345 67 03", at="14:00")
    kept.say("да")
    registry = services.queue("timers").scheduled_job_registry
    for job_id in registry.get_job_ids():  # Redis lost every release job
        registry.remove(job_id, delete_job=True)
    with services.db() as session:  # the first and the confirmed one are 30 min + grace old
        for chat in (lost, kept):
            row = session.get(AssistantDialog, dialog_of(services, chat).id)
            assert row is not None and row.booked_at is not None
            row.booked_at -= dt.timedelta(minutes=30) + SWEEP_GRACE
    assert [dialog_of(services, c).confirmed_at is None for c in (lost, fresh, kept)] == [
        True, True, False,
    ]  # fmt: skip

    services.queue("timers").enqueue(release_overdue_holds)
    wait_for(lambda: dialog_of(services, lost).booked_at is None, what="the sweep's release")
    wait_for(lambda: "не была подтверждена" in lost.last_reply(), what="the client is told")
    assert dialog_of(services, fresh).booked_at is not None
    assert dialog_of(services, kept).booked_at is not None
    with services.db() as session:
        statuses = sorted(a.status for a in session.scalars(select(Appointment)))
    assert statuses.count(AppointmentStatus.CANCELLED) == 1
