"""The robot and date-field routes, and one appointment per journey and time."""

from __future__ import annotations

import datetime as dt
from typing import Any

from b24app.appointments.routes import robot_appointment
from b24app.context import Services
from b24app.settings import save_settings
from b24app.storage.models import AppointmentStatus
from b24app.storage.models import TimerState
from tests.appointments.conftest import appointment_timers
from tests.appointments.conftest import appointments
from tests.appointments.conftest import make_journey
from tests.appointments.conftest import utc_now


def test_robot_and_booking_for_the_same_visit_make_one_appointment(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, run_jobs: Any
) -> None:
    lead = installed_portal.add_lead({"TITLE": "Маникюр — сайт", "NAME": "Ольга",
                                      "LAST_NAME": "Ким"}, events=False)  # fmt: skip
    journey_id = make_journey(services, portal_id, deal_id=91, lead_id=lead)
    when = (utc_now() + dt.timedelta(hours=30)).replace(microsecond=0)
    assert robot_appointment(services, portal_id, lead, when, service="Маникюр",
                             offsets=["24h", "2h"]) == 2  # fmt: skip
    # The robot passes no name: the lead's is read once, at creation (the booking's deal 91
    # has no contact in the emulator: "no name" from it does not wipe the lead's).
    installed_portal.add_booking(when.replace(tzinfo=dt.UTC), deal_id=91)
    assert emulator.wait_idle()
    run_jobs()
    (appt,) = appointments(services)
    assert appt.journey_id == journey_id and appt.source == "robot"
    assert appt.booking_id is not None and appt.deal_id == 91 and appt.lead_id == lead
    assert appt.client_name == "Ольга Ким"
    pending = [t for t in appointment_timers(services) if t.state == TimerState.PENDING]
    assert len(pending) == 2
    # A robot-only appointment follows the robot's new time; a booking keeps its own.
    make_journey(services, portal_id, deal_id=92, lead_id=4343)
    robot_appointment(services, portal_id, 4343, when, service="Стрижка", offsets=["2h"])
    later = when + dt.timedelta(hours=5)
    robot_appointment(services, portal_id, 4343, later, service="Стрижка", offsets=["2h"])
    rows = [a for a in appointments(services) if a.lead_id == 4343]
    assert [a.starts_at for a in rows] == [later]
    assert [a.starts_at for a in appointments(services) if a.lead_id == lead] == [when]


def _visit_field(installed_portal: Any, services: Services, portal_id: int, entity: str) -> None:
    """A datetime user field UF_CRM_VISIT on ``entity``, picked as the appointment time."""
    import requests

    admin = installed_portal.tokens_for(1).access_token
    requests.post(
        installed_portal.client_endpoint + f"crm.{entity}.userfield.add",
        json={"fields": {"FIELD_NAME": "VISIT", "USER_TYPE_ID": "datetime"}, "auth": admin},
        timeout=10,
    ).raise_for_status()
    with services.db() as session:
        save_settings(session, portal_id, {"appointments": {
            "date_field": {"entity": entity, "field": "UF_CRM_VISIT"}}})  # fmt: skip


def test_date_field_creates_moves_and_cancels(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, run_jobs: Any
) -> None:
    _visit_field(installed_portal, services, portal_id, "lead")
    first = (utc_now() + dt.timedelta(days=2)).replace(microsecond=0, second=0)
    local = first.replace(tzinfo=dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=3)))
    lead_id = installed_portal.add_lead({"TITLE": "Визит", "NAME": "Ирина",
                                         "UF_CRM_VISIT": local.isoformat()})  # fmt: skip
    assert emulator.wait_idle()
    run_jobs()
    (appt,) = appointments(services)
    assert appt.source == "field" and appt.lead_id == lead_id and appt.starts_at == first
    assert appt.client_name == "Ирина"  # from the crm.item.get that reads the field
    moved = first + dt.timedelta(hours=3)
    installed_portal.update_lead(
        lead_id, {"UF_CRM_VISIT": moved.replace(tzinfo=dt.UTC).isoformat()}
    )
    assert emulator.wait_idle()
    run_jobs()
    (appt,) = appointments(services)
    assert appt.starts_at == moved
    installed_portal.update_lead(lead_id, {"UF_CRM_VISIT": ""})
    assert emulator.wait_idle()
    run_jobs()
    (appt,) = appointments(services)
    assert appt.status == AppointmentStatus.CANCELLED


def test_deal_date_field_creates_and_moves(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, run_jobs: Any
) -> None:
    """The admin may keep the appointment time on the deal: its events move the reminders."""
    _visit_field(installed_portal, services, portal_id, "deal")
    first = (utc_now() + dt.timedelta(days=2)).replace(microsecond=0, second=0)
    contact = installed_portal.add_contact("Павел", "Орлов")
    deal_id = installed_portal.add_deal(
        {"TITLE": "Визит", "CONTACT_ID": contact,
         "UF_CRM_VISIT": first.replace(tzinfo=dt.UTC).isoformat()}
    )  # fmt: skip
    assert emulator.wait_idle()
    run_jobs()
    (appt,) = appointments(services)
    assert appt.source == "field" and appt.deal_id == deal_id and appt.starts_at == first
    # The deal's contact, in the batch that reads the field — never the deal's TITLE.
    assert appt.client_name == "Павел Орлов"
    reads = emulator.calls("crm.contact.get", installed_portal)
    assert len(reads) == 1 and reads[0].in_batch
    moved = first + dt.timedelta(hours=3)
    installed_portal.update_deal(
        deal_id, {"UF_CRM_VISIT": moved.replace(tzinfo=dt.UTC).isoformat()}
    )
    assert emulator.wait_idle()
    run_jobs()
    (appt,) = appointments(services)
    assert appt.starts_at == moved
