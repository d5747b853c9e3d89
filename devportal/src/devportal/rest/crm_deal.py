"""``crm.deal.*``, ``crm.deal.userfield.*``, ``crm.item.*`` for entityTypeId 2, deal pipelines
(``crm.category.list``, ``crm.dealcategory.list/.default.get/.stage.list``) and
``crm.settings.mode.get`` (1 classic, 2 simple: every new lead becomes a deal at once)."""

from __future__ import annotations

from typing import Any

from devportal import deals
from devportal.errors import access_denied_old_api
from devportal.errors import item_access_denied
from devportal.errors import item_not_found
from devportal.errors import RestError
from devportal.leads import UF_NAME_RE
from devportal.query import parse_filter
from devportal.query import parse_order
from devportal.query import parse_start
from devportal.query import select_page
from devportal.rest import as_dict
from devportal.rest import as_list
from devportal.rest import Ctx
from devportal.rest import ListResult
from devportal.rest import method
from devportal.rest.crm_common import item_id
from devportal.rest.crm_common import original_uf_names
from devportal.rest.crm_common import select_fields
from devportal.rest.crm_common import stage_history_list
from devportal.rest.crm_common import uf_label


def _deal_id(raw: Any) -> int:
    try:
        return int(str(raw))
    except (TypeError, ValueError):
        raise RestError(400, "", "ID is not defined or invalid") from None


def _not_found() -> RestError:
    return RestError(400, "", "Not found")


@method("crm.settings.mode.get")
def settings_mode_get(ctx: Ctx) -> int:
    return int(ctx.portal.crm.crm_mode)


@method("crm.deal.add")
def deal_add(ctx: Ctx) -> int:
    deal_id = deals.create_deal(ctx.portal, as_dict(ctx.param("fields", "FIELDS")), ctx.user_id)
    ctx.emit("ONCRMDEALADD", {"FIELDS": {"ID": str(deal_id)}})
    return deal_id


@method("crm.deal.update")
def deal_update(ctx: Ctx) -> bool:
    deal_id = _deal_id(ctx.param("id", "ID"))
    if ctx.portal.crm.deals.get(deal_id) is None:
        raise _not_found()
    deals.modify_deal(ctx.portal, deal_id, as_dict(ctx.param("fields", "FIELDS")), ctx.user_id)
    ctx.emit("ONCRMDEALUPDATE", {"FIELDS": {"ID": str(deal_id)}})
    return True


@method("crm.deal.get")
def deal_get(ctx: Ctx) -> dict[str, Any]:
    row = ctx.portal.crm.deals.get(_deal_id(ctx.param("id", "ID")))
    if row is None:
        raise _not_found()
    if not ctx.portal.people.may_read(ctx.user_id, "deal", row):
        raise access_denied_old_api()
    return dict(row)


@method("crm.deal.delete")
def deal_delete(ctx: Ctx) -> bool:
    deal_id = _deal_id(ctx.param("id", "ID"))
    if not ctx.portal.crm.deals.delete(deal_id):
        raise _not_found()
    ctx.emit("ONCRMDEALDELETE", {"FIELDS": {"ID": str(deal_id)}})
    return True


@method("crm.deal.list")
def deal_list(ctx: Ctx) -> ListResult:
    portal = ctx.portal
    page = select_page(
        portal.crm.deals.ids, portal.crm.deals.get, parse_filter(as_dict(ctx.param("filter", "FILTER"))),
        parse_order(as_dict(ctx.param("order", "ORDER"))), parse_start(ctx.param("start")),
        tz=portal.tz,
    )  # fmt: skip
    select = [str(s) for s in as_list(ctx.param("select", "SELECT"))]
    ufs = deals.deal_uf_names(portal)
    return ListResult(
        [select_fields(r, select, ufs, deals.DEAL_STANDARD) for r in page.rows],
        page.total,
        page.next,
    )


