"""The assistant's pre-booking: an appointment the app knows (so the appointment reminders of
``b24app.appointments`` run for it) and, where the portal uses Online Booking, a booking.

With ``assistant.booking_resource_id`` set, the pre-booking is ``booking.v1.booking.add`` on
that resource, then the client (``booking.v1.booking.client.set``, a CRM contact — leads can be
neither clients nor links) and the deal (``booking.v1.booking.externalData.set``) when the chat
is bound to them (wire formats: tests/fixtures/client-loop/booking_v1_*). The appointment row carries the ``booking_id``, so
the ``ONBOOKINGADD`` that follows finds it instead of adding a second one. Going back after a
pre-booking, or its expiry unconfirmed (``assistant.holds``), deletes the booking (and drops it
from the cached window at once, so the time is offered again without waiting for the event)
and cancels the appointment; a confirmation marks it confirmed.

Free times (``slots.offer_times``): with a resource set, its slot ranges
(``booking.v1.resource.slots.list``) minus its bookings in the window (``booking.v1.booking.
list``), read in one batch and cached per portal (``b24app.appointments.resources``), plus the
other dialogs' pre-bookings; without one (or when the portal does not answer, or the resource
has no slot settings), the portal's working hours minus the appointments the app knows.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from b24app.appointments import outcomes
from b24app.appointments.remind import schedule_appointment
from b24app.appointments.resources import note_booking
from b24app.appointments.store import cancel_appointment
from b24app.appointments.store import upsert_appointment
from b24app.assistant.bot import int_id
from b24app.bitrix.errors import BitrixError
from b24app.context import Services
from b24app.leads.journeys import find_journey
from b24app.reach import is_transient
from b24app.storage.models import Appointment
from b24app.storage.models import AssistantDialog
from b24app.storage.models import utc_now

log = logging.getLogger(__name__)


def prebook(
    services: Services,
    client: Any,
    dialog_pk: int,
    *,
    start_utc: dt.datetime,
    minutes: int,
    service_title: str,
    client_name: str,
    time_zone: str,
    resource_id: int | None,
) -> None:
    """Record the pre-booking (and book it in Online Booking when configured)."""
    with services.db() as session:
        dialog = session.get(AssistantDialog, dialog_pk)
        assert dialog is not None
        portal_id = dialog.portal_id
        lead_id, deal_id, contact_id = dialog.lead_id, dialog.deal_id, dialog.contact_id
        old_booking = dialog.booking_id
        dialog.booking_start = start_utc
        dialog.booking_end = start_utc + dt.timedelta(minutes=minutes)
        dialog.booked_at = utc_now()
    booking_id: int | None = None
    if resource_id:
        if old_booking:
            _delete_booking(services, client, old_booking)
        ts = int(start_utc.replace(tzinfo=dt.UTC).timestamp())
        period = {
            "from": {"timestamp": ts, "timezone": time_zone},
            "to": {"timestamp": ts + minutes * 60, "timezone": time_zone},
        }
        name = f"{service_title} — {client_name}".strip(" —")
        booking_id = int_id(
            client.call(
                "booking.v1.booking.add",
                {"fields": {"resourceIds": [resource_id], "datePeriod": period, "name": name}},
            )
        )
        links: dict[str, tuple[str, dict[str, Any]]] = {}
        if booking_id and contact_id:
            links["client"] = (
                "booking.v1.booking.client.set",
                {"bookingId": booking_id,
                 "clients": [{"id": contact_id, "type": {"module": "crm", "code": "CONTACT"}}]},
            )  # fmt: skip
        if booking_id and deal_id:
            links["deal"] = (
                "booking.v1.booking.externalData.set",
                {"bookingId": booking_id,
                 "externalData": [{"moduleId": "crm", "entityTypeId": "DEAL",
                                   "value": str(deal_id)}]},
            )  # fmt: skip
        if links:
            result = client.batch(links, halt=False)
            if result.errors:
                log.warning("booking links refused: %s", sorted(result.errors))
    with services.db() as session:
        appointment, _ = upsert_appointment(
            session,
            portal_id,
            starts_at=start_utc,
            source="booking" if booking_id else "assistant",
            booking_id=booking_id,
            lead_id=lead_id,
            deal_id=deal_id,
            contact_id=contact_id,
            service=service_title,
        )
        appointment_id = appointment.id
        dialog = session.get(AssistantDialog, dialog_pk)
        assert dialog is not None
        previous = dialog.appointment_id
        dialog.booking_id = booking_id
        dialog.appointment_id = appointment_id
        if previous and previous != appointment_id:
            _cancel_row(session, previous)
    schedule_appointment(services, appointment_id)


def release(
    services: Services, client: Any, dialog_pk: int, *, raise_transient: bool = False
) -> None:
    """The client went back after the pre-booking, or it expired unconfirmed: free the time
    again (the journey's appointment time goes with it). The booking is deleted first: with
    ``raise_transient`` (the expiry job) a limit or outage is raised before anything changed,
    so the job's retry deletes it instead of leaving it behind. Call under the chat's lock."""
    with services.db() as session:
        dialog = session.get(AssistantDialog, dialog_pk)
        assert dialog is not None
        booking_id = dialog.booking_id
    if booking_id:
        _delete_booking(services, client, booking_id, raise_transient=raise_transient)
    with services.db() as session:
        dialog = session.get(AssistantDialog, dialog_pk)
        assert dialog is not None
        appointment_id = dialog.appointment_id
        dialog.booking_start = dialog.booking_end = dialog.booked_at = None
        dialog.booking_id = dialog.appointment_id = None
        if appointment_id:
            _cancel_row(session, appointment_id)
        journey = find_journey(
            session, dialog.portal_id, lead_id=dialog.lead_id, deal_id=dialog.deal_id
        )
        if journey is not None:
            journey.booking_at = None
    if appointment_id:
        schedule_appointment(services, appointment_id)  # disarms its reminders


def confirm(services: Services, dialog_pk: int) -> None:
    """The client confirmed the pre-booking in the chat: the dialog's mark, then the one
    confirmation of the appointments (:func:`b24app.appointments.outcomes.confirm`: the
    appointment and the journey, the confirmation SLA, the CRM stage)."""
    with services.db() as session:
        dialog = session.get(AssistantDialog, dialog_pk)
        assert dialog is not None
        dialog.confirmed_at = dialog.confirmed_at or utc_now()
        appointment_id = dialog.appointment_id
    if appointment_id:
        outcomes.confirm(services, appointment_id)
        schedule_appointment(services, appointment_id)


def _cancel_row(session: Any, appointment_id: int) -> None:
    row = session.get(Appointment, appointment_id)
    if row is not None:
        cancel_appointment(session, row)


def _delete_booking(
    services: Services, client: Any, booking_id: int, *, raise_transient: bool = False
) -> None:
    try:
        client.call("booking.v1.booking.delete", {"id": booking_id})
    except BitrixError as exc:
        if raise_transient and is_transient(exc):
            raise
        log.info("booking %s not deleted: %s", booking_id, exc)
        return
    note_booking(services, client.member_id, booking_id, None)
