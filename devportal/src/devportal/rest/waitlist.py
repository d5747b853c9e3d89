"""``booking.v1.waitlist.*`` and ``booking.v1.booking.createfromwaitlist``: Online Booking's
waitlist (state in :mod:`devportal.waitlist`, where the formats and the assumptions are).

Errors carry a numeric ``error`` as the booking methods' do: 1040 "Wait list not found", 1038
"wait list item not found" (``createfromwaitlist``: no entry, or the resources are not free
for the period), 0 missing field, 100 missing parameter, 422 invalid date / period.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from devportal.rest import as_dict
from devportal.rest import as_list
from devportal.rest import Ctx
from devportal.rest import ListResult
from devportal.rest import method
from devportal.rest import paged
from devportal.rest.booking import _int_param
from devportal.rest.booking import _missing
from devportal.rest.booking import _period
from devportal.rest.booking import _resources
from devportal.rest.booking import BookingError

PAGE = 50


def _entry(ctx: Ctx, entry_id: int, not_found: int = 1040) -> dict[str, Any]:
    row = ctx.portal.waitlist.get(entry_id)
    if row is None:
        raise BookingError(not_found, "Wait list not found")
    return row


def _day(raw: Any) -> dt.date:
    try:
        return dt.datetime.strptime(str(raw), "%d.%m.%Y").date()
    except ValueError:
        raise BookingError(422, "Invalid date") from None


@method("booking.v1.waitlist.add")
def waitlist_add(ctx: Ctx) -> dict[str, int]:
    if ctx.param("fields") in (None, ""):
        raise _missing("fields")
    fields = as_dict(ctx.param("fields"))
    return {"id": ctx.portal.waitlist.add(str(fields.get("note") or ""))}


@method("booking.v1.waitlist.get")
def waitlist_get(ctx: Ctx) -> dict[str, Any]:
    return {"waitList": _entry(ctx, _int_param(ctx, "id"))}


@method("booking.v1.waitlist.update")
def waitlist_update(ctx: Ctx) -> bool:
    entry_id = _int_param(ctx, "id")
    if ctx.param("fields") in (None, ""):
        raise _missing("fields")
    _entry(ctx, entry_id)
    fields = as_dict(ctx.param("fields"))
    if "note" in fields:
        ctx.portal.waitlist.entries[entry_id]["note"] = str(fields["note"] or "") or None
    return True


@method("booking.v1.waitlist.delete")
def waitlist_delete(ctx: Ctx) -> bool:
    ctx.portal.waitlist.delete(_int_param(ctx, "id"))
    return True


@method("booking.v1.waitlist.list")
def waitlist_list(ctx: Ctx) -> ListResult:
    store = ctx.portal.waitlist
    within = as_dict(as_dict(ctx.param("filter", "FILTER")).get("createdWithin"))
    ids = sorted(store.entries)
    if within:
        if "from" not in within or "to" not in within:
            raise BookingError(0, "Required fields: from, to")
        inside = set(store.created_within(_day(within["from"]), _day(within["to"])))
        ids = [i for i in ids if i in inside]
    return paged(ctx, ids, PAGE, lambda page: {"waitList": [store.get(i) for i in page]})


@method("booking.v1.waitlist.client.list")
def waitlist_client_list(ctx: Ctx) -> dict[str, Any]:
    entry_id = _int_param(ctx, "waitListId")
    _entry(ctx, entry_id)
    return {"waitListClient": [dict(c) for c in ctx.portal.waitlist.clients[entry_id]]}


@method("booking.v1.waitlist.client.set")
def waitlist_client_set(ctx: Ctx) -> bool:
    entry_id = _int_param(ctx, "waitListId")
    if ctx.param("clients") in (None, ""):
        raise _missing("clients")
    _entry(ctx, entry_id)
    rows = []
    for raw in as_list(ctx.param("clients")):
        item, kind = as_dict(raw), as_dict(as_dict(raw).get("type"))
        code = str(kind.get("code") or "").upper()
        if "id" not in item or code not in ("CONTACT", "COMPANY"):
            raise BookingError(0, "Required fields: id, type")
        rows.append({"id": int(str(item["id"])), "type": {"code": code, "module": "crm"}})
    ctx.portal.waitlist.clients[entry_id] = rows
    return True


@method("booking.v1.booking.createfromwaitlist")
def booking_from_waitlist(ctx: Ctx) -> int:
    entry_id = _int_param(ctx, "waitListId")
    if ctx.param("fields") in (None, ""):
        raise _missing("fields")
    fields = as_dict(ctx.param("fields"))
    if "resourceIds" not in fields or "datePeriod" not in fields:
        raise BookingError(0, "Required fields: resourceIds, datePeriod")
    entry = _entry(ctx, entry_id, not_found=1038)
    resources = _resources(ctx, fields["resourceIds"])
    start, end, tz = _period(fields["datePeriod"])
    store = ctx.portal.booking
    if any(
        set(store.bookings[b]["resourceIds"]) & set(resources) for b in store.within(start, end)
    ):
        raise BookingError(1038, "wait list item not found")  # the docs' code for "not free"
    booking_id = store.add(resources, start, end, tz, str(fields.get("name") or ""),
                           str(fields.get("description") or entry.get("note") or ""))  # fmt: skip
    store.clients[booking_id] = [dict(c) for c in ctx.portal.waitlist.clients[entry_id]]
    ctx.portal.waitlist.delete(entry_id)
    ctx.emit("ONBOOKINGADD", {"ID": str(booking_id)})
    return booking_id
