"""A Bitrix24 Booking resource's availability: its slot settings and the bookings holding it in
a time window, read in **one** ``batch`` and cached briefly per portal.

Bitrix24 has no free-slot query (its slots are weekly availability settings), so the free
times are computed by the caller from ``booking.v1.resource.slots.list`` (weekly ranges:
minutes since 00:00 in the range's own time zone, weekdays, slot size) minus
``booking.v1.booking.list`` filtered by ``within``. The list has no resource filter, so the
window's bookings of *every* resource are read, ordered by start, ``PAGES`` pages of 50 in the
same batch; when the last page is full the window is only known up to the start of its last
booking (``complete_until``), and nothing later is offered.

The cache (``CACHE_SECONDS``) is what keeps an answer at <= 1 REST request on the answer's path:
the chats of one portal share it, a miss is filled by one of them (a Redis lock) while the
others wait for it. The booking events keep it current: :func:`note_booking` patches the cached
windows with the booking the event job has just read (no extra request).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from typing import Any

from b24app.appointments.reminder_text import parse_offset
from b24app.bitrix.errors import BitrixError
from b24app.context import Services

log = logging.getLogger(__name__)

CACHE_SECONDS = 60
PAGES = 5  # 250 bookings of all resources in the window, in the same batch
PAGE = 50
FILL_WAIT = 3.0  # how long a chat waits for another chat's fill before reading itself
_PREFIX = "b24app:booking-avail"


@dataclass
class Availability:
    """What the portal says about one resource in ``[date_from, date_to)`` (Unix seconds)."""

    resource_id: int
    slots: list[dict[str, Any]]  # slots.list rows, as Bitrix24 sends them
    bookings: dict[int, tuple[int, int]]  # booking id -> (from, to), those holding the resource
    date_from: int
    date_to: int
    complete_until: int  # bookings starting before this are all known

    def dump(self) -> str:
        return json.dumps({
            "resource_id": self.resource_id, "slots": self.slots,
            "bookings": [[k, a, b] for k, (a, b) in self.bookings.items()],
            "date_from": self.date_from, "date_to": self.date_to,
            "complete_until": self.complete_until,
        })  # fmt: skip

    @classmethod
    def load(cls, raw: bytes | str) -> Availability:
        data = json.loads(raw)
        return cls(
            resource_id=int(data["resource_id"]),
            slots=list(data["slots"]),
            bookings={int(k): (int(a), int(b)) for k, a, b in data["bookings"]},
            date_from=int(data["date_from"]),
            date_to=int(data["date_to"]),
            complete_until=int(data["complete_until"]),
        )


def _key(member_id: str, resource_id: int, date_from: int, date_to: int) -> str:
    return f"{_PREFIX}:{member_id}:{resource_id}:{date_from}:{date_to}"


def period(booking: dict[str, Any]) -> tuple[int, int] | None:
    """(from, to) Unix seconds of a REST booking object, or None when malformed."""
    try:
        dates = booking["datePeriod"]
        return int(dates["from"]["timestamp"]), int(dates["to"]["timestamp"])
    except (KeyError, TypeError, ValueError):
        return None


def holds(booking: dict[str, Any], resource_id: int) -> bool:
    try:
        return resource_id in {int(r) for r in booking.get("resourceIds") or []}
    except (TypeError, ValueError):
        return False


def _rows(result: Any, key: str) -> list[Any]:
    rows = result.get(key) if isinstance(result, dict) else None
    if isinstance(rows, dict):  # PHP json_encode of a non-list array
        rows = list(rows.values())
    return list(rows) if isinstance(rows, list) else []


def fetch(client: Any, resource_id: int, date_from: int, date_to: int) -> Availability:
    """One ``batch``: the slot settings and ``PAGES`` pages of the window's bookings."""
    within = {"within": {"dateFrom": date_from, "dateTo": date_to}}
    commands: dict[str, tuple[str, dict[str, Any]]] = {
        "slots": ("booking.v1.resource.slots.list", {"resourceId": resource_id})
    }
    for page in range(PAGES):
        commands[f"b{page}"] = (
            "booking.v1.booking.list",
            {"filter": within, "order": {"dateFrom": "asc"}, "start": page * PAGE},
        )
    result = client.batch(commands, halt=False)
    for cmd in ("slots", "b0"):
        error = result.error(cmd)
        if error is not None:
            raise error
    bookings: dict[int, tuple[int, int]] = {}
    complete_until = date_to
    for page in range(PAGES):
        rows = _rows(result.results.get(f"b{page}"), "booking")
        if f"b{page}" in result.errors:
            rows = []  # a later page refused: known up to the previous page only
        for row in rows:
            span = period(row) if isinstance(row, dict) else None
            if span is not None and holds(row, resource_id):
                bookings[int(row["id"])] = span
        if len(rows) < PAGE:
            break
        if page == PAGES - 1 or f"b{page + 1}" in result.errors:
            last = period(rows[-1]) if isinstance(rows[-1], dict) else None
            complete_until = min(complete_until, last[0] if last else date_from)
            break
    slots = [s for s in _rows(result.results.get("slots"), "slots") if isinstance(s, dict)]
    return Availability(resource_id, slots, bookings, date_from, date_to, complete_until)


