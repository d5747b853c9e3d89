"""Deals in memory: ``crm.deal.*`` (UPPER_CASE strings) and ``crm.item.*`` entityTypeId 2
(camelCase numbers) views of one row, pipelines (``CATEGORY_ID``) with their stages
(``crm.status`` ENTITY_ID ``DEAL_STAGE`` / ``DEAL_STAGE_<id>``, stage ids ``C<id>:NEW``), deal
stage history, the conversion of a lead into contact + deal (contacts: devportal.contacts),
and the CRM mode.

Conversion (a person presses "Convert" in the lead card; REST has no conversion method):
a contact is created from the lead's name, a deal in pipeline 0 with
``LEAD_ID``, ``CONTACT_ID`` and the lead's source, UTM, amount and responsible, and the lead
moves to ``CONVERTED`` (its success status). In **simple mode** (``crm.settings.mode.get`` →
2) every new lead is converted at once, the way the portal does it; the lead row stays readable
with ``STATUS_ID=CONVERTED`` (assumption: the docs only say the lead is converted at once).
Events: ``ONCRMLEADADD`` (new lead), ``ONCRMLEADUPDATE`` (its move to CONVERTED),
``ONCRMDEALADD`` — in that order.
"""

from __future__ import annotations

import time
from typing import Any
from typing import TYPE_CHECKING

from devportal import contacts
from devportal.errors import item_not_found
from devportal.errors import RestError
from devportal.leads import as_str
from devportal.leads import modify_lead
from devportal.leads import to_item_value
from devportal.leads import uf_camel

if TYPE_CHECKING:
    from devportal.portal import Portal

# (crm.deal name, crm.item name, kind)
DEAL_FIELDS: list[tuple[str, str, str]] = [
    ("ID", "id", "int"),
    ("TITLE", "title", "str"),
    ("TYPE_ID", "typeId", "str"),
    ("CATEGORY_ID", "categoryId", "int"),
    ("STAGE_ID", "stageId", "str"),
    ("STAGE_SEMANTIC_ID", "stageSemanticId", "str"),
    ("IS_NEW", "isNew", "yn"),
    ("IS_RECURRING", "isRecurring", "yn"),
    ("IS_RETURN_CUSTOMER", "isReturnCustomer", "yn"),
    ("IS_REPEATED_APPROACH", "isRepeatedApproach", "yn"),
    ("PROBABILITY", "probability", "int"),
    ("CURRENCY_ID", "currencyId", "str"),
    ("OPPORTUNITY", "opportunity", "float"),
    ("IS_MANUAL_OPPORTUNITY", "isManualOpportunity", "yn"),
    ("TAX_VALUE", "taxValue", "float"),
    ("COMPANY_ID", "companyId", "int"),
    ("CONTACT_ID", "contactId", "int"),
    ("QUOTE_ID", "quoteId", "int"),
    ("LEAD_ID", "leadId", "int"),
    ("BEGINDATE", "begindate", "date"),
    ("CLOSEDATE", "closedate", "date"),
    ("OPENED", "opened", "yn"),
    ("CLOSED", "closed", "yn"),
    ("COMMENTS", "comments", "str"),
    ("ASSIGNED_BY_ID", "assignedById", "int"),
    ("CREATED_BY_ID", "createdBy", "int"),
    ("MODIFY_BY_ID", "updatedBy", "int"),
    ("MOVED_BY_ID", "movedBy", "int"),
    ("DATE_CREATE", "createdTime", "date"),
    ("DATE_MODIFY", "updatedTime", "date"),
    ("MOVED_TIME", "movedTime", "date"),
    ("SOURCE_ID", "sourceId", "str"),
    ("SOURCE_DESCRIPTION", "sourceDescription", "str"),
    ("ADDITIONAL_INFO", "additionalInfo", "str"),
    ("LOCATION_ID", "locationId", "str"),
    ("ORIGINATOR_ID", "originatorId", "str"),
    ("ORIGIN_ID", "originId", "str"),
    ("UTM_SOURCE", "utmSource", "str"),
    ("UTM_MEDIUM", "utmMedium", "str"),
    ("UTM_CAMPAIGN", "utmCampaign", "str"),
    ("UTM_CONTENT", "utmContent", "str"),
    ("UTM_TERM", "utmTerm", "str"),
    ("LAST_ACTIVITY_TIME", "lastActivityTime", "date"),
    ("LAST_ACTIVITY_BY", "lastActivityBy", "int"),
]
DEAL_STANDARD = [f[0] for f in DEAL_FIELDS]
DEAL_UPPER_TO_CAMEL = {f[0]: f[1] for f in DEAL_FIELDS}
DEAL_CAMEL_TO_UPPER = {f[1]: f[0] for f in DEAL_FIELDS}
DEAL_KIND = {f[0]: f[2] for f in DEAL_FIELDS}
DEAL_READ_ONLY = {
    "ID", "DATE_CREATE", "DATE_MODIFY", "CREATED_BY_ID", "MODIFY_BY_ID", "STAGE_SEMANTIC_ID",
    "MOVED_BY_ID", "MOVED_TIME", "IS_NEW", "IS_RETURN_CUSTOMER", "IS_REPEATED_APPROACH",
    "CLOSED", "LAST_ACTIVITY_TIME", "LAST_ACTIVITY_BY",
}  # fmt: skip

