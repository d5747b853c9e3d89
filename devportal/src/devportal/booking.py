"""Online Booking (Онлайн-запись) of an emulated portal: resources, bookings, their clients and
deal links, in the shapes of ``booking.v1.*`` (tests/fixtures/client-loop/booking_*).

The booking object carries no clients and no CRM links (they are separate lists); there is no
confirmation or visit state. Each resource has its **slot settings** (``booking.v1.resource.
slots.*``: weekly ranges ``{id, from, to, timezone, weekDays, slotSize}``, minutes since 00:00
in the range's own time zone); they are availability settings, not free times — Bitrix24 has
no free-slot query, so the app computes free times from them. People's actions
(:class:`Bookings`: ``add_booking``, ``move_booking``, ``delete_booking``) fire
``ONBOOKINGADD`` / ``ONBOOKINGUPDATE`` / ``ONBOOKINGDELETE`` with ``data.ID`` only.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from typing import Any
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devportal.portal import Portal

from devportal.resource_types import ResourceTypes

DEFAULT_RESOURCES: list[dict[str, Any]] = [
    {"id": 1, "typeId": 1, "name": "Мастер Ольга", "description": None, "isMain": "Y"},
    {"id": 2, "typeId": 2, "name": "Кабинет 1", "description": None, "isMain": "N"},
    {"id": 3, "typeId": 2, "name": "Кабинет 2", "description": None, "isMain": "N"},
]
WEEK_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def default_slots(timezone: str) -> dict[int, list[dict[str, Any]]]:
    """The demo salon's slot settings: the master works Mon-Fri 10:00-20:00 and Sat
    10:00-16:00 in hour slots; the rooms Mon-Sat 09:00-21:00 in half hours. (Our choice: the
    docs do not say what a new resource has before ``slots.set``.)"""
    weekdays = list(WEEK_DAYS[:5])
    rows = {
        1: [
            {"from": 600, "to": 1200, "weekDays": weekdays, "slotSize": 60},
            {"from": 600, "to": 960, "weekDays": ["Sat"], "slotSize": 60},
        ],
        2: [{"from": 540, "to": 1260, "weekDays": [*weekdays, "Sat"], "slotSize": 30}],
        3: [{"from": 540, "to": 1260, "weekDays": [*weekdays, "Sat"], "slotSize": 30}],
    }
    return {rid: [{**r, "timezone": timezone} for r in ranges] for rid, ranges in rows.items()}


@dataclass
class BookingStore:
    """Bookings by id (REST shape), plus clients and external data per booking."""

    bookings: dict[int, dict[str, Any]] = field(default_factory=dict)
    clients: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    external: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    resources: dict[int, dict[str, Any]] = field(
        default_factory=lambda: {int(r["id"]): dict(r) for r in DEFAULT_RESOURCES}
    )
    # the resource types, with Booking's own client notifications (their fields show on the
    # resources too: ``types.overlay``)
    types: ResourceTypes = field(default_factory=ResourceTypes)
    # resource id -> slot settings in the REST shape (``slots.list``), ids from ``next_slot_id``
    slots: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    next_id: int = 1
    next_slot_id: int = 1

    def set_slots(self, resource_id: int, ranges: list[dict[str, Any]]) -> None:
        """Replace the resource's slot settings (``slots.set``: replacing is our reading;
        [silent] on replace vs append). ``ranges`` are already validated."""
        rows = []
        for r in ranges:
            rows.append({"from": int(r["from"]), "id": self.next_slot_id,
                         "slotSize": int(r["slotSize"]), "timezone": str(r["timezone"]),
                         "to": int(r["to"]), "weekDays": list(r["weekDays"])})  # fmt: skip
            self.next_slot_id += 1
        self.slots[resource_id] = rows

    def add(
        self,
        resource_ids: list[int],
        start: int,
        end: int,
        timezone: str,
        name: str = "",
        description: str = "",
    ) -> int:
        booking_id = self.next_id
        self.next_id += 1
        self.bookings[booking_id] = {
            "datePeriod": {
                "from": {"timestamp": int(start), "timezone": timezone},
                "to": {"timestamp": int(end), "timezone": timezone},
            },
            "description": description or None,
            "id": booking_id,
            "name": name,
            "resourceIds": [int(r) for r in resource_ids],
        }
        self.clients[booking_id] = []
        self.external[booking_id] = []
        return booking_id

    def get(self, booking_id: int) -> dict[str, Any] | None:
        row = self.bookings.get(booking_id)
        return copy.deepcopy(row) if row is not None else None

    def delete(self, booking_id: int) -> bool:
        self.clients.pop(booking_id, None)
        self.external.pop(booking_id, None)
        return self.bookings.pop(booking_id, None) is not None

    def within(self, date_from: int, date_to: int) -> list[int]:
        """Bookings overlapping ``[date_from, date_to)`` (overlap is our reading; [silent])."""
        return [
            b["id"]
            for b in self.bookings.values()
            if b["datePeriod"]["from"]["timestamp"] < date_to
            and b["datePeriod"]["to"]["timestamp"] > date_from
        ]

    def with_client(self, code: str, client_id: int) -> list[int]:
        return [
            bid
            for bid, rows in self.clients.items()
            if any(r["type"]["code"] == code and int(r["id"]) == client_id for r in rows)
        ]


class Bookings(BookingStore):
    """The Online Booking area of one portal: the store, seeded with the salon's slot
    settings, and what a receptionist does in the Booking UI."""

    def __init__(self, portal: Portal) -> None:
        super().__init__()
        self.portal = portal
        for resource_id, ranges in default_slots(portal.time_zone).items():
            self.set_slots(resource_id, ranges)

    def add_booking(
        self,
        start: datetime | float,
        minutes: int = 60,
        *,
        name: str = "",
        resource_ids: list[int] | None = None,
        contact_id: int | None = None,
        deal_id: int | None = None,
        by_user: int | None = 1,
        time_zone: str | None = None,
    ) -> int:
        """A booking made in the Booking UI, with its client and deal; fires ONBOOKINGADD.
        ``time_zone``: the booking's own (``datePeriod.timezone``), default the portal's."""
        p = self.portal
        ts = int(start.timestamp() if isinstance(start, datetime) else start)
        with p.lock:
            zone = time_zone or p.time_zone
            booking_id = self.add(resource_ids or [1], ts, ts + minutes * 60, zone, name)
            if contact_id:
                self.clients[booking_id] = [
                    {"id": int(contact_id), "type": {"code": "CONTACT", "module": "crm"}}
                ]
            if deal_id:
                self.external[booking_id] = [
                    {"entityTypeId": "DEAL", "moduleId": "crm", "value": str(deal_id)}
                ]
            out = p.bus.deliveries("ONBOOKINGADD", {"ID": str(booking_id)}, by_user)
        p.bus.send(out)
        return booking_id

    def move_booking(self, booking_id: int, start: datetime | float, minutes: int = 60,
                     *, by_user: int | None = 1) -> None:  # fmt: skip
        p = self.portal
        ts = int(start.timestamp() if isinstance(start, datetime) else start)
        with p.lock:
            row = self.bookings[booking_id]
            row["datePeriod"]["from"]["timestamp"] = ts
            row["datePeriod"]["to"]["timestamp"] = ts + minutes * 60
            out = p.bus.deliveries("ONBOOKINGUPDATE", {"ID": str(booking_id)}, by_user)
        p.bus.send(out)

    def delete_booking(self, booking_id: int, *, by_user: int | None = 1) -> None:
        p = self.portal
        with p.lock:
            if not self.delete(booking_id):
                raise KeyError(booking_id)
            out = p.bus.deliveries("ONBOOKINGDELETE", {"ID": str(booking_id)}, by_user)
        p.bus.send(out)
