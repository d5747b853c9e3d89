"""Appointments from Online Booking (wire formats in ``tests/fixtures/client-loop/booking_*``).

``ONBOOKINGADD`` / ``ONBOOKINGUPDATE`` carry only the booking id: :func:`process_booking` reads
the booking, its clients and its deal links in **one** ``batch`` (``booking.v1.booking.get``,
``.client.list``, ``.externalData.list``), links it to the client journey through the deal
(else the contact) and creates or moves the appointment, whose reminders follow.

An event is a claim, not a fact (any employee can forge one with the application token their
browser holds), so ``ONBOOKINGDELETE`` is read the same way: only ``get`` answering 1021
("Booking not found", tests/fixtures/client-loop/error_booking_not_found_1021.json) cancels
the appointment — from our own copy, since a deleted booking can no longer be read. A delete
of a booking that Bitrix24 still has is processed as an update and cancels nothing. Any other
failure of the read (network, rate limit, another error, an answer without a booking) raises,
so the job is retried: it is never taken for "gone". A repeated or late event re-reads the
current state, so processing is idempotent whatever the order. Each event also patches the
cached resource availability the assistant offers times from (``resources.note_booking``).

:func:`import_bookings` (on install) scans the window of the next ``import_days`` days with
``booking.v1.booking.list`` (``filter.within``; there is no "changed since" filter), 50 a page,
and reads the clients and links of each page in one more ``batch``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from b24app import context
from b24app.appointments import names
from b24app.appointments.delivery import booking_chat_commands
from b24app.appointments.delivery import imported_chat_commands
from b24app.appointments.delivery import note_booking_chat
from b24app.appointments.delivery import note_imported_chat
from b24app.appointments.refill import enqueue_refill
from b24app.appointments.refill import freed_appointment
from b24app.appointments.remind import schedule_appointment
from b24app.appointments.resources import booking_sends
from b24app.appointments.resources import note_booking
from b24app.appointments.resources import note_notices
from b24app.appointments.resources import notice_commands
from b24app.appointments.resources import period
from b24app.appointments.resources import stored_notices
from b24app.appointments.store import active_portal
from b24app.appointments.store import cancel_appointment
from b24app.appointments.store import upsert_appointment
from b24app.bitrix.client import BitrixClient
from b24app.context import Services
from b24app.settings import load_settings
from b24app.storage.models import Appointment
from b24app.storage.models import AppointmentStatus

log = logging.getLogger(__name__)

BOOKING_EVENTS = ("ONBOOKINGADD", "ONBOOKINGUPDATE", "ONBOOKINGDELETE")
# What ``booking.v1.booking.get`` answers for a booking that does not exist (1021, as do
# ``.client.*`` and ``.externalData.*``; 1019 is the code of ``.update``, never of ``get``).
NOT_FOUND = "1021"


def links(clients: Any, external: Any) -> tuple[int | None, int | None]:
    """(deal id, contact id) from ``client.list`` and ``externalData.list`` results."""
    deal_id = contact_id = None
    for row in (external or {}).get("externalData") or []:
        if str(row.get("moduleId")) == "crm" and str(row.get("entityTypeId")) == "DEAL":
            try:
                deal_id = int(str(row.get("value")))
                break
            except ValueError:
                continue
    for row in (clients or {}).get("bookingClient") or []:
        kind = row.get("type") or {}
        if str(kind.get("code")).upper() == "CONTACT" and str(kind.get("module")) == "crm":
            contact_id = int(row["id"])
            break
    return deal_id, contact_id


def starts_at(booking: dict[str, Any]) -> dt.datetime:
    ts = int(booking["datePeriod"]["from"]["timestamp"])
    return dt.datetime.fromtimestamp(ts, dt.UTC).replace(tzinfo=None)


def booking_zone(booking: dict[str, Any]) -> str | None:
    """The booking's own time zone (``datePeriod.from.timezone``), when it names a valid one."""
    period = booking.get("datePeriod") if isinstance(booking, dict) else None
    start = period.get("from") if isinstance(period, dict) else None
    name = str(start.get("timezone") or "") if isinstance(start, dict) else ""
    try:
        return name if name and ZoneInfo(name) else None
    except (ValueError, KeyError):
        return None


def _portal_id(services: Services, member_id: str) -> int | None:
    with services.db() as session:
        portal = active_portal(session, member_id)
        return portal.id if portal is not None else None