@method("crm.deal.fields")
def deal_fields(ctx: Ctx) -> dict[str, Any]:
    types = {"int": "integer", "float": "double", "date": "datetime", "yn": "char", "str": "string"}
    out: dict[str, Any] = {
        name: {"type": types[deals.DEAL_KIND[name]], "isRequired": False,
               "isReadOnly": name in deals.DEAL_READ_ONLY, "isImmutable": name == "CATEGORY_ID",
               "isMultiple": False, "isDynamic": False, "title": name}
        for name in deals.DEAL_STANDARD
    }  # fmt: skip
    for uf in ctx.portal.crm.deal_userfields.values():
        out[uf["FIELD_NAME"]] = {"type": uf["USER_TYPE_ID"], "isRequired": False,
                                 "isReadOnly": False, "isImmutable": False, "isMultiple": False,
                                 "isDynamic": True, "title": uf["FIELD_NAME"],
                                 "listLabel": uf_label(uf, ctx.portal.lang)}  # fmt: skip
    return out


# -- user fields (crm.deal.userfield.*: same shape as the lead ones) -----------------------


@method("crm.deal.userfield.add", admin=True)
def deal_userfield_add(ctx: Ctx) -> int:
    fields = as_dict(ctx.param("fields", "FIELDS"))
    name = str(fields.get("FIELD_NAME") or "").upper()
    if not name:
        raise RestError(400, "ERROR_CORE", "FIELD_NAME is required")
    if not name.startswith("UF_CRM_"):
        name = "UF_CRM_" + name
    if len(name) > 50 or not UF_NAME_RE.match(name):
        raise RestError(400, "ERROR_CORE", "Invalid FIELD_NAME")
    portal = ctx.portal
    if name in deals.deal_uf_names(portal):
        raise RestError(400, "ERROR_CORE", f"Field {name} already exists")
    uf_id = portal.crm.next_userfield_id
    portal.crm.next_userfield_id += 1
    portal.crm.deal_userfields[uf_id] = {
        "ID": str(uf_id),
        "ENTITY_ID": "CRM_DEAL",
        "FIELD_NAME": name,
        "USER_TYPE_ID": str(fields.get("USER_TYPE_ID") or "string"),
        "XML_ID": fields.get("XML_ID"),
        "SORT": str(fields.get("SORT") or 100),
        "MULTIPLE": str(fields.get("MULTIPLE") or "N"),
        "MANDATORY": str(fields.get("MANDATORY") or "N"),
        "SHOW_FILTER": str(fields.get("SHOW_FILTER") or "N"),
        "EDIT_FORM_LABEL": fields.get("EDIT_FORM_LABEL"),
        "LIST_COLUMN_LABEL": fields.get("LIST_COLUMN_LABEL"),
    }
    for row in portal.crm.deals.rows.values():
        row.setdefault(name, None)
    return uf_id


@method("crm.deal.userfield.list")
def deal_userfield_list(ctx: Ctx) -> ListResult:
    rows = {int(u["ID"]): dict(u) for u in ctx.portal.crm.deal_userfields.values()}
    page = select_page(
        sorted(rows), rows.get, parse_filter(as_dict(ctx.param("filter"))),
        parse_order(as_dict(ctx.param("order"))), 0,
    )  # fmt: skip
    return ListResult(page.rows, page.total, page.next)


# -- crm.item.* with entityTypeId 2 (dispatched from crm_item) ----------------------------


def _item(ctx: Ctx, deal_id: int) -> dict[str, Any]:
    row = ctx.portal.crm.deals.get(deal_id)
    if row is None:
        raise item_not_found()
    return deals.to_deal_item(row, deals.deal_uf_names(ctx.portal), original_uf_names(ctx))


def item_get(ctx: Ctx) -> dict[str, Any]:
    deal_id = item_id(ctx)
    row = ctx.portal.crm.deals.get(deal_id)
    if row is not None and not ctx.portal.people.may_read(ctx.user_id, "deal", row):
        raise item_access_denied()
    return {"item": _item(ctx, deal_id)}


def item_add(ctx: Ctx) -> dict[str, Any]:
    fields = deals.from_deal_item_fields(
        as_dict(ctx.param("fields")), deals.deal_uf_names(ctx.portal)
    )
    deal_id = deals.create_deal(ctx.portal, fields, ctx.user_id)
    ctx.emit("ONCRMDEALADD", {"FIELDS": {"ID": str(deal_id)}})
    return {"item": _item(ctx, deal_id)}


