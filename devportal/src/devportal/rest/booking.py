"""``booking.v1.*``: bookings, their clients and deal links, resources and
their slot settings (``resource.slots.list/set/unset``; 1009 for an unknown resource).

Errors here carry a **numeric** ``error`` (1021 not found, 1019 not found on update, 1018
empty resource collection, 0 missing required field, 100 missing parameter, 422 invalid
period), unlike the string codes elsewhere. Responses keep each method's own shape: ``add``
→ ``{"id": N}``, ``get`` → ``{"booking": {...}}``, ``list`` → ``{"booking": [...]}``.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo
from zoneinfo import ZoneInfoNotFoundError

from devportal.booking import WEEK_DAYS
from devportal.errors import RestError
from devportal.rest import as_dict
from devportal.rest import as_list
from devportal.rest import Ctx
from devportal.rest import ListResult
from devportal.rest import method
from devportal.rest import paged

PAGE = 50


class BookingError(RestError):
    """A booking error: ``error`` is a number in the body."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(400, str(code), description)
        self.number = code

    def body(self) -> dict[str, Any]:
        return {"error": self.number, "error_description": self.description}


def _missing(name: str) -> BookingError:
    return BookingError(100, f"Could not find value for parameter {{{name}}}")


def _int_param(ctx: Ctx, name: str) -> int:
    raw = ctx.param(name)
    if raw in (None, ""):
        raise _missing(name)
    try:
        return int(str(raw))
    except ValueError:
        raise BookingError(100, f"Invalid value for parameter {{{name}}}") from None


def _period(raw: Any) -> tuple[int, int, str]:
    period = as_dict(raw)
    start, end = as_dict(period.get("from")), as_dict(period.get("to"))
    if not start or not end:
        raise BookingError(0, "Required fields: datePeriod[from], datePeriod[to]")
    try:
        ts_from, ts_to = int(str(start["timestamp"])), int(str(end["timestamp"]))
    except (KeyError, ValueError):
        raise BookingError(422, "Invalid date period") from None
    if ts_to <= ts_from:
        raise BookingError(422, "Invalid date period")
    return ts_from, ts_to, str(start.get("timezone") or end.get("timezone") or "UTC")


def _resources(ctx: Ctx, raw: Any) -> list[int]:
    ids = []
    for value in as_list(raw):
        try:
            ids.append(int(str(value)))
        except ValueError:
            continue
    if not ids or any(i not in ctx.portal.booking.resources for i in ids):
        raise BookingError(1018, "Empty resource collection")
    return ids


def _booking(ctx: Ctx, booking_id: int, not_found: int = 1021) -> dict[str, Any]:
    row = ctx.portal.booking.get(booking_id)
    if row is None:
        raise BookingError(not_found, "Booking not found")
    return row


@method("booking.v1.booking.add")
def booking_add(ctx: Ctx) -> dict[str, int]:
    if ctx.param("fields") in (None, ""):
        raise _missing("fields")
    fields = as_dict(ctx.param("fields"))
    if "resourceIds" not in fields or "datePeriod" not in fields:
        raise BookingError(0, "Required fields: resourceIds, datePeriod")
    resources = _resources(ctx, fields["resourceIds"])
    start, end, tz = _period(fields["datePeriod"])
    booking_id = ctx.portal.booking.add(
        resources, start, end, tz, str(fields.get("name") or ""),
        str(fields.get("description") or ""),
    )  # fmt: skip
    ctx.emit("ONBOOKINGADD", {"ID": str(booking_id)})
    return {"id": booking_id}


@method("booking.v1.booking.get")
def booking_get(ctx: Ctx) -> dict[str, Any]:
    return {"booking": _booking(ctx, _int_param(ctx, "id"))}


@method("booking.v1.booking.update")
def booking_update(ctx: Ctx) -> bool:
    booking_id = _int_param(ctx, "id")
    if ctx.param("fields") in (None, ""):
        raise _missing("fields")
    fields = as_dict(ctx.param("fields"))
    _booking(ctx, booking_id, not_found=1019)
    row = ctx.portal.booking.bookings[booking_id]
    if "resourceIds" in fields:
        row["resourceIds"] = _resources(ctx, fields["resourceIds"])
    if "datePeriod" in fields:
        start, end, tz = _period(fields["datePeriod"])
        row["datePeriod"] = {
            "from": {"timestamp": start, "timezone": tz},
            "to": {"timestamp": end, "timezone": tz},
        }
    for key in ("name", "description"):
        if key in fields:
            row[key] = str(fields[key] or "")
    ctx.emit("ONBOOKINGUPDATE", {"ID": str(booking_id)})
    return True


