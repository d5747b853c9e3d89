"""``profile``, ``user.current``, ``user.get``, ``user.admin``, ``department.get``."""

from __future__ import annotations

from typing import Any

from devportal.query import parse_filter
from devportal.query import parse_order
from devportal.query import parse_start
from devportal.query import select_page
from devportal.rest import as_dict
from devportal.rest import Ctx
from devportal.rest import ListResult
from devportal.rest import method


def public_user(user: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in user.items() if k != "ADMIN"}


@method("profile")
def profile(ctx: Ctx) -> dict[str, Any]:
    user = ctx.portal.people.users[ctx.user_id]
    return {
        "ID": user["ID"],
        "ADMIN": bool(user.get("ADMIN")),
        "NAME": user["NAME"],
        "LAST_NAME": user["LAST_NAME"],
        "PERSONAL_GENDER": user.get("PERSONAL_GENDER", ""),
        "TIME_ZONE": user.get("TIME_ZONE") or ctx.portal.time_zone,
    }


@method("user.current")
def user_current(ctx: Ctx) -> dict[str, Any]:
    return public_user(ctx.portal.people.users[ctx.user_id])


@method("user.admin")
def user_admin(ctx: Ctx) -> bool:
    return ctx.portal.people.is_admin(ctx.user_id)


@method("user.get")
def user_get(ctx: Ctx) -> ListResult:
    raw = dict(as_dict(ctx.param("FILTER", "filter")))
    # Top-level ID/ACTIVE/… are accepted as filter too (documented legacy form).
    for key in ("ID", "ACTIVE", "UF_DEPARTMENT", "EMAIL", "NAME", "LAST_NAME", "USER_TYPE"):
        if key in ctx.params:
            raw.setdefault(key, ctx.params[key])
    rows = {}
    for uid, user in ctx.portal.people.users.items():
        row = public_user(user)
        row["ACTIVE"] = "Y" if user.get("ACTIVE") in (True, "Y") else "N"
        rows[uid] = row
    conds = parse_filter(raw)
    sort = ctx.param("sort", "SORT")
    order = parse_order({sort: ctx.param("order", "ORDER") or "ASC"}) if sort else []
    page = select_page(sorted(rows), rows.get, conds, order, parse_start(ctx.param("start")))
    result = []
    for row in page.rows:
        out = dict(row)
        out["ACTIVE"] = out["ACTIVE"] == "Y"
        result.append(out)
    return ListResult(result, page.total, page.next)


@method("department.get")
def department_get(ctx: Ctx) -> ListResult:
    raw = dict(as_dict(ctx.param("FILTER", "filter")))
    for key in ("ID", "NAME", "SORT", "PARENT", "UF_HEAD"):
        if key in ctx.params:
            raw.setdefault(key, ctx.params[key])
    rows = {}
    for did, dep in ctx.portal.people.departments.items():
        row: dict[str, Any] = {
            "ID": str(did),
            "NAME": dep["NAME"],
            "SORT": int(dep.get("SORT", 500)),
        }
        if dep.get("PARENT"):
            row["PARENT"] = str(dep["PARENT"])
        if dep.get("UF_HEAD"):
            row["UF_HEAD"] = str(dep["UF_HEAD"])
        rows[did] = row
    sort = ctx.param("sort")
    order = parse_order({sort: ctx.param("order") or "ASC"}) if sort else []
    page = select_page(
        sorted(rows), rows.get, parse_filter(raw), order, parse_start(ctx.param("START", "start"))
    )
    return ListResult(page.rows, page.total, page.next)