def item_update(ctx: Ctx) -> dict[str, Any]:
    deal_id = item_id(ctx)
    if ctx.portal.crm.deals.get(deal_id) is None:
        raise item_not_found()
    fields = deals.from_deal_item_fields(
        as_dict(ctx.param("fields")), deals.deal_uf_names(ctx.portal)
    )
    deals.modify_deal(ctx.portal, deal_id, fields, ctx.user_id)
    ctx.emit("ONCRMDEALUPDATE", {"FIELDS": {"ID": str(deal_id)}})
    return {"item": _item(ctx, deal_id)}


def item_delete(ctx: Ctx) -> list[Any]:
    deal_id = item_id(ctx)
    if not ctx.portal.crm.deals.delete(deal_id):
        raise item_not_found()
    ctx.emit("ONCRMDEALDELETE", {"FIELDS": {"ID": str(deal_id)}})
    return []


def item_list(ctx: Ctx) -> ListResult:
    portal = ctx.portal
    ufs = deals.deal_uf_names(portal)

    def rename(name: str) -> str:
        return deals.deal_item_name_to_upper(name, ufs)

    page = select_page(
        portal.crm.deals.ids, portal.crm.deals.get, parse_filter(as_dict(ctx.param("filter")), rename),
        parse_order(as_dict(ctx.param("order")), rename), parse_start(ctx.param("start")),
        tz=portal.tz,
    )  # fmt: skip
    select = [str(s) for s in as_list(ctx.param("select"))]
    original = original_uf_names(ctx)
    items = []
    for row in page.rows:
        item = deals.to_deal_item(row, ufs, original)
        if select and "*" not in select:
            wanted = set(select) | {"id"}
            if "uf*" in select or "UF_*" in select:
                wanted |= {k for k in item if k.startswith(("ufCrm", "UF_CRM_"))}
            item = {k: v for k, v in item.items() if k in wanted}
        items.append(item)
    return ListResult({"items": items}, page.total, page.next)


def stagehistory_list(ctx: Ctx) -> ListResult:
    """``crm.stagehistory.list`` entityTypeId 2: STAGE_ID, STAGE_SEMANTIC_ID, CATEGORY_ID."""
    return stage_history_list(
        ctx, ctx.portal.crm.deal_history_ids, ctx.portal.crm.deal_history_by_id.get
    )


# -- pipelines ------------------------------------------------------------------------------


@method("crm.category.list")
def category_list(ctx: Ctx) -> ListResult:
    if str(ctx.param("entityTypeId")) != "2":
        raise RestError(400, "NOT_FOUND", "Smart process not found")
    rows = sorted(ctx.portal.crm.deal_categories.values(), key=lambda c: (int(c["sort"]), c["id"]))
    return ListResult({"categories": [dict(r) for r in rows]}, len(rows), None)


@method("crm.dealcategory.list")
def dealcategory_list(ctx: Ctx) -> ListResult:
    """The outdated API lists only the extra pipelines (the default one has its own method)."""
    rows = [
        {"ID": str(c["id"]), "NAME": c["name"], "SORT": str(c["sort"]), "IS_LOCKED": "N",
         "CREATED_DATE": c["createdDate"]}
        for c in sorted(ctx.portal.crm.deal_categories.values(), key=lambda c: c["id"])
        if c["id"] != 0
    ]  # fmt: skip
    return ListResult(rows, len(rows), None)


@method("crm.dealcategory.default.get")
def dealcategory_default_get(ctx: Ctx) -> dict[str, Any]:
    default = ctx.portal.crm.deal_categories[0]
    return {"ID": 0, "NAME": default["name"]}


@method("crm.dealcategory.stage.list")
def dealcategory_stage_list(ctx: Ctx) -> list[dict[str, Any]]:
    try:
        category_id = int(str(ctx.param("id") or 0))
    except ValueError:
        category_id = 0
    if category_id not in ctx.portal.crm.deal_categories:
        return []
    entity = deals.stage_entity(category_id)
    rows = sorted(
        (r for r in ctx.portal.crm.statuses.values() if r["ENTITY_ID"] == entity),
        key=lambda r: int(r["SORT"]),
    )
    return [{"NAME": r["NAME"], "SORT": r["SORT"], "STATUS_ID": r["STATUS_ID"]} for r in rows]
