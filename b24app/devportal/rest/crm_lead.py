"""``crm.lead.*`` and ``crm.lead.userfield.*`` (UPPER_CASE fields, values as strings)."""

from __future__ import annotations

import re
import time
from typing import Any
from typing import TYPE_CHECKING

from b24app.devportal.errors import access_denied_old_api
from b24app.devportal.errors import not_found_lead
from b24app.devportal.errors import RestError
from b24app.devportal.leads import as_str
from b24app.devportal.leads import MULTIFIELDS
from b24app.devportal.leads import READ_ONLY
from b24app.devportal.leads import STANDARD
from b24app.devportal.query import parse_filter
from b24app.devportal.query import parse_order
from b24app.devportal.query import parse_start
from b24app.devportal.query import select_page
from b24app.devportal.rest import as_dict
from b24app.devportal.rest import as_list
from b24app.devportal.rest import Ctx
from b24app.devportal.rest import ListResult
from b24app.devportal.rest import method
from b24app.devportal.rest.crm_common import select_fields
from b24app.devportal.rest.crm_common import uf_label

if TYPE_CHECKING:
    from b24app.devportal.portal import Portal

UF_NAME_RE = re.compile(r"^UF_CRM_[A-Z0-9_]+$")


def _lead_id(raw: Any) -> int:
    try:
        return int(str(raw))
    except (TypeError, ValueError):
        raise RestError(400, "", "ID is not defined or invalid") from None


def _apply(portal: Portal, row: dict[str, Any], fields: dict[str, Any]) -> None:
    ufs = set(portal.uf_names())
    for key, value in fields.items():
        key = str(key)
        if key in MULTIFIELDS:
            portal.leads.add_multifield(row, key, value)
        elif key in ufs:
            row[key] = (
                [as_str(v) for v in as_list(value)] if isinstance(value, list) else as_str(value)
            )
        elif key == "OPPORTUNITY":
            try:
                row[key] = f"{float(str(value or 0)):.2f}"
            except ValueError:
                raise RestError(400, "", "OPPORTUNITY must be a number") from None
        elif key in STANDARD and key not in READ_ONLY:
            row[key] = as_str(value)


def _set_status(
    portal: Portal, row: dict[str, Any], status_id: str, user_id: int, ts: float
) -> None:
    semantic = portal.status_semantics("STATUS", status_id) or "P"
    row["STATUS_ID"] = status_id
    row["STATUS_SEMANTIC_ID"] = semantic
    row["MOVED_BY_ID"] = str(user_id)
    row["MOVED_TIME"] = portal.now_str(ts)
    row["DATE_CLOSED"] = portal.now_str(ts) if semantic in ("S", "F") else ""


def create(portal: Portal, fields: dict[str, Any], user_id: int, ts: float | None = None) -> int:
    """Insert a lead (lock held by the caller) and record its creation in stage history."""
    ts = time.time() if ts is None else ts
    now = portal.now_str(ts)
    row: dict[str, Any] = {name: None for name in STANDARD}
    row.update(
        {
            "TITLE": "", "NAME": "", "BIRTHDATE": "", "IS_RETURN_CUSTOMER": "N",
            "CURRENCY_ID": "RUB" if portal.lang == "ru" else "USD", "OPPORTUNITY": "0.00",
            "IS_MANUAL_OPPORTUNITY": "N", "HAS_PHONE": "N", "HAS_EMAIL": "N", "HAS_IMOL": "N",
            "ASSIGNED_BY_ID": str(user_id), "CREATED_BY_ID": str(user_id),
            "MODIFY_BY_ID": str(user_id), "DATE_CREATE": now, "DATE_MODIFY": now,
            "OPENED": "Y", "LAST_ACTIVITY_BY": str(user_id), "LAST_ACTIVITY_TIME": now,
        }
    )  # fmt: skip
    for uf in portal.uf_names():
        row[uf] = None
    _apply(portal, row, fields)
    status = row.get("STATUS_ID") or portal.lead_status_ids()[0]
    _set_status(portal, row, status, user_id, ts)
    if not row["TITLE"]:
        row["TITLE"] = (
            f"Лид #{portal.leads.next_id}"
            if portal.lang == "ru"
            else f"Lead #{portal.leads.next_id}"
        )
    lead_id = portal.leads.insert(row)
    portal.record_stage(lead_id, status, 1, ts)
    return lead_id


def modify(
    portal: Portal, lead_id: int, fields: dict[str, Any], user_id: int, ts: float | None = None
) -> None:
    """Update a lead; a STATUS_ID change moves it (stage history TYPE_ID 2, or 3 if final)."""
    row = portal.leads.get(lead_id)
    if row is None:
        raise not_found_lead()
    ts = time.time() if ts is None else ts
    old_status = row.get("STATUS_ID")
    new_status = fields.get("STATUS_ID")
    _apply(portal, row, {k: v for k, v in fields.items() if k != "STATUS_ID"})
    if new_status and new_status != old_status:
        _set_status(portal, row, str(new_status), user_id, ts)
        final = row["STATUS_SEMANTIC_ID"] in ("S", "F")
        portal.record_stage(lead_id, str(new_status), 3 if final else 2, ts)
    row["MODIFY_BY_ID"] = str(user_id)
    row["DATE_MODIFY"] = portal.now_str(ts)