# Pipeline 0 stages, as in crm_status_list_DEAL_STAGE.json: (id, ru, en, sort, colour, S/F/None)
DEAL_STAGES: list[tuple[str, str, str, int, str, str | None]] = [
    ("NEW", "Новая", "New", 10, "#39A8EF", None),
    ("PREPARATION", "Подготовка документов", "Document preparation", 20, "#2FC6F6", None),
    ("PREPAYMENT_INVOICE", "Счёт на предоплату", "Prepayment invoice", 30, "#55D0E0", None),
    ("EXECUTING", "В работе", "In progress", 40, "#47E4C2", None),
    ("FINAL_INVOICE", "Финальный счёт", "Final invoice", 50, "#FFA900", None),
    ("WON", "Сделка успешна", "Deal successful", 60, "#7BD500", "S"),
    ("LOSE", "Сделка провалена", "Deal failed", 70, "#FF5752", "F"),
    ("APOLOGY", "Анализ причины провала", "Failure reason analysis", 80, "#FF5752", "F"),
]
SIMPLE, CLASSIC = 2, 1
DEAL_ENTITY_TYPE_ID = 2


def stage_entity(category_id: int) -> str:
    """``DEAL_STAGE`` for pipeline 0, ``DEAL_STAGE_<id>`` for the others."""
    return "DEAL_STAGE" if category_id == 0 else f"DEAL_STAGE_{category_id}"


def stage_prefix(category_id: int) -> str:
    return "" if category_id == 0 else f"C{category_id}:"


def seed_pipeline(portal: Portal, category_id: int, name: str, sort: int = 100) -> None:
    """A pipeline with the default stages (lock held by the caller)."""
    en = not portal.lang.startswith("ru")
    portal.crm.deal_categories[category_id] = {
        "id": category_id, "name": name, "sort": sort, "entityTypeId": DEAL_ENTITY_TYPE_ID,
        "isDefault": "Y" if category_id == 0 else "N",
        "createdDate": portal.now_str(),
    }  # fmt: skip
    for status_id, ru, eng, stage_sort, color, semantic in DEAL_STAGES:
        row = portal.crm.add_status(
            stage_entity(category_id), stage_prefix(category_id) + status_id,
            eng if en else ru, stage_sort, color, True, semantic == "S",
        )  # fmt: skip
        row["CATEGORY_ID"] = None if category_id == 0 else str(category_id)


def add_pipeline(portal: Portal, name: str) -> int:
    """A new pipeline (``crm.category.add``); returns its id."""
    with portal.lock:
        category_id = max(portal.crm.deal_categories) + 1
        seed_pipeline(portal, category_id, name, 100 + 10 * category_id)
        return category_id


def first_stage(portal: Portal, category_id: int) -> str:
    rows = sorted(
        (r for r in portal.crm.statuses.values() if r["ENTITY_ID"] == stage_entity(category_id)),
        key=lambda r: int(r["SORT"]),
    )
    if not rows:
        raise KeyError(f"no pipeline {category_id}")
    return str(rows[0]["STATUS_ID"])


def category_of_stage(stage_id: str) -> int:
    if stage_id.startswith("C") and ":" in stage_id:
        try:
            return int(stage_id[1 : stage_id.index(":")])
        except ValueError:
            return 0
    return 0


def deal_uf_names(portal: Portal) -> list[str]:
    return [uf["FIELD_NAME"] for uf in portal.crm.deal_userfields.values()]


def to_deal_item(row: dict[str, Any], uf_names: list[str], original_uf: bool) -> dict[str, Any]:
    """The ``crm.item`` (entityTypeId 2) view of a stored deal row."""
    item: dict[str, Any] = {}
    for upper, camel, kind in DEAL_FIELDS:
        item[camel] = to_item_value(kind, row.get(upper))
    item["contactIds"] = [int(row["CONTACT_ID"])] if row.get("CONTACT_ID") else []
    item["observers"] = []
    for name in uf_names:
        item[name if original_uf else uf_camel(name)] = row.get(name)
    item["entityTypeId"] = DEAL_ENTITY_TYPE_ID
    return item


def deal_item_name_to_upper(name: str, uf_names: list[str]) -> str:
    if name in DEAL_CAMEL_TO_UPPER:
        return DEAL_CAMEL_TO_UPPER[name]
    for uf in uf_names:
        if uf_camel(uf) == name:
            return uf
    return name


