"""``crm.lead.*`` and ``crm.lead.userfield.*`` (UPPER_CASE fields, values as strings)."""

from __future__ import annotations

from typing import Any

from devportal.deals import after_lead_created
from devportal.errors import access_denied_old_api
from devportal.errors import not_found_lead
from devportal.errors import RestError
from devportal.leads import create_lead
from devportal.leads import KIND
from devportal.leads import modify_lead
from devportal.leads import MULTIFIELDS
from devportal.leads import READ_ONLY
from devportal.leads import STANDARD
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
from devportal.rest.crm_common import select_fields
from devportal.rest.crm_common import uf_label


def _lead_id(raw: Any) -> int:
    try:
        return int(str(raw))
    except (TypeError, ValueError):
        raise RestError(400, "", "ID is not defined or invalid") from None


@method("crm.lead.add")
def lead_add(ctx: Ctx) -> int:
    fields = as_dict(ctx.param("fields", "FIELDS"))
    lead_id = create_lead(ctx.portal, fields, ctx.user_id)
    ctx.emit("ONCRMLEADADD", {"FIELDS": {"ID": str(lead_id)}})
    emit_simple_mode_conversion(ctx, lead_id)
    return lead_id


def emit_simple_mode_conversion(ctx: Ctx, lead_id: int) -> None:
    """Simple CRM mode converts a new lead into a deal at once (devportal.deals)."""
    for name, data in after_lead_created(ctx.portal, lead_id, ctx.user_id):
        ctx.emit(name, data)


@method("crm.lead.update")
def lead_update(ctx: Ctx) -> bool:
    lead_id = _lead_id(ctx.param("id", "ID"))
    modify_lead(ctx.portal, lead_id, as_dict(ctx.param("fields", "FIELDS")), ctx.user_id)
    ctx.emit("ONCRMLEADUPDATE", {"FIELDS": {"ID": str(lead_id)}})
    return True


@method("crm.lead.get")
def lead_get(ctx: Ctx) -> dict[str, Any]:
    row = ctx.portal.crm.leads.get(_lead_id(ctx.param("id", "ID")))
    if row is None:
        raise not_found_lead()
    if not ctx.portal.people.may_read(ctx.user_id, "lead", row):
        raise access_denied_old_api()
    return dict(row)


@method("crm.lead.delete")
def lead_delete(ctx: Ctx) -> bool:
    lead_id = _lead_id(ctx.param("id", "ID"))
    if not ctx.portal.crm.leads.delete(lead_id):
        raise not_found_lead()
    ctx.emit("ONCRMLEADDELETE", {"FIELDS": {"ID": str(lead_id)}})
    return True


@method("crm.lead.list")
def lead_list(ctx: Ctx) -> ListResult:
    portal = ctx.portal
    conds = parse_filter(as_dict(ctx.param("filter", "FILTER")))
    order = parse_order(as_dict(ctx.param("order", "ORDER")))
    select = [str(s) for s in as_list(ctx.param("select", "SELECT"))]
    page = select_page(
        portal.crm.leads.ids, portal.crm.leads.get, conds, order, parse_start(ctx.param("start")),
        tz=portal.tz,
    )  # fmt: skip
    ufs = portal.crm.uf_names()
    return ListResult(
        [select_fields(r, select, ufs, STANDARD) for r in page.rows], page.total, page.next
    )


@method("crm.lead.fields")
def lead_fields(ctx: Ctx) -> dict[str, Any]:
    types = {"int": "integer", "float": "double", "date": "datetime", "yn": "char", "str": "string"}
    out: dict[str, Any] = {}
    for name in STANDARD:
        out[name] = {
            "type": "crm_status" if name in ("STATUS_ID", "SOURCE_ID") else types[KIND[name]],
            "isRequired": False,
            "isReadOnly": name in READ_ONLY,
            "isImmutable": False,
            "isMultiple": False,
            "isDynamic": False,
            "title": name,
        }
    for kind in MULTIFIELDS:
        out[kind] = {"type": "crm_multifield", "isRequired": False, "isReadOnly": False,
                     "isImmutable": False, "isMultiple": True, "isDynamic": False, "title": kind}  # fmt: skip
    for uf in ctx.portal.crm.userfields.values():
        out[uf["FIELD_NAME"]] = {
            "type": uf["USER_TYPE_ID"], "isRequired": uf["MANDATORY"] == "Y", "isReadOnly": False,
            "isImmutable": False, "isMultiple": uf["MULTIPLE"] == "Y", "isDynamic": True,
            "title": uf["FIELD_NAME"], "listLabel": uf_label(uf, ctx.portal.lang),
            **({"items": uf["LIST"]} if uf.get("LIST") else {}),
        }  # fmt: skip
    return out


# -- user fields ------------------------------------------------------------------------------


