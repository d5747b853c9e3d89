"""``app.info``, ``app.option.*``, ``server.time``, ``scope``."""

from __future__ import annotations

import time
from typing import Any

from devportal.errors import RestError
from devportal.rest import as_dict
from devportal.rest import Ctx
from devportal.rest import method


@method("app.info")
def app_info(ctx: Ctx) -> dict[str, Any]:
    portal = ctx.portal
    version = portal.app.version
    return {
        "ID": 1,
        "CODE": portal.emu.client_id,
        "VERSION": int(version) if str(version).isdigit() else version,
        "STATUS": portal.app_status,
        "INSTALLED": portal.app.install_finished,
        "PAYMENT_EXPIRED": "N",
        "DAYS": None,
        "LANGUAGE_ID": portal.lang,
        "LICENSE": portal.license,
        "LICENSE_TYPE": portal.license.split("_", 1)[-1],
        "LICENSE_FAMILY": portal.license.split("_", 1)[-1],
    }


@method("app.option.set", admin=True)
def app_option_set(ctx: Ctx) -> bool:
    options = as_dict(ctx.param("options"))
    if not options:
        raise RestError(400, "ERROR_ARGUMENT", "Wrong option data", argument="options")
    ctx.portal.app.options.update(options)
    return True


@method("app.option.get")
def app_option_get(ctx: Ctx) -> Any:
    name = ctx.param("option")
    if name:
        return ctx.portal.app.options.get(str(name))
    return dict(ctx.portal.app.options)


@method("user.option.set")
def user_option_set(ctx: Ctx) -> bool:
    ctx.portal.app.user_options.setdefault(ctx.user_id, {}).update(as_dict(ctx.param("options")))
    return True


@method("user.option.get")
def user_option_get(ctx: Ctx) -> Any:
    options = ctx.portal.app.user_options.get(ctx.user_id, {})
    name = ctx.param("option")
    return options.get(str(name)) if name else dict(options)


@method("server.time")
def server_time(ctx: Ctx) -> str:
    return ctx.portal.now_str(time.time())


@method("scope")
def scope(ctx: Ctx) -> list[str]:
    return ctx.portal.scope.split(",")
