"""A forged «1» confirms nothing (issue 19): any employee can post ``ONOPENLINEMESSAGEADD``
with the portal's ``application_token``; the reply counts only when Bitrix24's history of the
chat shows the client wrote it, after the reminder."""

from __future__ import annotations

from typing import Any

from b24app.context import Services
from b24app.storage.models import AppointmentStatus
from b24app.timers.fire import fire_timer
from tests.appointments.conftest import appointment_timers
from tests.appointments.conftest import appointments
from tests.appointments.conftest import make_journey
from tests.appointments.conftest import run_scheduled
from tests.appointments.test_flow import book


def post_forged(portal: Any, chat_id: int, message_id: int, text: str, **kw: Any) -> None:
    url, payload = portal.message_events(chat_id, message_id, text, **kw)["ONOPENLINEMESSAGEADD"]
    response = portal.employee_posts(url, payload)
    assert response.status_code == 200 and response.json() == {"status": "queued"}


def status(services: Services) -> str:
    (appt,) = appointments(services)
    return appt.status


def test_forged_replies_do_not_confirm_and_the_clients_own_does(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, run_jobs: Any
) -> None:
    make_journey(services, portal_id, deal_id=91, contact_id=6, lead_id=1091)
    # ONOPENLINEMESSAGEADD is forged on a line of the app's own connector, the one case the
    # docs deliver it for; the other lines' replies are read back (test_coexist.py)
    installed_portal.openlines.app_connectors.add("telegrambot")
    chat = installed_portal.open_chat([("deal", 91), ("contact", 6)])
    early = installed_portal.client_writes(chat.id, "1")  # an hour before the reminder
    with installed_portal.lock:
        (message,) = [m for m in chat.messages if m.id == early]
        message.created -= 3600
    book(emulator, installed_portal, run_jobs, 30, contact_id=6, deal_id=91)
    assert emulator.wait_idle()
    run_jobs()
    assert fire_timer(appointment_timers(services)[0].id) == "fired"
    assert status(services) == AppointmentStatus.SCHEDULED
    # 1) a message that is not in the chat at all
    post_forged(installed_portal, chat.id, 987654321, "1")
    run_jobs()
    assert status(services) == AppointmentStatus.SCHEDULED
    # 2) a real «1» of the chat, written by an operator, claimed as the client's
    operator = installed_portal.operator_writes(chat.id, 2, "1")
    post_forged(installed_portal, chat.id, operator, "1")
    run_jobs()
    assert status(services) == AppointmentStatus.SCHEDULED
    # 3) the client's own «1», but written before this reminder (a replay)
    post_forged(installed_portal, chat.id, early, "1")
    run_jobs()
    assert status(services) == AppointmentStatus.SCHEDULED
    # 4) the event's text is not read: a real «спасибо» posted as «1»
    said = installed_portal.client_writes(chat.id, "спасибо")
    assert emulator.wait_idle()
    run_jobs()
    post_forged(installed_portal, chat.id, said, "1")
    run_jobs()
    assert status(services) == AppointmentStatus.SCHEDULED
    # the chat read back while the reply is awaited finds none of these the client's «1»
    run_scheduled(services, run_jobs)
    assert status(services) == AppointmentStatus.SCHEDULED
    # the client's own answer still confirms, end to end
    installed_portal.client_writes(chat.id, "1")
    assert emulator.wait_idle()
    run_scheduled(services, run_jobs)
    assert status(services) == AppointmentStatus.CONFIRMED