def from_deal_item_fields(fields: dict[str, Any], uf_names: list[str]) -> dict[str, Any]:
    camel_uf = {uf_camel(n): n for n in uf_names}
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key in DEAL_CAMEL_TO_UPPER:
            out[DEAL_CAMEL_TO_UPPER[key]] = value
        elif key in camel_uf:
            out[camel_uf[key]] = value
        elif key.startswith("UF_CRM_"):
            out[key] = value
    return out


def _set_stage(portal: Portal, row: dict[str, Any], stage_id: str, user_id: int, ts: float) -> None:
    category_id = int(row.get("CATEGORY_ID") or 0)
    semantic = portal.crm.status_semantics(stage_entity(category_id), stage_id) or "P"
    row["STAGE_ID"] = stage_id
    row["STAGE_SEMANTIC_ID"] = semantic
    row["CLOSED"] = "Y" if semantic in ("S", "F") else "N"
    row["MOVED_BY_ID"] = str(user_id)
    row["MOVED_TIME"] = portal.now_str(ts)
    if semantic in ("S", "F"):
        row["CLOSEDATE"] = portal.now_str(ts)


def _apply(portal: Portal, row: dict[str, Any], fields: dict[str, Any]) -> None:
    ufs = set(deal_uf_names(portal))
    for key, value in fields.items():
        key = str(key)
        if key in ufs:
            row[key] = [as_str(v) for v in value] if isinstance(value, list) else as_str(value)
        elif key in ("OPPORTUNITY", "TAX_VALUE"):
            try:
                row[key] = f"{float(str(value or 0)):.2f}"
            except ValueError:
                raise RestError(400, "", f"{key} must be a number") from None
        elif key in DEAL_STANDARD and key not in DEAL_READ_ONLY and key != "STAGE_ID":
            row[key] = as_str(value)


def create_deal(
    portal: Portal, fields: dict[str, Any], user_id: int, ts: float | None = None
) -> int:
    """Insert a deal (lock held) and record its creation in the deal stage history."""
    ts = time.time() if ts is None else ts
    now = portal.now_str(ts)
    row: dict[str, Any] = {name: None for name in DEAL_STANDARD}
    row.update(
        {
            "TITLE": "", "TYPE_ID": "SALE", "CATEGORY_ID": "0", "PROBABILITY": None,
            "CURRENCY_ID": "RUB" if portal.lang == "ru" else "USD", "OPPORTUNITY": "0.00",
            "IS_MANUAL_OPPORTUNITY": "N", "TAX_VALUE": "0.00", "OPENED": "Y", "CLOSED": "N",
            "IS_NEW": "Y", "IS_RECURRING": "N", "IS_RETURN_CUSTOMER": "N",
            "IS_REPEATED_APPROACH": "N", "COMPANY_ID": "0", "CONTACT_ID": None, "LEAD_ID": None,
            "ASSIGNED_BY_ID": str(user_id), "CREATED_BY_ID": str(user_id),
            "MODIFY_BY_ID": str(user_id), "DATE_CREATE": now, "DATE_MODIFY": now,
            "BEGINDATE": now, "CLOSEDATE": "", "LAST_ACTIVITY_TIME": now,
            "LAST_ACTIVITY_BY": str(user_id),
        }
    )  # fmt: skip
    for uf in deal_uf_names(portal):
        row[uf] = None
    _apply(portal, row, fields)
    stage = str(fields.get("STAGE_ID") or "")
    category_id = int(str(row.get("CATEGORY_ID") or 0) or 0)
    if stage and not fields.get("CATEGORY_ID"):
        category_id = category_of_stage(stage)
    if category_id not in portal.crm.deal_categories:
        raise RestError(400, "", "Category not found")
    row["CATEGORY_ID"] = str(category_id)
    valid = {
        r["STATUS_ID"]
        for r in portal.crm.statuses.values()
        if r["ENTITY_ID"] == stage_entity(category_id)
    }
    if not stage or stage not in valid:
        stage = first_stage(portal, category_id)
    _set_stage(portal, row, stage, user_id, ts)
    if row.get("CONTACT_ID") not in (None, "", "0"):
        row["IS_RETURN_CUSTOMER"] = "Y"
    if not row["TITLE"]:
        number = portal.crm.deals.next_id
        row["TITLE"] = f"Сделка #{number}" if portal.lang == "ru" else f"Deal #{number}"
    deal_id = portal.crm.deals.insert(row)
    record_deal_stage(portal, deal_id, stage, category_id, 1, ts)
    return deal_id


