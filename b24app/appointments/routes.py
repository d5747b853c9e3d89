"""The two other routes to an appointment, besides Online Booking (:mod:`.booking`):

* **the reminders robot** (:func:`robot_appointment`): an automation rule passes the time (as
  before); the appointment is recorded on the lead's journey and reminded to the client like a
  booking, with the robot's offsets. A second run with another time moves it.
* **a date field** (:func:`follow_date_field`): the admin picks a datetime field of the lead
  or the deal (``settings["appointments"]["date_field"]``); after each event of that entity
  one ``crm.item.get`` reads it (only on portals that configured it) and the appointment is
  created, moved, or cancelled when the field is emptied.

Whatever the route, one visit is one appointment: the same journey at the same time finds
the row another route created (:func:`b24app.appointments.store.upsert_appointment`), and the
legacy manager-only reminders of the lead (policy ``reminder``) are cancelled, so a visit is
reminded once.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy import update

from b24app.appointments.names import fetch_names
from b24app.appointments.names import person_name
from b24app.appointments.remind import cancel_legacy_reminders
from b24app.appointments.remind import schedule_appointment
from b24app.appointments.store import active_portal
from b24app.appointments.store import cancel_appointment
from b24app.appointments.store import upsert_appointment
from b24app.bitrix.errors import BitrixError
from b24app.context import Services
from b24app.leads.snapshot import parse_time
from b24app.settings import load_settings
from b24app.storage.models import Appointment
from b24app.storage.models import AppointmentStatus
from b24app.storage.models import Portal

log = logging.getLogger(__name__)

ENTITY_TYPE_IDS = {"lead": 1, "deal": 2}


def _current(session: Any, portal_id: int, source: str, **ids: int) -> Appointment | None:
    """The live appointment a route made for this lead/deal (the one a new time moves)."""
    conditions = [getattr(Appointment, k) == v for k, v in ids.items()]
    return session.scalar(
        select(Appointment)
        .where(
            Appointment.portal_id == portal_id,
            Appointment.source == source,
            Appointment.booking_id.is_(None),
            Appointment.status != AppointmentStatus.CANCELLED,
            *conditions,
        )
        .order_by(Appointment.starts_at.desc())
        .limit(1)
    )


def _place(
    services: Services, portal_id: int, source: str, entity: str, entity_id: int,
    starts_at: dt.datetime, service: str = "", offsets: list[str] | None = None,
    client_name: str | None = None,
) -> int:  # fmt: skip
    ids = {f"{entity}_id": entity_id}
    unnamed: str | None = None  # the portal's member id when the client's name is still unread
    with services.db() as session:
        previous = _current(session, portal_id, source, **ids)
        moment = starts_at.replace(microsecond=0)
        if previous is not None and previous.starts_at != moment:
            previous.starts_at = moment  # moved: the same row follows the new time
            previous.confirmed_at = None
            previous.status = AppointmentStatus.SCHEDULED
            session.flush()
        appt, _ = upsert_appointment(
            session, portal_id, starts_at=moment, source=source, service=service,
            client_name=client_name, **ids,
        )  # fmt: skip
        if offsets:
            appt.offsets = list(offsets)
        appointment_id = appt.id
        if appt.client_name is None:
            portal = session.get(Portal, portal_id)
            unnamed = portal.member_id if portal is not None else None
    if unnamed is not None:
        _read_name(services, unnamed, appointment_id, entity, entity_id)
    if entity == "lead":
        cancel_legacy_reminders(services, portal_id, entity_id)  # the legacy manager-only reminders
    return schedule_appointment(services, appointment_id)


def _read_name(
    services: Services, member_id: str, appointment_id: int, entity: str, entity_id: int
) -> None:
    """Read and store the client's name once (the robot passes none): one request, at
    creation, so that no reminder needs one. A failure leaves it unread (the greeting)."""
    try:
        name = fetch_names(services.bitrix(member_id), {"x": (entity, entity_id)}).get("x", "")
    except BitrixError as exc:
        log.info("client name of %s %s not read: %s", entity, entity_id, exc.code)
        return
    with services.db() as session:
        session.execute(
            update(Appointment)
            .where(Appointment.id == appointment_id, Appointment.client_name.is_(None))
            .values(client_name=name[:255])
            .execution_options(synchronize_session=False)
        )


def robot_appointment(
    services: Services, portal_id: int, lead_id: int, starts_at: dt.datetime, *,
    service: str, offsets: list[str],
) -> int:  # fmt: skip
    """The reminders robot: record the appointment, arm its reminders; returns how many."""
    return _place(services, portal_id, "robot", "lead", lead_id, starts_at, service, offsets)


def follow_date_field(
    services: Services, member_id: str, entity: str, entity_id: int, *, deleted: bool = False
) -> str:
    """After a lead/deal event: bring the date-field appointment in line with the field."""
    with services.db() as session:
        portal = active_portal(session, member_id)
        if portal is None:
            return "off"
        portal_id = portal.id
        config = load_settings(session, portal_id)["appointments"]["date_field"]
    if config.get("entity") != entity or not config.get("field"):
        return "off"
    value = None
    name: str | None = None
    if not deleted:
        commands: dict[str, tuple[str, dict[str, Any]]] = {
            "item": (
                "crm.item.get",
                {
                    "entityTypeId": ENTITY_TYPE_IDS[entity],
                    "id": entity_id,
                    "useOriginalUfNames": "Y",
                },
            ),  # fmt: skip
        }
        if entity == "deal":  # a deal's person is its contact, read in the same request
            commands["contact"] = ("crm.contact.get", {"ID": "$result[item][item][contactId]"})
        result = services.bitrix(member_id).batch(commands)
        error = result.error("item")
        if error is not None:
            raise error
        item = (result.results.get("item") or {}).get("item") or {}
        value = _field(item, str(config["field"]))
        if entity == "lead":
            name = person_name(item)
        else:  # never the deal's title: its contact's name, or none
            contact = result.results.get("contact")
            linked = isinstance(contact, dict) and str(contact.get("ID")) == str(
                item.get("contactId")
            )
            name = person_name(contact) if linked else ""
    if value is None:
        with services.db() as session:
            current = _current(session, portal_id, "field", **{f"{entity}_id": entity_id})
            if current is None or not cancel_appointment(session, current):
                return "none"
            appointment_id = current.id
        schedule_appointment(services, appointment_id)
        return "cancelled"
    _place(services, portal_id, "field", entity, entity_id, value, client_name=name)
    return "scheduled"


def _field(item: dict[str, Any], name: str) -> dt.datetime | None:
    wanted = name.replace("_", "").lower()
    for key, raw in item.items():
        if key == name or key.replace("_", "").lower() == wanted:
            return parse_time(raw)
    return None
