"""A freed time offered to recent no-shows with advertising consent, end to end through real
``b24app worker`` processes: a booking deleted in Bitrix24 (its ``ONBOOKINGDELETE``, form
encoded) frees its time; the clients whose visit was a no-show lately and who gave consent
get the offer in their chat, one without consent, one who wrote «СТОП» after consenting and
one whose no-show is too old do not; a «СТОП» written to the offer is recorded and withdraws
it; two of them answer «да» at once and exactly one booking is made.

The no-show visits are rows of the past (their outcome recorded as any route records it);
the consent and the opt-out are recorded as the CRM tab and the chat record them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from b24app.consent.contact import Contact
from b24app.consent.policy import may_message
from b24app.consent.records import record_consent
from b24app.consent.records import record_opt_out
from b24app.context import Services
from b24app.storage.models import Appointment
from b24app.storage.models import SlotRefill
from b24app.storage.models import utc_now
from b24app.storage.models import VisitOutcome
from tests.appointments.conftest import appointments
from tests.appointments.test_integration import configure
from tests.appointments.test_reschedule import slot_ahead
from tests.appointments.test_reschedule import texts
from tests.plugins.worker import WorkerProcess
from tests.waiting import wait_for


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("B24APP_SLA_SECONDS_PER_MINUTE", "1")


def no_show(services: Services, portal_id: int, contact_id: int, days_ago: int) -> None:
    """A visit of ``contact_id`` ``days_ago`` that was a no-show."""
    starts = utc_now().replace(microsecond=0) - dt.timedelta(days=days_ago)
    with services.db() as session:
        session.add(Appointment(
            portal_id=portal_id, source="booking", contact_id=contact_id, starts_at=starts,
            service="Стрижка", outcome=VisitOutcome.NO_SHOW, outcome_source="stage",
            outcome_at=starts + dt.timedelta(hours=2),
        ))  # fmt: skip


def consent(services: Services, portal_id: int, contact_id: int, *, then_stop: bool) -> None:
    client = Contact(contact_id=contact_id)
    now = utc_now().replace(microsecond=0)
    with services.db() as session:
        record_consent(session, portal_id, client, source="tab", text="Согласен(на)…", by=1,
                       now=now - dt.timedelta(days=5))  # fmt: skip
        if then_stop:
            record_opt_out(session, portal_id, client, source="chat", text="СТОП",
                           now=now - dt.timedelta(days=1))  # fmt: skip


def offered(portal: Any, chat_id: int) -> bool:
    return any("Освободилось" in t for t in texts(portal, chat_id))


def test_a_freed_time_goes_to_one_of_two_no_shows_with_consent_racing(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, fast: None,
    rq_worker: WorkerProcess, rq_worker_factory: Any,
) -> None:  # fmt: skip
    configure(services, portal_id, offsets=["20m"])
    portal = installed_portal
    clients: dict[str, tuple[int, Any]] = {}
    for name, days_ago in (("Галя", 3), ("Зоя", 10), ("Нина", 12), ("Дина", 4), ("Ева", 5),
                           ("Мила", 45)):  # fmt: skip
        contact = portal.add_contact(name, "Клиентова")
        no_show(services, portal_id, contact, days_ago)
        clients[name] = (contact, portal.open_chat([("contact", contact)]))
    for name in ("Галя", "Зоя", "Нина", "Мила"):
        consent(services, portal_id, clients[name][0], then_stop=False)
    consent(services, portal_id, clients["Ева"][0], then_stop=True)  # «СТОП» after consent
    # Дина never consented; Мила's no-show is older than the default 30 days
    rq_worker.start()
    rq_worker_factory()  # a second worker: the two «да» are answered at the same time
    freed_at = slot_ahead(portal)
    owner = portal.add_contact("Анна", "Петрова")
    booking = portal.add_booking(freed_at, name="Стрижка", contact_id=owner)
    wait_for(lambda: any(a.booking_id == booking and a.resource_ids
                         for a in appointments(services)), timeout=90)  # fmt: skip
    portal.delete_booking(booking)
    for name in ("Галя", "Зоя", "Нина"):
        wait_for(lambda c=clients[name][1]: offered(portal, c.id), timeout=90)
    text = texts(portal, clients["Галя"][1].id)[-1]
    assert "«СТОП»" in text  # advertising says how to stop it
    stop_chat = clients["Нина"][1].id
    portal.client_writes(stop_chat, "СТОП")  # recorded, confirmed once, her offer withdrawn
    wait_for(lambda: len(texts(portal, stop_chat)) >= 3, timeout=90)
    with services.db() as session:
        assert not may_message(session, portal_id, Contact(contact_id=clients["Нина"][0]),
                               "advertising")  # fmt: skip
    for name in ("Галя", "Зоя"):
        portal.client_writes(clients[name][1].id, "да")
    for name in ("Галя", "Зоя"):
        wait_for(lambda c=clients[name][1]: len(texts(portal, c.id)) >= 3, timeout=90)
    answers = {name: texts(portal, clients[name][1].id)[-1] for name in ("Галя", "Зоя")}
    won = [n for n, t in answers.items() if t.startswith("Готово, вы записаны")]
    lost = [n for n, t in answers.items() if "уже заняли" in t]
    assert len(won) == 1 and len(lost) == 1, answers
    start = int(freed_at.timestamp())
    at_freed = [b for b in portal.booking.bookings.values()
                if b["datePeriod"]["from"]["timestamp"] == start]  # fmt: skip
    assert len(at_freed) == 1
    new_id = at_freed[0]["id"]
    assert portal.booking.clients[new_id][0]["id"] == clients[won[0]][0]
    with services.db() as session:
        refills = list(session.scalars(select(SlotRefill)))
        assert [(r.booking_id, r.contact_id, r.waitlist_id) for r in refills] == [
            (new_id, clients[won[0]][0], None)
        ]
    # the new booking becomes an appointment of the winner, as any booking does
    wait_for(lambda: any(a.booking_id == new_id and a.contact_id == clients[won[0]][0]
                         for a in appointments(services)))  # fmt: skip
    # no consent, an opt-out after it, a no-show too old: never offered (the offers of one
    # freed time go in one job, done before either «да» was answered)
    for name in ("Дина", "Ева", "Мила"):
        assert not offered(portal, clients[name][1].id), name
    assert len(texts(portal, stop_chat)) == 3  # not told the time is gone: no offer open
