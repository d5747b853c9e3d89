"""Online Booking's waitlist (лист ожидания) of an emulated portal, in the shapes of
``booking.v1.waitlist.*`` (the docs: ``api-reference/booking/waitlist/`` of
bitrix24/b24restdocs).

A waitlist entry is ``{id, note}`` with its clients (``{id, type: {module, code}}``, CRM
contacts or companies) kept apart, as the docs show; it names no resource and no day (REST has
none: the wish is in the note, for a person to read). ``list`` filters by the day the entry was
made (``createdWithin``, ``dd.mm.yyyy``, ``to`` exclusive).

Assumptions where the docs are silent: ``get`` answers ``{"waitList": {...}}`` (the booking's
``get`` answers ``{"booking": {...}}``); ``booking.v1.booking.createfromwaitlist`` copies the
entry's clients to the new booking and removes the entry from the waitlist (it is served).
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass
from dataclasses import field
from typing import Any


@dataclass
class WaitlistStore:
    """Waitlist entries by id (REST shape), their clients, and the day each was made."""

    entries: dict[int, dict[str, Any]] = field(default_factory=dict)
    clients: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    created: dict[int, dt.date] = field(default_factory=dict)
    next_id: int = 1

    def add(self, note: str = "", *, contact_id: int | None = None,
            day: dt.date | None = None) -> int:  # fmt: skip
        entry_id = self.next_id
        self.next_id += 1
        self.entries[entry_id] = {"id": entry_id, "note": note or None}
        self.clients[entry_id] = (
            [{"id": int(contact_id), "type": {"code": "CONTACT", "module": "crm"}}]
            if contact_id else []
        )  # fmt: skip
        self.created[entry_id] = day or dt.datetime.now(dt.UTC).date()
        return entry_id

    def get(self, entry_id: int) -> dict[str, Any] | None:
        row = self.entries.get(entry_id)
        return copy.deepcopy(row) if row is not None else None

    def delete(self, entry_id: int) -> bool:
        self.clients.pop(entry_id, None)
        self.created.pop(entry_id, None)
        return self.entries.pop(entry_id, None) is not None

    def created_within(self, first: dt.date, after: dt.date) -> list[int]:
        """Entries made on ``first`` .. the day before ``after``."""
        return sorted(i for i, day in self.created.items() if first <= day < after)