@method("booking.v1.booking.delete")
def booking_delete(ctx: Ctx) -> bool:
    booking_id = _int_param(ctx, "id")
    if ctx.portal.booking.delete(booking_id):
        ctx.emit("ONBOOKINGDELETE", {"ID": str(booking_id)})
    return True


@method("booking.v1.booking.list")
def booking_list(ctx: Ctx) -> ListResult:
    store = ctx.portal.booking
    filter_ = as_dict(ctx.param("filter", "FILTER"))
    ids = sorted(store.bookings)
    if "within" in filter_:
        within = as_dict(filter_["within"])
        if "dateFrom" not in within or "dateTo" not in within:
            raise BookingError(0, "Required fields: within[dateFrom], within[dateTo]")
        try:
            inside = set(store.within(int(str(within["dateFrom"])), int(str(within["dateTo"]))))
        except ValueError:
            raise BookingError(422, "Invalid date period") from None
        ids = [i for i in ids if i in inside]
    if "client" in filter_:
        wanted: set[int] = set()
        for entity in as_list(as_dict(filter_["client"]).get("entities")):
            entity = as_dict(entity)
            if not {"code", "module", "id"} <= set(entity):
                raise BookingError(0, "Required fields: code, module, id")
            wanted |= set(store.with_client(str(entity["code"]).upper(), int(str(entity["id"]))))
        ids = [i for i in ids if i in wanted]
    order = as_dict(ctx.param("order", "ORDER"))
    for key, direction in reversed(list(order.items())):
        reverse = str(direction).lower() == "desc"
        if key == "id":
            ids.sort(reverse=reverse)
        elif key in ("dateFrom", "dateTo"):
            end = "from" if key == "dateFrom" else "to"
            ids.sort(
                key=lambda i: store.bookings[i]["datePeriod"][end]["timestamp"], reverse=reverse
            )
    return paged(ctx, ids, PAGE, lambda page: {"booking": [store.get(i) for i in page]})


@method("booking.v1.booking.client.list")
def client_list(ctx: Ctx) -> dict[str, Any]:
    booking_id = _int_param(ctx, "bookingId")
    _booking(ctx, booking_id)
    return {"bookingClient": [dict(c) for c in ctx.portal.booking.clients[booking_id]]}


@method("booking.v1.booking.client.set")
def client_set(ctx: Ctx) -> bool:
    booking_id = _int_param(ctx, "bookingId")
    if ctx.param("clients") in (None, ""):
        raise _missing("clients")
    _booking(ctx, booking_id)
    rows = []
    for raw in as_list(ctx.param("clients")):
        item = as_dict(raw)
        kind = as_dict(item.get("type"))
        if "id" not in item or not kind.get("code") or not kind.get("module"):
            raise BookingError(0, "Required fields: id, type")
        code = str(kind["code"]).upper()
        if code not in ("CONTACT", "COMPANY"):
            raise BookingError(0, "Unknown client type")
        rows.append({"id": int(str(item["id"])), "type": {"code": code, "module": "crm"}})
    ctx.portal.booking.clients[booking_id] = rows  # set replaces ([silent]; our reading)
    return True


@method("booking.v1.booking.client.unset")
def client_unset(ctx: Ctx) -> bool:
    booking_id = _int_param(ctx, "bookingId")
    _booking(ctx, booking_id)
    ctx.portal.booking.clients[booking_id] = []
    return True


@method("booking.v1.booking.externaldata.list")
def external_list(ctx: Ctx) -> dict[str, Any]:
    booking_id = _int_param(ctx, "bookingId")
    _booking(ctx, booking_id)
    return {"externalData": [dict(e) for e in ctx.portal.booking.external[booking_id]]}


@method("booking.v1.booking.externaldata.set")
def external_set(ctx: Ctx) -> bool:
    booking_id = _int_param(ctx, "bookingId")
    if ctx.param("externalData") in (None, ""):
        raise _missing("externalData")
    _booking(ctx, booking_id)
    rows = []
    for raw in as_list(ctx.param("externalData")):
        item = as_dict(raw)
        if not {"moduleId", "entityTypeId", "value"} <= set(item):
            raise BookingError(0, "Required fields: moduleId, entityTypeId, value")
        if str(item["moduleId"]) != "crm" or str(item["entityTypeId"]) != "DEAL":
            raise BookingError(0, "Only crm DEAL links are supported")
        rows.append({"entityTypeId": "DEAL", "moduleId": "crm", "value": str(item["value"])})
    ctx.portal.booking.external[booking_id] = rows
    return True