def _by_booking(session: Session, portal_id: int, booking_id: int) -> Appointment | None:
    return session.scalar(
        select(Appointment).where(
            Appointment.portal_id == portal_id, Appointment.booking_id == booking_id
        )
    )


def cancel_booking(
    services: Services, portal_id: int, booking_id: int, member_id: str | None = None
) -> str:
    """Cancel the appointment of a deleted booking; with ``member_id``, its freed time is
    offered to the waitlist (``b24app.appointments.refill``)."""
    with services.db() as session:
        appt = _by_booking(session, portal_id, booking_id)
        if appt is None:
            return "unknown"
        slot = freed_appointment(appt) if appt.status != AppointmentStatus.CANCELLED else None
        changed = cancel_appointment(session, appt)
        appointment_id = appt.id
    schedule_appointment(services, appointment_id)
    if changed and slot is not None and member_id:
        enqueue_refill(services, member_id, slot)
    return "cancelled" if changed else "unchanged"


def apply_booking(
    services: Services, portal_id: int, booking: dict[str, Any], clients: Any, external: Any,
    client_name: str | None = None, sends: list[str] | None = None, *,
    member_id: str | None = None,
) -> str:  # fmt: skip
    """Create or move the booking's appointment. ``sends``: what Booking itself sends the client
    for it (``resources.booking_sends``); with ``member_id``, the time a move frees is offered
    to the waitlist (``b24app.appointments.refill``)."""
    deal_id, contact_id = links(clients, external)
    with services.db() as session:
        known = _by_booking(session, portal_id, int(booking["id"]))
        before = None
        if known is not None and known.status != AppointmentStatus.CANCELLED:
            before = freed_appointment(known)
        appt, changed = upsert_appointment(
            session,
            portal_id,
            starts_at=starts_at(booking),
            source="booking",
            booking_id=int(booking["id"]),
            deal_id=deal_id,
            contact_id=contact_id,
            service=str(booking.get("name") or ""),
            client_name=client_name,
        )
        if appt.booking_sends != sends:
            appt.booking_sends = sends
            changed = True
        span = period(booking)
        if span is not None:
            appt.resource_ids = [int(r) for r in booking.get("resourceIds") or []]
            appt.ends_at = dt.datetime.fromtimestamp(span[1], dt.UTC).replace(tzinfo=None)
        moved = before is not None and span is not None and before["start"] != span[0]
        # the booking's own time zone: its quiet hours and {time} (remind.wanted_times)
        appt.time_zone = booking_zone(booking) or appt.time_zone
        appointment_id = appt.id
    schedule_appointment(services, appointment_id)
    if moved and before is not None and member_id:
        enqueue_refill(services, member_id, before)
    return "changed" if changed else "unchanged"


def process_booking(
    services: Services, member_id: str, booking_id: int, *, claimed_deleted: bool = False
) -> str:
    """Bring the appointment of one booking in line with Bitrix24 (event job body).

    ``claimed_deleted``: the event said the booking was deleted. Only logged: what Bitrix24
    answers decides (see the module docstring).
    """
    portal_id = _portal_id(services, member_id)
    if portal_id is None:
        return "portal_inactive"
    client = services.bitrix(member_id)
    result = client.batch(
        {
            "booking": ("booking.v1.booking.get", {"id": booking_id}),
            "clients": ("booking.v1.booking.client.list", {"bookingId": booking_id}),
            "links": ("booking.v1.booking.externalData.list", {"bookingId": booking_id}),
            # the client's name, chained in the same request (b24app.appointments.names)
            **names.booking_commands(),
            # and the client's chat, for the first reminder (b24app.appointments.delivery)
            **booking_chat_commands(),
            # Booking's own client messages, when the last reading is old (resources.py)
            **notice_commands(services, member_id, time.time()),
        }
    )
    note_notices(services, member_id, result, time.time())
    error = result.errors.get("booking")
    if error is not None:
        if str(error.get("error")) == NOT_FOUND:
            note_booking(services, member_id, booking_id, None)
            return cancel_booking(services, portal_id, booking_id, member_id)
        raise RuntimeError(f"booking.v1.booking.get failed: {error.get('error')}")
    booking = (result.results.get("booking") or {}).get("booking")
    if not isinstance(booking, dict) or not booking.get("id"):
        # Not a "not found" answer: retried, never taken for a deleted booking.
        raise RuntimeError("booking.v1.booking.get answered without a booking")
    if claimed_deleted:
        log.warning("ONBOOKINGDELETE for booking %s, which Bitrix24 still has: read as an "
                    "update, nothing cancelled", booking_id)  # fmt: skip
    note_booking(services, member_id, booking_id, booking)
    clients, external = result.results.get("clients"), result.results.get("links")
    deal_id, contact_id = links(clients, external)
    with services.db() as session:
        note_booking_chat(session, portal_id, result, clients, external, deal_id, contact_id)
    name = names.booking_name(result, deal_id, contact_id)
    if name is None:  # the contact was not the booking's first client: one more request
        kind, item_id = ("contact", contact_id) if contact_id else ("deal", deal_id)
        name = names.fetch_names(client, {"c": (kind, int(item_id or 0))}).get("c")
    sends = booking_sends(stored_notices(services, member_id), booking.get("resourceIds"))
    return apply_booking(services, portal_id, booking, clients, external, name, sends,
                         member_id=member_id)  # fmt: skip


