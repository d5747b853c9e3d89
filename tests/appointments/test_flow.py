"""Booking → appointment → reminders → the client's answer, with jobs run in-process.

The emulator delivers the real events (form-encoded) to the live app; ``run_jobs()`` drains
the queues; timers are fired by calling their job. The real-worker version is
``test_integration.py``.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import requests

from b24app.appointments.remind import schedule_appointment
from b24app.appointments.store import upsert_appointment
from b24app.context import Services
from b24app.settings import save_settings
from b24app.storage.models import AppointmentStatus
from b24app.storage.models import AssistantDialog
from b24app.storage.models import TimerState
from b24app.timers.fire import fire_timer
from tests.appointments.conftest import appointment_timers
from tests.appointments.conftest import appointments
from tests.appointments.conftest import attempts
from tests.appointments.conftest import journey
from tests.appointments.conftest import make_journey
from tests.appointments.conftest import run_scheduled
from tests.appointments.conftest import utc_now
from tests.placements.conftest import crm_items


def book(emulator: Any, portal: Any, run_jobs: Any, hours: float, **kw: Any) -> int:
    start = utc_now().replace(tzinfo=dt.UTC) + dt.timedelta(hours=hours)
    booking_id = int(portal.add_booking(start, name=kw.pop("name", "Стрижка"), **kw))
    assert emulator.wait_idle()
    run_jobs()
    return booking_id


def fire_next(services: Services) -> str:
    """Fire the earliest pending reminder."""
    pending = [t for t in appointment_timers(services) if t.state == TimerState.PENDING]
    return fire_timer(pending[0].id)


def test_booking_reminds_in_the_chat_and_the_reply_confirms(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, run_jobs: Any
) -> None:
    journey_id = make_journey(services, portal_id, deal_id=77, contact_id=5, lead_id=1077)
    chat = installed_portal.open_chat([("deal", 77), ("contact", 5)])
    book(emulator, installed_portal, run_jobs, 30, contact_id=5, deal_id=77)
    (appt,) = appointments(services)
    assert appt.journey_id == journey_id and appt.deal_id == 77 and appt.contact_id == 5
    timers = appointment_timers(services)
    assert [t.level.split("@")[0] for t in timers] == ["24h", "2h"]
    assert timers[0].due_at == appt.starts_at - dt.timedelta(hours=24)
    assert fire_timer(timers[0].id) == "fired"
    messages = installed_portal.chat_messages(chat.id)
    assert len(messages) == 1 and "Стрижка" in messages[0]["text"]
    assert "1 — подтверждаю" in messages[0]["text"]
    assert attempts(services) == [("chat", True, "")]
    calls_before = len(emulator.calls(portal=installed_portal))
    assert fire_timer(timers[1].id) == "fired"  # the chat is known now: one request
    assert len(emulator.calls(portal=installed_portal)) - calls_before == 1
    installed_portal.client_writes(chat.id, "1")
    assert emulator.wait_idle()
    run_jobs()
    assert appointments(services)[0].status == AppointmentStatus.SCHEDULED  # not read yet
    run_scheduled(services, run_jobs)  # the chat read back while the reply is awaited
    (appt,) = appointments(services)
    assert appt.status == AppointmentStatus.CONFIRMED and appt.reminded_via == "chat"
    assert journey(services, journey_id).confirmed_at is not None
    crm_items(installed_portal, "lead", 1077)
    tab = installed_portal.open_placement("CRM_LEAD_DETAIL_TAB", {"ID": "1077"}).text
    assert 'id="lead-appointments"' in tab and tab.count("attempt-ok") == 2
    assert "подтверждена клиентом" in tab


def test_no_chat_goes_to_the_workflow_and_neither_to_the_todo(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, run_jobs: Any
) -> None:
    make_journey(services, portal_id, deal_id=78)
    with services.db() as session:
        save_settings(session, portal_id, {"appointments": {"workflow": {"template_id": 525}}})
    book(emulator, installed_portal, run_jobs, 30, deal_id=78)
    assert fire_next(services) == "fired"
    (workflow,) = installed_portal.workflows
    assert workflow["document_id"] == ["crm", "CCrmDocumentDeal", "DEAL_78"]
    assert "Стрижка" in workflow["parameters"]["reminder_text"]
    assert attempts(services) == [("chat", False, "no_active_chat"), ("workflow", True, "")]
    with services.db() as session:
        save_settings(session, portal_id, {"appointments": {"workflow": {"template_id": None}}})
    assert fire_next(services) == "fired"
    assert attempts(services)[2:] == [
        ("chat", False, "no_active_chat"), ("workflow", False, "no_workflow_configured"),
        ("todo", True, ""),
    ]  # fmt: skip
    todo = list(installed_portal.activities.values())[-1]
    assert "no_active_chat" in str(todo) and "no_workflow_configured" in str(todo)


def test_no_sms_workflow_to_a_phone_typed_in_the_assistants_chat(
    installed_portal: Any, services: Services, portal_id: int
) -> None:
    """The assistant's pre-booking on a chat bound to a lead only: the lead's phone is the one
    the chat visitor typed, so the reminder skips the SMS workflow and goes to the to-do."""
    with services.db() as session:
        save_settings(session, portal_id, {"appointments": {
            "workflow": {"template_id": 526, "document_type": "LEAD"}}})  # fmt: skip
        appt, _ = upsert_appointment(
            session, portal_id, starts_at=utc_now() + dt.timedelta(hours=30),
            source="assistant", lead_id=1081, service="Маникюр",
        )  # fmt: skip
        session.flush()
        session.add(AssistantDialog(
            portal_id=portal_id, chat_id="991", dialog_id="chat991", bot_id=1, lead_id=1081,
            state="confirm", slots={"phone": "+79120000000"}, turns=4, appointment_id=appt.id,
        ))  # fmt: skip
        appointment_id = appt.id
    schedule_appointment(services, appointment_id)
    assert fire_next(services) == "fired"
    assert installed_portal.workflows == []
    assert [(channel, ok) for channel, ok, _ in attempts(services)] == [
        ("chat", False), ("workflow", False), ("todo", True),
    ]  # fmt: skip
    assert attempts(services)[1][2] == "phone_typed_in_chat"


def test_moved_deleted_short_notice_and_duplicate_events(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, run_jobs: Any
) -> None:
    make_journey(services, portal_id, deal_id=79)
    emulator.delivery.duplicate = True
    booking_id = book(emulator, installed_portal, run_jobs, 30, deal_id=79)
    emulator.delivery.duplicate = False
    (appt,) = appointments(services)
    first_due = [t.due_at for t in appointment_timers(services)]
    booked_for = appt.starts_at
    assert appt.moved_at is None and appt.moved_from is None
    moved = utc_now().replace(tzinfo=dt.UTC) + dt.timedelta(hours=50)
    installed_portal.move_booking(booking_id, moved)
    assert emulator.wait_idle()
    run_jobs()
    (appt,) = appointments(services)
    assert appt.starts_at == moved.replace(tzinfo=None, microsecond=0)
    # the move is recorded for the KPI "rescheduled" (b24app/kpi/appointments.py)
    assert appt.moved_from == booked_for and appt.moved_at is not None
    pending = [t for t in appointment_timers(services) if t.state == TimerState.PENDING]
    assert len(pending) == 2 and [t.due_at for t in pending] != first_due
    installed_portal.delete_booking(booking_id)
    assert emulator.wait_idle()
    run_jobs()
    (appt,) = appointments(services)
    assert appt.status == AppointmentStatus.CANCELLED
    assert {t.state for t in appointment_timers(services)} == {TimerState.CANCELLED}
    # Booked 3 h ahead: no 24 h text; one confirmation request now instead; the 2 h one waits.
    book(emulator, installed_portal, run_jobs, 3, deal_id=79, name="Маникюр")
    short = [t for t in appointment_timers(services) if t.state != TimerState.CANCELLED]
    assert [t.level.split("@")[0] for t in short] == ["confirm", "2h"]
    assert short[1].due_at > utc_now()


def forged_booking_event(
    portal: Any, services: Services, event: str, booking_id: int, ts: int | None = None
) -> int:
    """An employee posts ``event`` for ``booking_id`` with the application token their browser
    holds (the real form shape); returns the HTTP status. (``ts`` makes the delivery's job id:
    the same second twice is one delivery.)"""
    fixture = (
        Path(__file__).parents[1] / "fixtures/client-loop/onbookingupdate_event.DERIVED.form.json"
    )
    form: dict[str, str] = json.loads(fixture.read_text())
    form.update({"event": event, "data[ID]": str(booking_id), "ts": str(ts or int(time.time())),
                 "auth[member_id]": portal.member_id,
                 "auth[application_token]": portal.application_token})  # fmt: skip
    url = services.settings.public_url + "/handlers/booking"
    return requests.post(url, data=form, timeout=15).status_code


def test_a_forged_delete_of_a_live_booking_cancels_nothing(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, run_jobs: Any
) -> None:
    """ONBOOKINGDELETE is a claim: the booking is read back, Bitrix24 still has it, so the
    appointment and its reminders stay; the genuine delete later still cancels them."""
    make_journey(services, portal_id, deal_id=81)
    booking_id = book(emulator, installed_portal, run_jobs, 30, deal_id=81)
    due = [(t.due_at, t.state) for t in appointment_timers(services)]
    assert forged_booking_event(installed_portal, services, "ONBOOKINGDELETE", booking_id) == 200
    run_jobs()
    (appt,) = appointments(services)
    assert appt.status == AppointmentStatus.SCHEDULED
    assert [(t.due_at, t.state) for t in appointment_timers(services)] == due
    assert {state for _due, state in due} == {TimerState.PENDING}
    installed_portal.delete_booking(booking_id)
    assert emulator.wait_idle()
    run_jobs()
    (appt,) = appointments(services)
    assert appt.status == AppointmentStatus.CANCELLED
    assert {t.state for t in appointment_timers(services)} == {TimerState.CANCELLED}


def test_a_delete_that_cannot_be_checked_cancels_nothing(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, run_jobs: Any
) -> None:
    """Bitrix24 fails to read the booking back (an internal error, then a rate limit, as the
    batch's answer for ``get``): the job fails to be retried later; the appointment is not
    taken for gone. (A failed request as a whole raises from the client the same way.)"""
    make_journey(services, portal_id, deal_id=82)
    booking_id = book(emulator, installed_portal, run_jobs, 30, deal_id=82)
    for i, kind in enumerate(("internal_error", "query_limit")):
        emulator.inject_fault(kind, portal=installed_portal.slug, method="booking.v1.booking.get")
        ts = int(time.time()) + i
        assert (
            forged_booking_event(installed_portal, services, "ONBOOKINGDELETE", booking_id, ts)
            == 200
        )
        run_jobs()
        emulator.faults.clear()
        (appt,) = appointments(services)
        assert appt.status == AppointmentStatus.SCHEDULED
        assert {t.state for t in appointment_timers(services)} == {TimerState.PENDING}
    retried = services.queue("events").scheduled_job_registry.get_job_ids()
    assert len(retried) == 2  # both come back (RQ retry), to read the booking again


def test_change_request_makes_a_task_and_operator_messages_are_ignored(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, run_jobs: Any
) -> None:
    make_journey(services, portal_id, deal_id=80, assigned_by_id=3)
    chat = installed_portal.open_chat([("deal", 80)])
    book(emulator, installed_portal, run_jobs, 30, deal_id=80)
    fire_next(services)
    assert emulator.wait_idle()
    run_jobs()  # our own reminder came back as ONOPENLINEMESSAGEADD: ignored
    assert appointments(services)[0].status == AppointmentStatus.SCHEDULED
    installed_portal.client_writes(chat.id, "Не смогу, перенесите пожалуйста")
    assert emulator.wait_idle()
    # the chat read back; free times are offered in it (tests/appointments/test_reschedule.py)
    run_scheduled(services, run_jobs)
    assert "Свободное время" in installed_portal.chat_messages(chat.id)[-1]["text"]
    assert installed_portal.tasks == []
    installed_portal.client_writes(chat.id, "Хочу поговорить с человеком")
    assert emulator.wait_idle()
    run_scheduled(services, run_jobs)  # the talk's next read
    assert appointments(services)[0].status == AppointmentStatus.RESCHEDULE_ASKED
    (task,) = installed_portal.tasks
    assert task["responsibleId"] == "3" and task["ufCrmTask"] == ["D_80"]
    assert any(n["user_id"] == 3 for n in installed_portal.notifications)


def test_two_answers_the_bot_cannot_use_hand_the_move_to_the_manager(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, run_jobs: Any
) -> None:
    make_journey(services, portal_id, deal_id=81, assigned_by_id=4)
    chat = installed_portal.open_chat([("deal", 81)])
    book(emulator, installed_portal, run_jobs, 30, deal_id=81)
    fire_next(services)
    for text in ("2", "абракадабра", "ну такое"):
        installed_portal.client_writes(chat.id, text)
        assert emulator.wait_idle()
        run_scheduled(services, run_jobs)  # each answer read back from the chat
    said = [m["text"] for m in installed_portal.chat_messages(chat.id)]
    assert "Свободное время" in said[-5] and said[-3].startswith("Не понял")
    assert said[-1].startswith("Передаю")
    assert appointments(services)[0].status == AppointmentStatus.RESCHEDULE_ASKED
    (task,) = installed_portal.tasks
    assert task["responsibleId"] == "4" and task["ufCrmTask"] == ["D_81"]


def test_a_booking_moved_or_deleted_in_bitrix24_offers_its_time_to_the_waitlist(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, run_jobs: Any
) -> None:
    contact = installed_portal.add_contact("Вера")
    with installed_portal.lock:
        installed_portal.waitlist.add("любое время", contact_id=contact)
    chat = installed_portal.open_chat([("contact", contact)])
    make_journey(services, portal_id, deal_id=82)
    booking_id = book(emulator, installed_portal, run_jobs, 30, deal_id=82)
    (appt,) = appointments(services)
    assert appt.resource_ids == [1] and appt.ends_at == appt.starts_at + dt.timedelta(hours=1)
    moved_to = utc_now().replace(tzinfo=dt.UTC, microsecond=0) + dt.timedelta(hours=40)
    installed_portal.move_booking(booking_id, moved_to)
    assert emulator.wait_idle()
    run_jobs()
    offers = [m["text"] for m in installed_portal.chat_messages(chat.id)]
    assert len(offers) == 1 and offers[0].startswith("Освободилось время")
    installed_portal.delete_booking(booking_id)
    assert emulator.wait_idle()
    run_jobs()
    assert appointments(services)[0].status == AppointmentStatus.CANCELLED
    offers = [m["text"] for m in installed_portal.chat_messages(chat.id)]
    assert len(offers) == 2 and offers[1].startswith("Освободилось время")  # the moved-to time


def test_install_imports_the_next_30_days_of_bookings(
    emulator: Any, live_app: Any, portal: Any, services: Services, run_jobs: Any
) -> None:
    """A window scan at install: bookings in the next 30 days become appointments (60 of
    them: two pages of ``booking.v1.booking.list``), later ones do not."""
    now = utc_now().replace(tzinfo=dt.UTC)
    for i in range(60):
        portal.add_booking(now + dt.timedelta(hours=30 + i), deal_id=700 + i, contact_id=9)
    portal.add_booking(now + dt.timedelta(days=40), deal_id=799)
    result = portal.install()
    assert result.installer is not None and result.installer.status_code == 200
    run_jobs()
    rows = appointments(services)
    assert len(rows) == 60 and {r.contact_id for r in rows} == {9}
    assert 799 not in {r.deal_id for r in rows}
    assert len(emulator.calls(method="booking.v1.booking.list", portal=portal)) == 2


def test_an_imported_booking_knows_its_chat_before_the_first_reminder(
    emulator: Any, live_app: Any, portal: Any, services: Services, run_jobs: Any
) -> None:
    """The install's scan reads the bookings' chats in a batch of each page: the first
    reminder into a chat is then one request (join + send), as after the booking route's
    read — it was two (look-up and history, then join + send)."""
    now = utc_now().replace(tzinfo=dt.UTC)
    chats = {}
    for i in range(30):  # 120 chat commands: three requests of 50, no chained pair split
        portal.add_booking(now + dt.timedelta(hours=30 + i), deal_id=900 + i, contact_id=40 + i)
        if i % 3 == 0:
            chats[900 + i] = portal.open_chat([("deal", 900 + i)])
        elif i % 3 == 1:
            chats[900 + i] = portal.open_chat([("contact", 40 + i)])
    assert portal.install().installer is not None
    run_jobs()
    assert len(appointments(services)) == 30
    looked_up = emulator.calls(method="imopenlines.crm.chat.get", portal=portal)
    assert len(looked_up) == 60 and all(c.in_batch for c in looked_up)
    deals = {a.id: a.deal_id for a in appointments(services)}
    firsts = [t for t in appointment_timers(services)
              if t.level.startswith("24h@") and deals[int(t.level.split("@")[1])] in chats]  # fmt: skip
    assert len(firsts) == len(chats) == 20
    for timer in firsts:
        before = emulator.http_requests(portal)
        assert fire_timer(timer.id) == "fired"
        assert emulator.http_requests(portal) - before == 1
    assert all(len(portal.chat_messages(chat.id)) == 1 for chat in chats.values())


def test_the_reminder_names_the_contact_and_never_the_deal_title(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, run_jobs: Any
) -> None:
    """{client_name}: the booking's contact, else the deal's contact — read in the batch
    that reads the booking (no request of its own), stored, and no request when sending; a
    deal's TITLE is never a person's name (a deal without a contact gets the greeting)."""
    anna = installed_portal.add_contact("Анна", "Петрова")
    maria = installed_portal.add_contact("Мария")
    with_contact = installed_portal.add_deal({"TITLE": "Окрашивание — Telegram",
                                              "CONTACT_ID": maria}, events=False)  # fmt: skip
    no_contact = installed_portal.add_deal({"TITLE": "VIP — WhatsApp"}, events=False)
    chats = {}
    for deal in (81, with_contact, no_contact):
        make_journey(services, portal_id, deal_id=deal)
        chats[deal] = installed_portal.open_chat([("deal", deal)])
    before = emulator.http_requests(installed_portal)
    book(emulator, installed_portal, run_jobs, 30, contact_id=anna, deal_id=81)
    assert emulator.http_requests(installed_portal) - before == 1  # the booking's own batch
    book(emulator, installed_portal, run_jobs, 31, deal_id=with_contact)
    book(emulator, installed_portal, run_jobs, 32, deal_id=no_contact)
    names = {a.deal_id: a.client_name for a in appointments(services)}
    assert names == {81: "Анна Петрова", with_contact: "Мария", no_contact: ""}
    for _ in range(3):
        before = emulator.http_requests(installed_portal)
        assert fire_next(services) == "fired"
        # the chat and its history (its messenger's rules) were read in the booking's own
        # batch: one request, join + send
        assert emulator.http_requests(installed_portal) - before == 1
    texts = {deal: installed_portal.chat_messages(chat.id)[0]["text"]
             for deal, chat in chats.items()}  # fmt: skip
    assert texts[81].startswith("Анна Петрова, напоминаем: Стрижка")
    assert texts[with_contact].startswith("Мария, напоминаем:")
    assert texts[no_contact].startswith("Здравствуйте, напоминаем:")
    assert not any("Telegram" in t or "WhatsApp" in t for t in texts.values())


def test_a_portal_may_let_the_model_rephrase_its_reminder(
    emulator: Any,
    installed_portal: Any,
    services: Services,
    portal_id: int,
    run_jobs: Any,
    monkeypatch: Any,
) -> None:
    """Opted in: the model rewrites the template once (it sees the template, not the client),
    the client's details are filled in after; an answer that adds a number is refused."""
    import dataclasses
    import functools

    from b24app.reach import rephrase
    from tests.assistant.llm_stub import LlmStub
    from tests.waiting import deadline_seconds

    # Production gives the model 2 s before the template goes as written; a stalled test
    # machine must not turn that into "the model failed".
    monkeypatch.setattr(rephrase, "Rephraser",
                        functools.partial(rephrase.Rephraser, timeout=deadline_seconds()))  # fmt: skip
    anna = installed_portal.add_contact("Анна")
    with services.db() as session:
        save_settings(session, portal_id, {"appointments": {"rephrase": True}})
    warm = "{client_name}, будем рады видеть вас {date} в {time}: {service} 🌸 {business_name}"
    with LlmStub({"text": warm}) as stub:
        monkeypatch.setattr(services, "settings", dataclasses.replace(
            services.settings, llm_api_url=stub.url, llm_api_key="k"))  # fmt: skip
        chats = []
        for deal in (91, 92):
            make_journey(services, portal_id, deal_id=deal)
            chats.append(installed_portal.open_chat([("deal", deal)]))
            book(emulator, installed_portal, run_jobs, 30 + deal - 91, contact_id=anna,
                 deal_id=deal)  # fmt: skip
        assert fire_next(services) == "fired" and fire_next(services) == "fired"
        assert len(stub.requests) == 1  # one template, one question, for every reminder
        sent = stub.requests[0]["messages"][1]["content"]
        assert "{client_name}" in sent and "Анна" not in sent
        texts = [installed_portal.chat_messages(chat.id)[0]["text"] for chat in chats]
        assert all(t.startswith("Анна, будем рады видеть вас ") for t in texts)
        assert "Стрижка 🌸" in texts[0] and "1 — подтверждаю" in texts[0]
        # Another template: the model's answer adds a price, the template is sent as written.
        with services.db() as session:
            save_settings(session, portal_id, {"reminders": {"templates": {"default": {
                "ru": "{client_name}, ждём вас {date} в {time}."}}}})  # fmt: skip
        stub.answer = {"text": "{client_name}, ждём вас {date} в {time}, скидка 20%!"}
        make_journey(services, portal_id, deal_id=93)
        chat = installed_portal.open_chat([("deal", 93)])
        book(emulator, installed_portal, run_jobs, 40, contact_id=anna, deal_id=93)
        pending = [t for t in appointment_timers(services) if t.state == TimerState.PENDING]
        for timer in pending:
            if timer.due_at > utc_now() + dt.timedelta(hours=14):
                assert fire_timer(timer.id) == "fired"
        assert len(stub.requests) == 2
        text = installed_portal.chat_messages(chat.id)[0]["text"]
        assert text.startswith("Анна, ждём вас ") and "скидка" not in text