def modify_deal(
    portal: Portal, deal_id: int, fields: dict[str, Any], user_id: int, ts: float | None = None
) -> None:
    """Update a deal; a STAGE_ID change is a move (history TYPE_ID 2, or 3 if final)."""
    row = portal.crm.deals.get(deal_id)
    if row is None:
        raise item_not_found()
    ts = time.time() if ts is None else ts
    new_stage = fields.get("STAGE_ID")
    _apply(portal, row, {k: v for k, v in fields.items() if k != "CATEGORY_ID"})
    if new_stage and new_stage != row.get("STAGE_ID"):
        _set_stage(portal, row, str(new_stage), user_id, ts)
        final = row["STAGE_SEMANTIC_ID"] in ("S", "F")
        category_id = int(row.get("CATEGORY_ID") or 0)
        record_deal_stage(portal, deal_id, str(new_stage), category_id, 3 if final else 2, ts)
    row["MODIFY_BY_ID"] = str(user_id)
    row["DATE_MODIFY"] = portal.now_str(ts)


def record_deal_stage(
    portal: Portal, deal_id: int, stage_id: str, category_id: int, type_id: int, ts: float
) -> None:
    """A ``crm.stagehistory.list`` (entityTypeId 2) row: STAGE_ID, STAGE_SEMANTIC_ID,
    CATEGORY_ID (semantics: P in progress, S success, F failure)."""
    sem = portal.crm.status_semantics(stage_entity(category_id), stage_id) or "P"
    entry_id = len(portal.crm.deal_history) + 1
    entry = {
        "ID": entry_id,
        "TYPE_ID": type_id,
        "OWNER_ID": deal_id,
        "CREATED_TIME": portal.now_str(ts),
        "CATEGORY_ID": category_id,
        "STAGE_ID": stage_id,
        "STAGE_SEMANTIC_ID": sem,
    }
    portal.crm.deal_history.append(entry)
    portal.crm.deal_history_ids.append(entry_id)
    portal.crm.deal_history_by_id[entry_id] = entry


COPIED = (
    "SOURCE_ID", "SOURCE_DESCRIPTION", "COMMENTS", "OPPORTUNITY", "CURRENCY_ID", "ASSIGNED_BY_ID",
    "UTM_SOURCE", "UTM_MEDIUM", "UTM_CAMPAIGN", "UTM_CONTENT", "UTM_TERM",
)  # fmt: skip


def convert_lead(
    portal: Portal,
    lead_id: int,
    user_id: int,
    ts: float | None = None,
    deal_fields: dict[str, Any] | None = None,
) -> tuple[int, list[tuple[str, dict[str, Any]]]]:
    """Convert a lead into contact + deal (lock held); returns the deal id and the events
    to emit (``ONCRMLEADUPDATE``, ``ONCRMDEALADD``)."""
    lead = portal.crm.leads.get(lead_id)
    if lead is None:
        raise KeyError(lead_id)
    ts = time.time() if ts is None else ts
    contact_id = contacts.create_contact(portal, lead, user_id, ts)
    fields: dict[str, Any] = {k: lead.get(k) for k in COPIED if lead.get(k) not in (None, "")}
    fields.update(
        {
            "TITLE": lead.get("TITLE") or "",
            "LEAD_ID": str(lead_id),
            "CONTACT_ID": str(contact_id),
            "CATEGORY_ID": 0,
        }
    )
    fields.update(deal_fields or {})
    deal_id = create_deal(portal, fields, user_id, ts)
    success = next(
        (
            r["STATUS_ID"]
            for r in portal.crm.statuses.values()
            if r["ENTITY_ID"] == "STATUS" and r["_success"]
        ),
        "CONVERTED",
    )
    modify_lead(portal, lead_id, {"STATUS_ID": success}, user_id, ts)
    lead["CONTACT_ID"] = str(contact_id)
    return deal_id, [
        ("ONCRMLEADUPDATE", {"FIELDS": {"ID": str(lead_id)}}),
        ("ONCRMDEALADD", {"FIELDS": {"ID": str(deal_id)}}),
    ]


def after_lead_created(
    portal: Portal, lead_id: int, user_id: int, ts: float | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """Simple mode: convert a new lead at once; the events to emit after ``ONCRMLEADADD``."""
    if portal.crm.crm_mode != SIMPLE:
        return []
    _, events = convert_lead(portal, lead_id, user_id, ts)
    return events


def bulk_create_deals(
    portal: Portal,
    n: int,
    *,
    start: float,
    step_seconds: float = 60.0,
    fields: Any = None,
) -> list[int]:
    """``n`` deals without events (a back-fill fixture); ``fields(i)`` gives each deal's
    fields (``LEAD_ID``, ``STAGE_ID``, …). Stage history (creation) is recorded."""
    ids = []
    with portal.lock:
        for i in range(n):
            row = dict(fields(i) if fields is not None else {})
            ids.append(create_deal(portal, row, 1, start + i * step_seconds))
    return ids