def _uf_out(uf: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in uf.items()}


@method("crm.lead.userfield.add", admin=True)
def userfield_add(ctx: Ctx) -> int:
    return add_userfield(ctx.portal, as_dict(ctx.param("fields", "FIELDS")))


def add_userfield(portal: Any, fields: dict[str, Any]) -> int:
    """A lead user field from ``crm.lead.userfield.add``'s ``fields`` (also the admin's
    settings page, :meth:`devportal.portal.Portal.add_lead_field`); returns its id."""
    name = str(fields.get("FIELD_NAME") or "").upper()
    if not name:
        raise RestError(400, "ERROR_CORE", "FIELD_NAME is required")
    if not name.startswith("UF_CRM_"):
        name = "UF_CRM_" + name
    if len(name) > 50 or not UF_NAME_RE.match(name):
        raise RestError(400, "ERROR_CORE", "Invalid FIELD_NAME")
    if name in portal.crm.uf_names():
        raise RestError(400, "ERROR_CORE", f"Field {name} already exists")
    uf_id = portal.crm.next_userfield_id
    portal.crm.next_userfield_id += 1
    items = []
    for i, entry in enumerate(as_list(fields.get("LIST"))):
        if isinstance(entry, dict) and entry.get("VALUE"):
            items.append({"ID": str(uf_id * 100 + i + 1), "SORT": str(entry.get("SORT", (i + 1) * 10)),
                          "VALUE": str(entry["VALUE"]), "DEF": entry.get("DEF", "N"),
                          "XML_ID": str(entry.get("XML_ID") or f"{name}_{i + 1}")})  # fmt: skip
    uf = {
        "ID": str(uf_id),
        "ENTITY_ID": "CRM_LEAD",
        "FIELD_NAME": name,
        "USER_TYPE_ID": str(fields.get("USER_TYPE_ID") or "string"),
        "XML_ID": fields.get("XML_ID"),
        "SORT": str(fields.get("SORT") or 100),
        "MULTIPLE": str(fields.get("MULTIPLE") or "N"),
        "MANDATORY": str(fields.get("MANDATORY") or "N"),
        "SHOW_FILTER": str(fields.get("SHOW_FILTER") or "N"),
        "SHOW_IN_LIST": str(fields.get("SHOW_IN_LIST") or "Y"),
        "EDIT_IN_LIST": str(fields.get("EDIT_IN_LIST") or "Y"),
        "IS_SEARCHABLE": str(fields.get("IS_SEARCHABLE") or "N"),
        "SETTINGS": as_dict(fields.get("SETTINGS")),
        "EDIT_FORM_LABEL": fields.get("EDIT_FORM_LABEL"),
        "LIST_COLUMN_LABEL": fields.get("LIST_COLUMN_LABEL"),
    }
    if items or uf["USER_TYPE_ID"] == "enumeration":
        uf["LIST"] = items
    portal.crm.userfields[uf_id] = uf
    for row in portal.crm.leads.rows.values():
        row.setdefault(name, None)
    return uf_id


@method("crm.lead.userfield.list")
def userfield_list(ctx: Ctx) -> ListResult:
    rows = {int(u["ID"]): _uf_out(u) for u in ctx.portal.crm.userfields.values()}
    page = select_page(
        sorted(rows), rows.get, parse_filter(as_dict(ctx.param("filter"))),
        parse_order(as_dict(ctx.param("order"))), 0,
    )  # fmt: skip
    return ListResult(page.rows, page.total, page.next)


@method("crm.lead.userfield.get")
def userfield_get(ctx: Ctx) -> dict[str, Any]:
    uf = ctx.portal.crm.userfields.get(_lead_id(ctx.param("id", "ID")))
    if uf is None:
        raise RestError(400, "ERROR_NOT_FOUND", "The entity with ID was not found")
    return _uf_out(uf)


@method("crm.lead.userfield.update", admin=True)
def userfield_update(ctx: Ctx) -> bool:
    uf = ctx.portal.crm.userfields.get(_lead_id(ctx.param("id", "ID")))
    if uf is None:
        raise RestError(400, "ERROR_NOT_FOUND", "The entity with ID was not found")
    for key, value in as_dict(ctx.param("fields", "FIELDS")).items():
        if key not in ("ID", "FIELD_NAME", "ENTITY_ID", "USER_TYPE_ID"):
            uf[key] = value
    return True


@method("crm.lead.userfield.delete", admin=True)
def userfield_delete(ctx: Ctx) -> bool:
    uf = ctx.portal.crm.userfields.pop(_lead_id(ctx.param("id", "ID")), None)
    if uf is None:
        raise RestError(400, "ERROR_NOT_FOUND", "The entity with ID was not found")
    for row in ctx.portal.crm.leads.rows.values():
        row.pop(uf["FIELD_NAME"], None)
    return True
