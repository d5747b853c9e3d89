"""The re-invitation after a no-show, end to end through a real ``b24app worker``: due
``after_days`` later (policy days are driven, not waited), it reaches the chat of a client
with a recorded advertising consent, with free times, and nobody else; a booking made after
it counts in the conversion (b24app/appointments/reinvite.py, reinvite_kpi.py)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
import requests

from b24app.appointments.reinvite import REINVITE_POLICY
from b24app.appointments.reinvite import schedule_reinvitation
from b24app.appointments.reinvite_kpi import reinvite_conversion
from b24app.consent.contact import Contact
from b24app.consent.records import record_consent
from b24app.consent.records import record_opt_out
from b24app.context import Services
from b24app.settings import save_settings
from b24app.storage.models import Appointment
from b24app.storage.models import Timer
from b24app.storage.models import TimerState
from b24app.storage.models import VisitOutcome
from tests.appointments.conftest import make_journey
from tests.appointments.conftest import utc_now
from tests.appointments.test_integration import at
from tests.appointments.test_integration import fast  # noqa: F401  (the fixture)
from tests.consent.conftest import due_now
from tests.consent.conftest import timer
from tests.plugins.worker import WorkerProcess
from tests.waiting import wait_for


def no_show(services: Services, portal_id: int, deal_id: int, contact_id: int) -> int:
    """A visit two days ago the client missed (as the outcome records it: issue 23)."""
    journey = make_journey(services, portal_id, deal_id=deal_id, contact_id=contact_id)
    with services.db() as session:
        row = Appointment(
            portal_id=portal_id, journey_id=journey, deal_id=deal_id, contact_id=contact_id,
            service="Маникюр", client_name="Анна", outcome=VisitOutcome.NO_SHOW, outcome_at=utc_now(),
            starts_at=utc_now() - dt.timedelta(days=2),
        )  # fmt: skip
        session.add(row)
        session.flush()
        return int(row.id)


def reinvite_timer(services: Services, appointment_id: int) -> Timer:
    with services.db() as session:
        (row,) = [
            t for t in session.query(Timer).filter(Timer.policy == REINVITE_POLICY)
            if t.level == f"ri@{appointment_id}"
        ]  # fmt: skip
        session.expunge(row)
        return row


@pytest.mark.usefixtures("fast")  # policy minutes of a second: the worker's due times
def test_reinvitation_only_with_consent_and_its_conversion(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int,
    rq_worker: WorkerProcess,
) -> None:  # fmt: skip
    """Three no-shows: with consent → the chat gets free times; without → skipped
    ``no_consent``; consent then «СТОП» → skipped too. A later booking converts."""
    with services.db() as session:
        save_settings(session, portal_id, {"consent": {"reinvite": {"enabled": True,
                                                                    "after_days": 3}}})  # fmt: skip
    people = {}
    for deal_id, name in ((701, "Анна"), (702, "Борис"), (703, "Вера")):
        contact = installed_portal.add_contact(name)
        chat = installed_portal.open_chat([("deal", deal_id), ("contact", contact)])
        people[name] = (contact, chat.id, no_show(services, portal_id, deal_id, contact))
    with services.db() as session:
        text = "Согласна получать предложения"
        record_consent(session, portal_id, Contact(contact_id=people["Анна"][0]), source="tab",
                       text=text, by=1)  # fmt: skip
        record_consent(session, portal_id, Contact(contact_id=people["Вера"][0]), source="tab",
                       text=text, by=1, now=utc_now() - dt.timedelta(hours=1))  # fmt: skip
        record_opt_out(session, portal_id, Contact(contact_id=people["Вера"][0]), source="chat",
                       text="СТОП")  # fmt: skip
    rq_worker.start()
    for _, _, appointment_id in people.values():
        assert schedule_reinvitation(services, appointment_id)
        assert not schedule_reinvitation(services, appointment_id)  # one per no-show
        armed = reinvite_timer(services, appointment_id)
        after = (armed.due_at - armed.started_at).total_seconds()
        assert 3 * 1440 <= after < 3 * 1440 + 1  # 3 days of policy minutes, whole seconds
        due_now(services, armed.id)
    for _, _, appointment_id in people.values():
        row_id = reinvite_timer(services, appointment_id).id
        wait_for(lambda row_id=row_id: timer(services, row_id).state != TimerState.PENDING,
                 what="the re-invitation due")  # fmt: skip

    anna, boris, vera = (reinvite_timer(services, people[n][2]) for n in ("Анна", "Борис", "Вера"))
    assert anna.state == TimerState.FIRED and len(anna.payload["times"]) == 3
    assert boris.state == TimerState.SKIPPED and boris.payload["skip_reason"] == "no_consent"
    assert vera.state == TimerState.SKIPPED and vera.payload["skip_reason"] == "no_consent"
    (sent,) = installed_portal.chat_messages(people["Анна"][1])
    assert sent["text"].startswith("Анна, жаль") and "Маникюр" in sent["text"]
    assert "свободное время" in sent["text"] and "«СТОП»" in sent["text"]
    assert installed_portal.chat_messages(people["Борис"][1]) == []
    assert installed_portal.chat_messages(people["Вера"][1]) == []

    period = (utc_now() - dt.timedelta(days=1), utc_now() + dt.timedelta(days=1))
    with services.db() as session:
        assert reinvite_conversion(session, portal_id, *period)["booked"] == 0
    installed_portal.add_booking(at(86400), name="Маникюр", deal_id=701,
                                 contact_id=people["Анна"][0])  # fmt: skip
    wait_for(lambda: _appointments_of(services, 701) == 2, what="the new booking recorded")
    with services.db() as session:
        assert reinvite_conversion(session, portal_id, *period) == {
            "sent": 1, "booked": 1, "conversion_pct": 100.0,
        }  # fmt: skip
    page = installed_portal.open_app()
    token = re.search(r'name="t" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    today = dt.date.today()
    body = requests.get(
        emulator.app_url("/app/api/dashboard.json"), headers={"X-B24App-Session": token},
        params={"period": "custom", "from": str(today - dt.timedelta(days=1)),
                "to": str(today + dt.timedelta(days=1))}, timeout=10,
    ).json()  # fmt: skip
    assert body["reinvite"] == {"sent": 1, "booked": 1, "conversion_pct": 100.0}
    assert 'id="appt-reinvite"' in installed_portal.open_app().text


def _appointments_of(services: Services, deal_id: int) -> int:
    with services.db() as session:
        return session.query(Appointment).filter(Appointment.deal_id == deal_id).count()


def test_the_sweep_arms_recent_no_shows_once(
    installed_portal: Any, services: Services, portal_id: int
) -> None:
    """The cron sweep arms a no-show marked lately on a portal with re-invitations on, once;
    nothing while they are off (the default)."""
    from b24app.appointments.reinvite import arm_reinvitations

    contact = installed_portal.add_contact("Дина")
    appointment_id = no_show(services, portal_id, 704, contact)
    assert arm_reinvitations() == 0  # off by default
    with services.db() as session:
        save_settings(session, portal_id, {"consent": {"reinvite": {"enabled": True}}})
    assert arm_reinvitations() == 1
    assert arm_reinvitations() == 0  # armed already
    assert reinvite_timer(services, appointment_id).state == TimerState.PENDING


def test_times_come_from_the_booking_resource(
    installed_portal: Any, services: Services, portal_id: int
) -> None:
    """With the assistant's Booking resource, the times offered are the resource's slots
    (09:00–13:00 here), not the working hours (jobs in-process)."""
    from b24app.timers.fire import fire_timer

    with installed_portal.lock:
        installed_portal.booking.set_slots(1, [{
            "from": 540, "to": 780, "slotSize": 60, "timezone": "Europe/Moscow",
            "weekDays": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
        }])  # fmt: skip
    with services.db() as session:
        save_settings(session, portal_id, {
            "assistant": {"booking_resource_id": 1},
            "consent": {"reinvite": {"enabled": True, "after_days": 1}},
        })  # fmt: skip
    contact = installed_portal.add_contact("Ева")
    chat = installed_portal.open_chat([("deal", 705), ("contact", contact)])
    appointment_id = no_show(services, portal_id, 705, contact)
    with services.db() as session:
        record_consent(session, portal_id, Contact(contact_id=contact), source="tab", text="Да")
    assert schedule_reinvitation(services, appointment_id)
    assert fire_timer(reinvite_timer(services, appointment_id).id) == "fired"
    times = reinvite_timer(services, appointment_id).payload["times"]
    assert len(times) == 3
    assert all("09:00" <= t[11:16] <= "12:00" for t in times), times
    (sent,) = [m for m in installed_portal.chat_messages(chat.id) if m["kind"] != "client"]
    assert times[0][8:10] + "." + times[0][5:7] + " " + times[0][11:16] in sent["text"]