def availability(
    services: Services,
    client: Any,
    member_id: str,
    resource_id: int,
    date_from: int,
    date_to: int,
) -> Availability | None:
    """The cached availability of the window, else one batch; None when the portal refused
    (the caller falls back to the app's working hours)."""
    key = _key(member_id, resource_id, date_from, date_to)
    cached = services.redis.get(key)
    if cached is not None:
        return Availability.load(cached)
    lock = services.redis.lock(key + ":fill", timeout=15, blocking_timeout=FILL_WAIT)
    acquired = lock.acquire()
    try:
        if acquired:
            cached = services.redis.get(key)  # filled while we waited
            if cached is not None:
                return Availability.load(cached)
        try:
            found = fetch(client, resource_id, date_from, date_to)
        except BitrixError as exc:
            log.warning("resource %s availability not read: %s", resource_id, exc)
            return None
        services.redis.set(key, found.dump(), ex=CACHE_SECONDS)
        return found
    finally:
        if acquired:
            try:
                lock.release()
            except Exception:  # expired meanwhile: nothing to release
                pass


def note_booking(
    services: Services, member_id: str, booking_id: int, booking: dict[str, Any] | None
) -> int:
    """A booking event's news into the cached windows of the portal: ``booking`` is what
    ``booking.v1.booking.get`` returned, None when it is gone. Returns the windows patched."""
    patched = 0
    for raw_key in services.redis.scan_iter(match=f"{_PREFIX}:{member_id}:*", count=100):
        key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
        if key.endswith(":fill"):
            continue
        raw = services.redis.get(key)
        if raw is None:
            continue
        window = Availability.load(raw)
        before = window.bookings.pop(booking_id, None)
        span = period(booking) if booking else None
        if booking is not None and span is not None and holds(booking, window.resource_id):
            if span[0] < window.date_to and span[1] > window.date_from:
                window.bookings[booking_id] = span
        if window.bookings.get(booking_id) != before:
            # keep the entry's remaining lifetime: an event does not make the rest fresher
            services.redis.set(key, window.dump(), keepttl=True, xx=True)
            patched += 1
    return patched


# --- what Booking itself sends the client --------------------------------------------------
#
# Bitrix24 Booking sends its own client messages per resource type, each on by default
# (``booking.v1.resourceType.*``: ``isConfirmationNotificationOn``, ``isReminderNotificationOn``
# …, docs ``api-reference/booking/resource/resource-type/``). The types and the resources
# (``resource.list``: each resource's ``typeId``) are read in one ``batch``, at most every
# ``NOTICES_SECONDS`` per portal, riding in the booking job's own batch when due; the last
# reading is kept for the settings page. Assumptions (the docs are silent): a resource's own
# copies of these fields mirror its type's, so the type's are read; Booking sends a message
# for a booking when it is on for the type of any of the booking's resources (the app would
# rather leave a gap to Booking than send a duplicate).

NOTICES_SECONDS = 600
_NOTICES = "b24app:booking-notices"
SENDS = ("confirmation", "reminder")  # what the app's own reminders would duplicate
FLAGS = {
    "info": "isInfoNotificationOn",
    "confirmation": "isConfirmationNotificationOn",
    "reminder": "isReminderNotificationOn",
    "delayed": "isDelayedNotificationOn",
    "feedback": "isFeedbackNotificationOn",
}
# the field tables' spelling, then the JSON examples' (the pages print both)
DELAYS = {
    "confirmation": ("confirmationDelay", "confirmationNotificationDelay"),
    "reminder": ("reminderDelay", "reminderNotificationDelay"),
}
NOTICE_COMMANDS: dict[str, tuple[str, dict[str, Any]]] = {
    "rtypes": ("booking.v1.resourceType.list", {}),
    "rlist": ("booking.v1.resource.list", {}),
}


