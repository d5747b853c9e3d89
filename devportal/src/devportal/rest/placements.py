"""``placement.bind``, ``placement.get``, ``placement.list``, ``placement.unbind``."""

from __future__ import annotations

from typing import Any

from devportal import defaults
from devportal.errors import argument_error
from devportal.errors import RestError
from devportal.rest import as_dict
from devportal.rest import Ctx
from devportal.rest import method

SINGLE_INSTANCE = {"REST_APP_URI", "PAGE_BACKGROUND_WORKER"}


@method("placement.bind", admin=True)
def placement_bind(ctx: Ctx) -> bool:
    code = str(ctx.param("PLACEMENT") or "").upper()
    handler = str(ctx.param("HANDLER") or "")
    if not code:
        raise argument_error("PLACEMENT")
    if not handler:
        raise argument_error("HANDLER")
    if code not in defaults.PLACEMENT_CODES:
        # Documented as one of the placement.bind errors that come with HTTP 200.
        raise RestError(200, "ERROR_PLACEMENT_NOT_FOUND", "Placement not found")
    if not handler.startswith(("http://", "https://")):
        raise RestError(400, "ERROR_WRONG_HANDLER_URL", "Wrong handler URL")
    portal = ctx.portal
    same = [p for p in portal.widgets.placements if p["placement"] == code]
    if code in SINGLE_INSTANCE and same:
        raise RestError(200, "ERROR_PLACEMENT_MAX_COUNT", "Placement max count reached")
    if any(p["handler"] == handler for p in same):
        # Assumption: the docs do not name this error; community reports show ERROR_CORE.
        raise RestError(
            400, "ERROR_CORE", "Unable to set placement handler: Handler already binded"
        )
    portal.widgets.placements.append(
        {
            "id": portal.widgets.next_placement_id,
            "placement": code,
            "handler": handler,
            "title": str(ctx.param("TITLE") or ""),
            "description": str(ctx.param("DESCRIPTION") or ""),
            "groupName": str(ctx.param("GROUP_NAME") or ""),
            "options": as_dict(ctx.param("OPTIONS")),
            "langAll": as_dict(ctx.param("LANG_ALL")),
            "userId": int(ctx.param("USER_ID") or 0),
        }
    )
    portal.widgets.next_placement_id += 1
    return True


@method("placement.get", admin=True)
def placement_get(ctx: Ctx) -> list[dict[str, Any]]:
    return [
        {k: p[k] for k in ("placement", "userId", "handler", "options", "title", "description",
                           "langAll")}
        for p in ctx.portal.widgets.placements
    ]  # fmt: skip


@method("placement.list")
def placement_list(ctx: Ctx) -> list[str]:
    return list(defaults.PLACEMENT_CODES)


@method("placement.unbind", admin=True)
def placement_unbind(ctx: Ctx) -> dict[str, int]:
    code = str(ctx.param("PLACEMENT") or "").upper()
    handler = ctx.param("HANDLER")
    if not code:
        raise argument_error("PLACEMENT")
    keep, count = [], 0
    for p in ctx.portal.widgets.placements:
        if p["placement"] == code and (not handler or p["handler"] == handler):
            count += 2  # documented: counted once when found and once when removed
        else:
            keep.append(p)
    ctx.portal.widgets.placements[:] = keep
    return {"count": count}