@method("crm.lead.add")
def lead_add(ctx: Ctx) -> int:
    fields = as_dict(ctx.param("fields", "FIELDS"))
    lead_id = create(ctx.portal, fields, ctx.user_id)
    ctx.emit("ONCRMLEADADD", {"FIELDS": {"ID": str(lead_id)}})
    emit_simple_mode_conversion(ctx, lead_id)
    return lead_id


def emit_simple_mode_conversion(ctx: Ctx, lead_id: int) -> None:
    """Simple CRM mode converts a new lead into a deal at once (b24app.devportal.deals)."""
    from b24app.devportal.deals import after_lead_created

    for name, data in after_lead_created(ctx.portal, lead_id, ctx.user_id):
        ctx.emit(name, data)


@method("crm.lead.update")
def lead_update(ctx: Ctx) -> bool:
    lead_id = _lead_id(ctx.param("id", "ID"))
    modify(ctx.portal, lead_id, as_dict(ctx.param("fields", "FIELDS")), ctx.user_id)
    ctx.emit("ONCRMLEADUPDATE", {"FIELDS": {"ID": str(lead_id)}})
    return True


@method("crm.lead.get")
def lead_get(ctx: Ctx) -> dict[str, Any]:
    row = ctx.portal.leads.get(_lead_id(ctx.param("id", "ID")))
    if row is None:
        raise not_found_lead()
    if not ctx.portal.may_read(ctx.user_id, "lead", row):
        raise access_denied_old_api()
    return dict(row)


@method("crm.lead.delete")
def lead_delete(ctx: Ctx) -> bool:
    lead_id = _lead_id(ctx.param("id", "ID"))
    if not ctx.portal.leads.delete(lead_id):
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
        portal.leads.ids, portal.leads.get, conds, order, parse_start(ctx.param("start")),
        tz=portal.tz,
    )  # fmt: skip
    ufs = portal.uf_names()
    return ListResult(
        [select_fields(r, select, ufs, STANDARD) for r in page.rows], page.total, page.next
    )


@method("crm.lead.fields")
def lead_fields(ctx: Ctx) -> dict[str, Any]:
    from b24app.devportal.leads import KIND

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
    for uf in ctx.portal.userfields.values():
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
    fields = as_dict(ctx.param("fields", "FIELDS"))
    name = str(fields.get("FIELD_NAME") or "").upper()
    if not name:
        raise RestError(400, "ERROR_CORE", "FIELD_NAME is required")
    if not name.startswith("UF_CRM_"):
        name = "UF_CRM_" + name
    if len(name) > 50 or not UF_NAME_RE.match(name):
        raise RestError(400, "ERROR_CORE", "Invalid FIELD_NAME")
    portal = ctx.portal
    if name in portal.uf_names():
        raise RestError(400, "ERROR_CORE", f"Field {name} already exists")
    uf_id = portal.next_userfield_id
    portal.next_userfield_id += 1
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
    portal.userfields[uf_id] = uf
    for row in portal.leads.rows.values():
        row.setdefault(name, None)
    return uf_id


@method("crm.lead.userfield.list")
def userfield_list(ctx: Ctx) -> ListResult:
    rows = {int(u["ID"]): _uf_out(u) for u in ctx.portal.userfields.values()}
    page = select_page(
        sorted(rows), rows.get, parse_filter(as_dict(ctx.param("filter"))),
        parse_order(as_dict(ctx.param("order"))), 0,
    )  # fmt: skip
    return ListResult(page.rows, page.total, page.next)


@method("crm.lead.userfield.get")
def userfield_get(ctx: Ctx) -> dict[str, Any]:
    uf = ctx.portal.userfields.get(_lead_id(ctx.param("id", "ID")))
    if uf is None:
        raise RestError(400, "ERROR_NOT_FOUND", "The entity with ID was not found")
    return _uf_out(uf)


@method("crm.lead.userfield.update", admin=True)
def userfield_update(ctx: Ctx) -> bool:
    uf = ctx.portal.userfields.get(_lead_id(ctx.param("id", "ID")))
    if uf is None:
        raise RestError(400, "ERROR_NOT_FOUND", "The entity with ID was not found")
    for key, value in as_dict(ctx.param("fields", "FIELDS")).items():
        if key not in ("ID", "FIELD_NAME", "ENTITY_ID", "USER_TYPE_ID"):
            uf[key] = value
    return True


@method("crm.lead.userfield.delete", admin=True)
def userfield_delete(ctx: Ctx) -> bool:
    uf = ctx.portal.userfields.pop(_lead_id(ctx.param("id", "ID")), None)
    if uf is None:
        raise RestError(400, "ERROR_NOT_FOUND", "The entity with ID was not found")
    for row in ctx.portal.leads.rows.values():
        row.pop(uf["FIELD_NAME"], None)
    return True