@method("booking.v1.booking.externaldata.unset")
def external_unset(ctx: Ctx) -> bool:
    booking_id = _int_param(ctx, "bookingId")
    _booking(ctx, booking_id)
    ctx.portal.booking.external[booking_id] = []
    return True


@method("booking.v1.resource.list")
def resource_list(ctx: Ctx) -> dict[str, Any]:
    for name in ("filter", "order"):
        raw = ctx.param(name, name.upper())
        if raw not in (None, "") and not isinstance(raw, dict | list):
            raise BookingError(
                100, f"Invalid value for parameter {{{name}}}. Should be value of type array"
            )
    filter_ = as_dict(ctx.param("filter", "FILTER"))
    rows = sorted(ctx.portal.booking.resources.values(), key=lambda r: int(r["id"]))
    if "typeId" in filter_:
        rows = [r for r in rows if str(r["typeId"]) == str(filter_["typeId"])]
    if "isMain" in filter_:
        rows = [r for r in rows if r["isMain"] == str(filter_["isMain"])]
    if "searchQuery" in filter_:
        rows = [r for r in rows if str(filter_["searchQuery"]).lower() in r["name"].lower()]
    return {"resource": [ctx.portal.booking.types.overlay(r) for r in rows]}


def _resource_id(ctx: Ctx) -> int:
    resource_id = _int_param(ctx, "resourceId")
    if resource_id not in ctx.portal.booking.resources:
        raise BookingError(1009, "Resource not found")
    return resource_id


@method("booking.v1.resource.get")
def resource_get(ctx: Ctx) -> dict[str, Any]:
    resource_id = _int_param(ctx, "id")
    row = ctx.portal.booking.resources.get(resource_id)
    if row is None:
        raise BookingError(1009, "Resource not found")
    return {"resource": ctx.portal.booking.types.overlay(row)}


@method("booking.v1.resource.slots.list")
def slots_list(ctx: Ctx) -> dict[str, Any]:
    """``{"slots": [{from, id, slotSize, timezone, to, weekDays}]}``; all at once (the Russian
    docs' method spec: ``total`` is always 0, no paging)."""
    resource_id = _resource_id(ctx)
    return {"slots": [dict(r) for r in ctx.portal.booking.slots.get(resource_id, [])]}


def _slot_range(raw: Any) -> dict[str, Any]:
    item = as_dict(raw)
    missing = [k for k in ("from", "to", "timezone", "weekDays", "slotSize") if k not in item]
    if missing:
        raise BookingError(0, "Required fields: " + ", ".join(missing))
    try:
        start, end, size = (int(str(item[k])) for k in ("from", "to", "slotSize"))
    except ValueError:
        raise BookingError(0, "Required fields: from, to, slotSize must be integers") from None
    days = [str(d) for d in as_list(item["weekDays"])]
    # The docs give the ranges (0-1440, to >= from) and the day names; what Bitrix24 answers
    # to values outside them is [silent]: error 0 here.
    if not 0 <= start <= end <= 1440 or size <= 0 or not days:
        raise BookingError(0, "Invalid slot range")
    if any(d not in WEEK_DAYS for d in days):
        raise BookingError(0, "Invalid weekDays")
    try:
        ZoneInfo(str(item["timezone"]))
    except (ValueError, ZoneInfoNotFoundError):
        raise BookingError(0, "Invalid timezone") from None
    return {"from": start, "to": end, "timezone": str(item["timezone"]), "weekDays": days,
            "slotSize": size}  # fmt: skip


@method("booking.v1.resource.slots.set")
def slots_set(ctx: Ctx) -> bool:
    resource_id = _resource_id(ctx)
    if ctx.param("slots") in (None, ""):
        raise _missing("slots")
    ranges = [_slot_range(raw) for raw in as_list(ctx.param("slots"))]
    ctx.portal.booking.set_slots(resource_id, ranges)
    return True


@method("booking.v1.resource.slots.unset")
def slots_unset(ctx: Ctx) -> bool:
    ctx.portal.booking.slots.pop(_resource_id(ctx), None)
    return True
