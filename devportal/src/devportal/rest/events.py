"""``event.bind``, ``event.get``, ``event.unbind``, ``events``."""

from __future__ import annotations

from typing import Any

from devportal import defaults
from devportal.errors import argument_error
from devportal.errors import RestError
from devportal.rest import Ctx
from devportal.rest import method

# Events of a scope the app was not granted are not available to it ([inferred]: the
# ``events`` method lists the events of the app's scopes).
EVENT_SCOPES = {"ONBOOKING": "booking", "ONOPENLINE": "imopenlines", "ONSESSION": "imopenlines"}


def _scope_granted(ctx: Ctx, event: str) -> bool:
    granted = {s.strip() for s in ctx.portal.scope.split(",")}
    return all(
        scope in granted for prefix, scope in EVENT_SCOPES.items() if event.startswith(prefix)
    )


def _handler_ok(url: str) -> bool:
    return url.startswith(("http://", "https://"))


@method("event.bind", admin=True)
def event_bind(ctx: Ctx) -> bool:
    event = str(ctx.param("event", "EVENT") or "").upper()
    handler = str(ctx.param("handler", "HANDLER") or "")
    event_type = str(ctx.param("event_type", "EVENT_TYPE") or "online").lower()
    offline = event_type == "offline"
    if not event:
        raise argument_error("event")
    if event not in defaults.KNOWN_EVENTS or not _scope_granted(ctx, event):
        raise RestError(400, "ERROR_EVENT_NOT_FOUND", "Event not found")
    if not offline and not handler:
        raise argument_error("handler")
    if handler and not _handler_ok(handler):
        raise RestError(400, "ERROR_WRONG_HANDLER_URL", "Wrong handler URL")
    auth_type = int(ctx.param("auth_type", "AUTH_TYPE") or 0)
    portal = ctx.portal
    for binding in portal.bus.bindings:
        if (
            binding["event"] == event
            and binding["handler"] == handler
            and int(binding["auth_type"]) == auth_type
            and bool(binding["offline"]) == offline
        ):
            raise RestError(400, "ERROR_HANDLER_ALREADY_EXIST", "Handler already exists!")
    portal.bus.bindings.append(
        {
            "id": portal.bus.next_id,
            "event": event,
            "handler": handler,
            "auth_type": str(auth_type),
            "offline": 1 if offline else 0,
        }
    )
    portal.bus.next_id += 1
    return True


@method("event.get")
def event_get(ctx: Ctx) -> list[dict[str, Any]]:
    return [
        {k: b[k] for k in ("event", "handler", "auth_type", "offline")}
        for b in ctx.portal.bus.bindings
    ]


@method("event.unbind", admin=True)
def event_unbind(ctx: Ctx) -> dict[str, int]:
    event = str(ctx.param("event", "EVENT") or "").upper()
    handler = ctx.param("handler", "HANDLER")
    auth_type = ctx.param("auth_type", "AUTH_TYPE")
    if not event:
        raise argument_error("event")
    keep, removed = [], 0
    for binding in ctx.portal.bus.bindings:
        if (
            binding["event"] == event
            and (not handler or binding["handler"] == handler)
            and (auth_type in (None, "") or int(binding["auth_type"]) == int(auth_type))
        ):
            removed += 1
        else:
            keep.append(binding)
    ctx.portal.bus.bindings[:] = keep
    return {"count": removed}


@method("events")
def events(ctx: Ctx) -> list[str]:
    return sorted(defaults.KNOWN_EVENTS)
