"""``booking.v1.resourceType.*``: Booking's resource types and the client notifications Booking
sends by itself for them (:mod:`devportal.resource_types`). Errors are numeric, as elsewhere in
``booking.v1``: 100 a missing parameter, 0 a missing required field, 1013 an unknown type,
1010 a code already taken. ``list`` answers under the key ``resource`` (the docs' example).
"""

from __future__ import annotations

from typing import Any

from devportal.rest import as_dict
from devportal.rest import Ctx
from devportal.rest import method
from devportal.rest.booking import BookingError

SEARCHABLE = ("name", "code", "moduleId")


def _type_id(ctx: Ctx) -> int:
    raw = ctx.param("id")
    if raw in (None, ""):
        raise BookingError(100, "Could not find value for parameter {id}")
    try:
        type_id = int(str(raw))
    except ValueError:
        raise BookingError(100, "Invalid value for parameter {id}") from None
    if type_id not in ctx.portal.booking.types.types:
        raise BookingError(1013, "Resource type not found")
    return type_id


def _fields(ctx: Ctx) -> dict[str, Any]:
    if ctx.param("fields") in (None, ""):
        raise BookingError(100, "Could not find value for parameter {fields}")
    return as_dict(ctx.param("fields"))


@method("booking.v1.resourcetype.add")
def type_add(ctx: Ctx) -> dict[str, int]:
    fields = _fields(ctx)
    for name in ("name", "code"):
        if not str(fields.get(name) or ""):
            raise BookingError(0, f"Required fields: {name}")
    types = ctx.portal.booking.types
    if any(t.get("code") == str(fields["code"]) for t in types.types.values()):
        raise BookingError(1010, "Resource type with code already exists")
    return {"id": types.add(fields)}


@method("booking.v1.resourcetype.get")
def type_get(ctx: Ctx) -> dict[str, Any]:
    return {"resourceType": ctx.portal.booking.types.get(_type_id(ctx))}


@method("booking.v1.resourcetype.update")
def type_update(ctx: Ctx) -> bool:
    type_id = _type_id(ctx)
    ctx.portal.booking.types.update(type_id, _fields(ctx))
    return True


@method("booking.v1.resourcetype.delete")
def type_delete(ctx: Ctx) -> bool:
    ctx.portal.booking.types.types.pop(_type_id(ctx))
    return True


@method("booking.v1.resourcetype.list")
def type_list(ctx: Ctx) -> dict[str, Any]:
    for name in ("filter", "order"):
        raw = ctx.param(name, name.upper())
        if raw not in (None, "") and not isinstance(raw, dict | list):
            raise BookingError(
                100,
                f"Invalid value to match with parameter {{{name}}}. Should be value of type array",
            )
    filter_ = as_dict(ctx.param("filter", "FILTER"))
    types = ctx.portal.booking.types
    rows = [types.types[i] for i in sorted(types.types)]
    for key in SEARCHABLE:
        if key in filter_:
            rows = [r for r in rows if str(r.get(key)) == str(filter_[key])]
    if "searchQuery" in filter_:
        query = str(filter_["searchQuery"]).lower()
        rows = [r for r in rows if query in str(r.get("name") or "").lower()]
    return {"resource": [types.get(int(r["id"])) for r in rows]}