def _delay(row: dict[str, Any], kind: str) -> int | None:
    for key in DELAYS[kind]:
        try:
            return int(str(row[key]))
        except (KeyError, TypeError, ValueError):
            continue
    return None


def parse_notices(types: Any, resources: Any, read_at: float) -> dict[str, Any]:
    """The ``resourceType.list`` and ``resource.list`` results → ``{"read_at", "types":
    [{id, name, info, confirmation, reminder, delayed, feedback, confirmation_delay,
    reminder_delay}], "resources": {resource id: type id}}``. A flag missing counts as on
    (Bitrix24's default)."""
    rows = []
    for row in _rows(types, "resource"):
        if not isinstance(row, dict):
            continue
        try:
            type_id = int(str(row.get("id")))
        except ValueError:
            continue
        item: dict[str, Any] = {"id": type_id, "name": str(row.get("name") or "")[:200]}
        for kind, flag in FLAGS.items():
            item[kind] = str(row.get(flag) or "Y").upper() != "N"
        for kind in DELAYS:
            item[f"{kind}_delay"] = _delay(row, kind)
        rows.append(item)
    owners: dict[str, int] = {}
    for row in _rows(resources, "resource"):
        try:
            owners[str(int(str(row["id"])))] = int(str(row["typeId"]))
        except (KeyError, TypeError, ValueError):
            continue
    return {"read_at": read_at, "types": rows[:200], "resources": owners}


def stored_notices(services: Services, member_id: str) -> dict[str, Any] | None:
    """The last reading of the portal's Booking notifications (None: never read)."""
    raw = services.redis.get(f"{_NOTICES}:{member_id}")
    return json.loads(raw) if raw is not None else None


def notice_commands(services: Services, member_id: str, now: float) -> dict[str, Any]:
    """The two reads to add to the caller's batch when the last reading is older than
    ``NOTICES_SECONDS`` (else none)."""
    known = stored_notices(services, member_id)
    if known is not None and now - float(known.get("read_at") or 0) < NOTICES_SECONDS:
        return {}
    return dict(NOTICE_COMMANDS)


def note_notices(services: Services, member_id: str, result: Any, now: float) -> None:
    """Keep what the caller's batch read (nothing when a read was refused: no ``booking``
    scope, an older portal; the app then sends all its reminders)."""
    if any(result.error(cmd) is not None for cmd in NOTICE_COMMANDS):
        return
    if "rtypes" not in result.results:
        return
    found = parse_notices(result.results.get("rtypes"), result.results.get("rlist"), now)
    services.redis.set(f"{_NOTICES}:{member_id}", json.dumps(found))


def booking_sends(notices: dict[str, Any] | None, resource_ids: Any) -> list[str] | None:
    """What Booking itself sends the client for a booking on ``resource_ids``, of
    :data:`SENDS`; None when not known (no reading, or a resource of an unknown type)."""
    if notices is None:
        return None
    types = {int(t["id"]): t for t in notices.get("types") or []}
    kinds: set[str] = set()
    for raw in resource_ids if isinstance(resource_ids, list) else []:
        type_id = (notices.get("resources") or {}).get(str(raw))
        kind = types.get(int(type_id)) if type_id is not None else None
        if kind is None:
            return None
        kinds |= {k for k in SENDS if kind.get(k)}
    return sorted(kinds)


NUDGE = dt.timedelta(hours=2)  # the app's short reminders, kept beside Booking's on request


def offsets_beside_booking(offsets: list[str], sends: list[str] | None, nudge: bool) -> list[str]:
    """The app's reminder offsets for a booking Booking itself confirms or reminds
    (``sends``): none, or only the short ones (≤ 2 h) when the admin wants the nudge; all of
    them when Booking sends neither or it is not known."""
    if not sends:
        return offsets
    return [o for o in offsets if parse_offset(o) <= NUDGE] if nudge else []


def sides(notices: dict[str, Any] | None, offsets: list[str], nudge: bool) -> list[dict[str, Any]]:
    """Who sends what, per resource type, for the settings page: Booking's messages that are
    on, and the app's reminders beside them (the replies in the chat, the outcomes and the SLA
    are the app's in every case)."""
    rows = []
    for kind in (notices or {}).get("types") or []:
        booking = [k for k in FLAGS if kind.get(k)]
        sends = [k for k in SENDS if kind.get(k)]
        rows.append({
            "name": kind.get("name") or f"#{kind.get('id')}",
            "booking": booking,
            "app": offsets_beside_booking(list(offsets), sends, nudge),
        })  # fmt: skip
    return rows
