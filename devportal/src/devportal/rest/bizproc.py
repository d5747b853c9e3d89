"""``bizproc.robot.*``, ``bizproc.event.send``, ``bizproc.activity.log``."""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import urlsplit

from devportal.errors import access_denied
from devportal.errors import RestError
from devportal.rest import as_dict
from devportal.rest import Ctx
from devportal.rest import method

CODE_RE = re.compile(r"^[a-zA-Z0-9._-]+$")
PROPERTY_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]*$")
FIELDS = ("HANDLER", "AUTH_USER_ID", "USE_SUBSCRIPTION", "NAME", "DESCRIPTION", "PROPERTIES",
          "RETURN_PROPERTIES", "DOCUMENT_TYPE", "FILTER", "USE_PLACEMENT", "PLACEMENT_HANDLER")  # fmt: skip


def _validation(message: str) -> RestError:
    return RestError(400, "ERROR_ACTIVITY_VALIDATION_FAILURE", message)


def _check_url(ctx: Ctx, url: str, name: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise RestError(400, "ERROR_UNSUPPORTED_PROTOCOL", "Unsupported protocol")
    if parts.netloc != ctx.portal.app_url_host():
        raise RestError(
            400, "ERROR_WRONG_HANDLER_URL", f"{name}: the domain must be the application's"
        )


def _validate(ctx: Ctx, fields: dict[str, Any]) -> None:
    if "HANDLER" in fields:
        if not fields["HANDLER"]:
            raise _validation("Empty activity handler!")
        _check_url(ctx, str(fields["HANDLER"]), "HANDLER")
    if "NAME" in fields and not fields["NAME"]:
        raise _validation("Empty activity name!")
    for key in ("PROPERTIES", "RETURN_PROPERTIES"):
        for prop in as_dict(fields.get(key)):
            if not PROPERTY_RE.match(str(prop)):
                raise _validation(f"Wrong property key ({prop})!")
    if fields.get("USE_PLACEMENT") == "Y":
        if not fields.get("PLACEMENT_HANDLER"):
            raise _validation("Empty placement handler!")
        _check_url(ctx, str(fields["PLACEMENT_HANDLER"]), "PLACEMENT_HANDLER")


@method("bizproc.robot.add", admin=True)
def robot_add(ctx: Ctx) -> bool:
    code = str(ctx.param("CODE") or "")
    if not code:
        raise _validation("Empty activity code!")
    if not CODE_RE.match(code):
        raise _validation("Wrong activity code!")
    fields = {k: ctx.params[k] for k in FIELDS if k in ctx.params}
    if "HANDLER" not in fields:
        raise _validation("Empty activity handler!")
    if "NAME" not in fields:
        raise _validation("Empty activity name!")
    _validate(ctx, fields)
    if code in ctx.portal.bizproc.robots:
        raise RestError(
            400, "ERROR_ACTIVITY_ALREADY_INSTALLED", "Activity or Robot already installed!"
        )
    ctx.portal.bizproc.robots[code] = {"CODE": code, **fields}
    return True


@method("bizproc.robot.update", admin=True)
def robot_update(ctx: Ctx) -> bool:
    code = str(ctx.param("CODE") or "")
    if code not in ctx.portal.bizproc.robots:
        raise RestError(400, "ERROR_ACTIVITY_NOT_FOUND", "Activity or Robot not found!")
    fields = {k: v for k, v in as_dict(ctx.param("FIELDS")).items() if k in FIELDS}
    if not fields:
        raise RestError(400, "ERROR_NO_FIELDS", "No fields to update")
    _validate(ctx, fields)
    ctx.portal.bizproc.robots[code].update(fields)
    return True


@method("bizproc.robot.list", admin=True)
def robot_list(ctx: Ctx) -> list[str]:
    return list(ctx.portal.bizproc.robots)


@method("bizproc.robot.delete", admin=True)
def robot_delete(ctx: Ctx) -> bool:
    code = str(ctx.param("CODE") or "")
    if ctx.portal.bizproc.robots.pop(code, None) is None:
        raise RestError(400, "ERROR_ACTIVITY_NOT_FOUND", "Activity or Robot not found!")
    return True


def _call(ctx: Ctx, *, unused: bool) -> Any:
    token = str(ctx.param("EVENT_TOKEN", "event_token") or "")
    call = ctx.portal.bizproc.robot_calls.get(token)
    if call is None or call.expires_at < time.time() or (unused and call.used):
        raise access_denied()
    return call


@method("bizproc.event.send")
def event_send(ctx: Ctx) -> bool:
    call = _call(ctx, unused=True)
    if call.use_subscription == "N":
        raise access_denied()
    call.used = True
    call.return_values = as_dict(ctx.param("RETURN_VALUES", "return_values"))
    message = ctx.param("LOG_MESSAGE", "log_message")
    call.log_message = None if message is None else str(message)
    call.sent_at = time.time()
    return True


@method("bizproc.activity.log")
def activity_log(ctx: Ctx) -> bool:
    call = _call(ctx, unused=False)
    call.logs.append(str(ctx.param("LOG_MESSAGE", "log_message") or ""))
    return True
