"""``crm.item.*`` for ``entityTypeId=1`` (leads; deals, 2, in :mod:`.crm_deal`): camelCase
names, numbers as numbers,
``stageId``, ``ufCrm…`` names (or ``UF_CRM_…`` with ``useOriginalUfNames=Y``)."""

from __future__ import annotations

from typing import Any

from devportal.errors import item_access_denied
from devportal.errors import item_not_found
from devportal.errors import RestError
from devportal.leads import CAMEL_TO_UPPER
from devportal.leads import create_lead
from devportal.leads import from_item_fields
from devportal.leads import item_name_to_upper
from devportal.leads import KIND
from devportal.leads import modify_lead
from devportal.leads import to_item
from devportal.query import parse_filter
from devportal.query import parse_order
from devportal.query import parse_start
from devportal.query import select_page
from devportal.rest import as_dict
from devportal.rest import as_list
from devportal.rest import crm_deal
from devportal.rest import crm_lead
from devportal.rest import Ctx
from devportal.rest import ListResult
from devportal.rest import method
from devportal.rest.crm_common import item_id
from devportal.rest.crm_common import original_uf_names


def _is_deal(ctx: Ctx) -> bool:
    return str(ctx.param("entityTypeId")) == "2"


def _entity(ctx: Ctx) -> None:
    raw = ctx.param("entityTypeId")
    if str(raw) != "1":
        raise RestError(400, "NOT_FOUND", "Smart process not found")


def _item(ctx: Ctx, lead_id: int) -> dict[str, Any]:
    row = ctx.portal.crm.leads.get(lead_id)
    if row is None:
        raise item_not_found()
    return to_item(row, ctx.portal.crm.uf_names(), original_uf_names(ctx))


@method("crm.item.get")
def item_get(ctx: Ctx) -> dict[str, Any]:
    if _is_deal(ctx):
        return crm_deal.item_get(ctx)
    _entity(ctx)
    lead_id = item_id(ctx)
    row = ctx.portal.crm.leads.get(lead_id)
    if row is not None and not ctx.portal.people.may_read(ctx.user_id, "lead", row):
        raise item_access_denied()
    return {"item": _item(ctx, lead_id)}


@method("crm.item.add")
def item_add(ctx: Ctx) -> dict[str, Any]:
    if _is_deal(ctx):
        return crm_deal.item_add(ctx)
    _entity(ctx)
    fields = from_item_fields(as_dict(ctx.param("fields")), ctx.portal.crm.uf_names())
    lead_id = create_lead(ctx.portal, fields, ctx.user_id)
    ctx.emit("ONCRMLEADADD", {"FIELDS": {"ID": str(lead_id)}})
    crm_lead.emit_simple_mode_conversion(ctx, lead_id)
    return {"item": _item(ctx, lead_id)}


@method("crm.item.update")
def item_update(ctx: Ctx) -> dict[str, Any]:
    if _is_deal(ctx):
        return crm_deal.item_update(ctx)
    _entity(ctx)
    lead_id = item_id(ctx)
    if ctx.portal.crm.leads.get(lead_id) is None:
        raise item_not_found()
    fields = from_item_fields(as_dict(ctx.param("fields")), ctx.portal.crm.uf_names())
    modify_lead(ctx.portal, lead_id, fields, ctx.user_id)
    ctx.emit("ONCRMLEADUPDATE", {"FIELDS": {"ID": str(lead_id)}})
    return {"item": _item(ctx, lead_id)}


@method("crm.item.delete")
def item_delete(ctx: Ctx) -> list[Any]:
    if _is_deal(ctx):
        return crm_deal.item_delete(ctx)
    _entity(ctx)
    lead_id = item_id(ctx)
    if not ctx.portal.crm.leads.delete(lead_id):
        raise item_not_found()
    ctx.emit("ONCRMLEADDELETE", {"FIELDS": {"ID": str(lead_id)}})
    return []


@method("crm.item.list")
def item_list(ctx: Ctx) -> ListResult:
    if _is_deal(ctx):
        return crm_deal.item_list(ctx)
    _entity(ctx)
    portal = ctx.portal
    ufs = portal.crm.uf_names()

    def rename(name: str) -> str:
        return item_name_to_upper(name, ufs)

    conds = parse_filter(as_dict(ctx.param("filter")), rename)
    order = parse_order(as_dict(ctx.param("order")), rename)
    page = select_page(
        portal.crm.leads.ids, portal.crm.leads.get, conds, order, parse_start(ctx.param("start")),
        tz=portal.tz,
    )  # fmt: skip
    select = [str(s) for s in as_list(ctx.param("select"))]
    original = original_uf_names(ctx)
    items = []
    for row in page.rows:
        item = to_item(row, ufs, original)
        if select and "*" not in select:
            wanted = set(select) | {"id"}
            if "uf*" in select or "UF_*" in select:
                wanted |= {k for k in item if k.startswith(("ufCrm", "UF_CRM_"))}
            item = {k: v for k, v in item.items() if k in wanted}
        items.append(item)
    return ListResult({"items": items}, page.total, page.next)


@method("crm.item.fields")
def item_fields(ctx: Ctx) -> dict[str, Any]:
    _entity(ctx)
    types = {"int": "integer", "float": "double", "date": "datetime", "yn": "char", "str": "string"}
    return {
        "fields": {
            camel: {"type": types[KIND[upper]], "isRequired": False, "isMultiple": False,
                    "title": upper, "upperName": upper}
            for camel, upper in CAMEL_TO_UPPER.items()
        }
    }  # fmt: skip