def import_bookings(
    services: Services, member_id: str, *, now: float | None = None, days: int | None = None
) -> int:
    """Import the bookings of the coming ``days`` (settings ``import_days``, default 30)."""
    portal_id = _portal_id(services, member_id)
    if portal_id is None:
        return 0
    if days is None:
        with services.db() as session:
            days = int(load_settings(session, portal_id)["appointments"]["import_days"])
    start = int(now if now is not None else time.time())
    client = services.bitrix(member_id)
    commands = notice_commands(services, member_id, time.time())
    if commands:
        note_notices(services, member_id, client.batch(commands, halt=False), time.time())
    imported = 0
    offset: int | None = 0
    while offset is not None:
        page = client.call_raw(
            "booking.v1.booking.list",
            {"filter": {"within": {"dateFrom": start, "dateTo": start + days * 86400}},
             "order": {"id": "asc"}, "start": offset},
        )  # fmt: skip
        bookings = ((page.get("result") or {}).get("booking")) or []
        imported += _import_page(services, client, portal_id, bookings)
        offset = page.get("next")
    log.info("imported %d bookings", imported)
    return imported


def _import_page(
    services: Services, client: BitrixClient, portal_id: int, bookings: list[dict[str, Any]]
) -> int:
    if not bookings:
        return 0
    commands: dict[str, tuple[str, dict[str, Any]]] = {}
    for b in bookings:
        commands[f"c{b['id']}"] = ("booking.v1.booking.client.list", {"bookingId": b["id"]})
        commands[f"l{b['id']}"] = ("booking.v1.booking.externalData.list", {"bookingId": b["id"]})
    result = client.batch(commands)
    # The clients' names and chats: one more batch each per page (the contacts are known
    # only now). A chat look-up is pairs of chained commands, so no pair straddles two of the
    # batch's requests of 50; the first reminder then needs no look-up of its own.
    ids = {str(b["id"]): links(result.results.get(f"c{b['id']}"),
                               result.results.get(f"l{b['id']}")) for b in bookings}  # fmt: skip
    wanted: dict[str, tuple[str, int]] = {}
    chats: dict[str, tuple[str, dict[str, Any]]] = {}
    for key, (deal_id, contact_id) in ids.items():
        if contact_id or deal_id:
            wanted[key] = ("contact", contact_id) if contact_id else ("deal", deal_id or 0)
            chats.update(imported_chat_commands(key, deal_id, contact_id))
    found = names.fetch_names(client, wanted)
    if chats:
        seen = client.batch(chats)
        with services.db() as session:
            for key, (deal_id, contact_id) in ids.items():
                note_imported_chat(session, portal_id, seen, key, deal_id, contact_id)
    notices = stored_notices(services, client.member_id)
    for b in bookings:
        apply_booking(
            services, portal_id, b, result.results.get(f"c{b['id']}"),
            result.results.get(f"l{b['id']}"), found.get(str(b["id"]), ""),
            booking_sends(notices, b.get("resourceIds")),
        )  # fmt: skip
    return len(bookings)


def import_job(member_id: str) -> int:
    """RQ job (``bulk`` queue): the install-time window scan."""
    return import_bookings(context.current(), member_id)
