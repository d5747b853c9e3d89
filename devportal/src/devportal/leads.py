"""Leads in memory: the ``crm.lead.*`` (UPPER_CASE, strings) and ``crm.item.*`` (camelCase,
numbers) views of one row, multifields, and the id index used for O(page) exports.

A row is stored in the ``crm.lead`` shape (all scalars as strings or None, the way
``crm.lead.get`` returns them); ``crm.item`` output is converted from it on the way out.
User fields ``UF_CRM_X_Y`` are exposed by ``crm.item`` as ``ufCrmXY`` camel case
(``UF_CRM_1720019876534`` → ``ufCrm_1720019876534``: a part starting with a digit keeps its
underscore, as in the docs' example), or unchanged with ``useOriginalUfNames=Y``.
"""

from __future__ import annotations

import bisect
import re
import time
from datetime import datetime
from datetime import tzinfo
from typing import Any
from typing import TYPE_CHECKING

from devportal.errors import not_found_lead
from devportal.errors import RestError

if TYPE_CHECKING:
    from devportal.portal import Portal

# (crm.lead name, crm.item name, kind). kind: int | float | str | date | yn
LEAD_FIELDS: list[tuple[str, str, str]] = [
    ("ID", "id", "int"),
    ("TITLE", "title", "str"),
    ("HONORIFIC", "honorific", "str"),
    ("NAME", "name", "str"),
    ("SECOND_NAME", "secondName", "str"),
    ("LAST_NAME", "lastName", "str"),
    ("COMPANY_TITLE", "companyTitle", "str"),
    ("COMPANY_ID", "companyId", "int"),
    ("CONTACT_ID", "contactId", "int"),
    ("IS_RETURN_CUSTOMER", "isReturnCustomer", "yn"),
    ("BIRTHDATE", "birthdate", "date"),
    ("SOURCE_ID", "sourceId", "str"),
    ("SOURCE_DESCRIPTION", "sourceDescription", "str"),
    ("STATUS_ID", "stageId", "str"),
    ("STATUS_DESCRIPTION", "statusDescription", "str"),
    ("POST", "post", "str"),
    ("COMMENTS", "comments", "str"),
    ("CURRENCY_ID", "currencyId", "str"),
    ("OPPORTUNITY", "opportunity", "float"),
    ("IS_MANUAL_OPPORTUNITY", "isManualOpportunity", "yn"),
    ("HAS_PHONE", "hasPhone", "yn"),
    ("HAS_EMAIL", "hasEmail", "yn"),
    ("HAS_IMOL", "hasImol", "yn"),
    ("ASSIGNED_BY_ID", "assignedById", "int"),
    ("CREATED_BY_ID", "createdBy", "int"),
    ("MODIFY_BY_ID", "updatedBy", "int"),
    ("DATE_CREATE", "createdTime", "date"),
    ("DATE_MODIFY", "updatedTime", "date"),
    ("DATE_CLOSED", "dateClosed", "date"),
    ("STATUS_SEMANTIC_ID", "stageSemanticId", "str"),
    ("OPENED", "opened", "yn"),
    ("ORIGINATOR_ID", "originatorId", "str"),
    ("ORIGIN_ID", "originId", "str"),
    ("MOVED_BY_ID", "movedBy", "int"),
    ("MOVED_TIME", "movedTime", "date"),
    ("ADDRESS", "address", "str"),
    ("ADDRESS_2", "address2", "str"),
    ("ADDRESS_CITY", "addressCity", "str"),
    ("ADDRESS_POSTAL_CODE", "addressPostalCode", "str"),
    ("ADDRESS_REGION", "addressRegion", "str"),
    ("ADDRESS_PROVINCE", "addressProvince", "str"),
    ("ADDRESS_COUNTRY", "addressCountry", "str"),
    ("ADDRESS_COUNTRY_CODE", "addressCountryCode", "str"),
    ("ADDRESS_LOC_ADDR_ID", "addressLocAddrId", "str"),
    ("UTM_SOURCE", "utmSource", "str"),
    ("UTM_MEDIUM", "utmMedium", "str"),
    ("UTM_CAMPAIGN", "utmCampaign", "str"),
    ("UTM_CONTENT", "utmContent", "str"),
    ("UTM_TERM", "utmTerm", "str"),
    ("LAST_ACTIVITY_BY", "lastActivityBy", "int"),
    ("LAST_ACTIVITY_TIME", "lastActivityTime", "date"),
]
MULTIFIELDS = ("PHONE", "EMAIL", "WEB", "IM", "LINK")
READ_ONLY = {
    "ID", "DATE_CREATE", "DATE_MODIFY", "CREATED_BY_ID", "MODIFY_BY_ID", "STATUS_SEMANTIC_ID",
    "HAS_PHONE", "HAS_EMAIL", "HAS_IMOL", "MOVED_BY_ID", "MOVED_TIME", "DATE_CLOSED",
    "IS_RETURN_CUSTOMER", "LAST_ACTIVITY_BY", "LAST_ACTIVITY_TIME",
}  # fmt: skip
STANDARD = [f[0] for f in LEAD_FIELDS]
UPPER_TO_CAMEL = {f[0]: f[1] for f in LEAD_FIELDS}
CAMEL_TO_UPPER = {f[1]: f[0] for f in LEAD_FIELDS}
KIND = {f[0]: f[2] for f in LEAD_FIELDS}


def uf_camel(name: str) -> str:
    """``UF_CRM_B24APP_AI`` → ``ufCrmB24appAi``; ``UF_CRM_1720`` → ``ufCrm_1720``."""
    parts = name.split("_")[2:]
    out = "ufCrm"
    for part in parts:
        if not part:
            continue
        out += ("_" + part.lower()) if part[0].isdigit() else part.capitalize()
    return out


def fmt_dt(ts: float, tz: tzinfo) -> str:
    """Unix time as Bitrix24 prints it: ``2024-05-23T18:18:25+02:00``."""
    return datetime.fromtimestamp(ts, tz).replace(microsecond=0).isoformat()


def as_str(value: Any) -> str | None:
    """A value stored the way crm.lead returns it (strings; None stays None)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "Y" if value else "N"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, list):
        return value  # type: ignore[return-value]  # multiple UF values
    return str(value)


def to_item_value(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "int":
        try:
            return int(value)
        except (TypeError, ValueError):
            return 0 if value == "" else value
    if kind == "float":
        try:
            return float(value)
        except (TypeError, ValueError):
            return 0.0
    if kind == "date":
        return value or None
    return value


class LeadStore:
    """Rows by id plus an ascending id list (ids only grow, so appends keep it sorted)."""

    def __init__(self) -> None:
        self.rows: dict[int, dict[str, Any]] = {}
        self.ids: list[int] = []
        self.next_id = 1
        self.next_fm_id = 1

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, lead_id: int) -> dict[str, Any] | None:
        return self.rows.get(lead_id)

    def insert(self, row: dict[str, Any]) -> int:
        lead_id = self.next_id
        self.next_id += 1
        row["ID"] = str(lead_id)
        self.rows[lead_id] = row
        self.ids.append(lead_id)
        return lead_id

    def delete(self, lead_id: int) -> bool:
        if self.rows.pop(lead_id, None) is None:
            return False
        index = bisect.bisect_left(self.ids, lead_id)
        if index < len(self.ids) and self.ids[index] == lead_id:
            self.ids.pop(index)
        return True

    def add_multifield(self, row: dict[str, Any], kind: str, items: Any) -> None:
        """Bitrix24 semantics: items without ``ID`` are added; with ``ID`` and empty VALUE
        the entry is deleted, with ``ID`` and a VALUE it is changed."""
        if isinstance(items, dict):
            items = list(items.values())
        if not isinstance(items, list):
            return
        current: list[dict[str, Any]] = list(row.get(kind) or [])
        for item in items:
            if not isinstance(item, dict):
                continue
            value = item.get("VALUE")
            if item.get("ID"):
                for entry in list(current):
                    if entry["ID"] == str(item["ID"]):
                        if value in (None, ""):
                            current.remove(entry)
                        else:
                            entry["VALUE"] = str(value)
                            entry["VALUE_TYPE"] = item.get("VALUE_TYPE", entry["VALUE_TYPE"])
                continue
            if value in (None, ""):
                continue
            current.append(
                {
                    "ID": str(self.next_fm_id),
                    "VALUE_TYPE": str(item.get("VALUE_TYPE") or "WORK"),
                    "VALUE": str(value),
                    "TYPE_ID": kind,
                }
            )
            self.next_fm_id += 1
        if current:
            row[kind] = current
        else:
            row.pop(kind, None)
        row["HAS_PHONE"] = "Y" if row.get("PHONE") else "N"
        row["HAS_EMAIL"] = "Y" if row.get("EMAIL") else "N"
        row["HAS_IMOL"] = (
            "Y" if any(e["VALUE"].startswith("imol|") for e in row.get("IM") or []) else "N"
        )


def to_item(row: dict[str, Any], uf_names: list[str], original_uf: bool) -> dict[str, Any]:
    """The ``crm.item`` view of a stored lead row."""
    item: dict[str, Any] = {}
    for upper, camel, kind in LEAD_FIELDS:
        item[camel] = to_item_value(kind, row.get(upper))
    fm: list[dict[str, Any]] = []
    for kind in MULTIFIELDS:
        for entry in row.get(kind) or []:
            fm.append(
                {
                    "id": int(entry["ID"]),
                    "valueType": entry["VALUE_TYPE"],
                    "value": entry["VALUE"],
                    "typeId": kind,
                }
            )
    item["fm"] = fm
    phones = row.get("PHONE") or []
    emails = row.get("EMAIL") or []
    item["phone"] = phones[0]["VALUE"] if phones else ""
    item["email"] = emails[0]["VALUE"] if emails else ""
    item["observers"] = []
    item["contactIds"] = []
    for name in uf_names:
        item[name if original_uf else uf_camel(name)] = row.get(name)
    item["entityTypeId"] = 1
    return item


def from_item_fields(fields: dict[str, Any], uf_names: list[str]) -> dict[str, Any]:
    """``crm.item`` input (camelCase, or ``UF_CRM_*`` names) → ``crm.lead`` field names."""
    camel_uf = {uf_camel(n): n for n in uf_names}
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key in CAMEL_TO_UPPER:
            out[CAMEL_TO_UPPER[key]] = value
        elif key in camel_uf:
            out[camel_uf[key]] = value
        elif key.startswith("UF_CRM_"):
            out[key] = value
        elif key == "fm" and isinstance(value, list | dict):
            items = value.values() if isinstance(value, dict) else value
            for entry in items:
                if isinstance(entry, dict) and entry.get("typeId"):
                    out.setdefault(str(entry["typeId"]), []).append(
                        {
                            "ID": entry.get("id"),
                            "VALUE": entry.get("value"),
                            "VALUE_TYPE": entry.get("valueType"),
                        }
                    )
    return out


def item_name_to_upper(name: str, uf_names: list[str]) -> str:
    if name in CAMEL_TO_UPPER:
        return CAMEL_TO_UPPER[name]
    for uf in uf_names:
        if uf_camel(uf) == name:
            return uf
    return name


# -- writes (lock held by the caller): crm.lead.*, crm.item.* and the portal's helpers ---

UF_NAME_RE = re.compile(r"^UF_CRM_[A-Z0-9_]+$")


def _apply(portal: Portal, row: dict[str, Any], fields: dict[str, Any]) -> None:
    ufs = set(portal.crm.uf_names())
    for key, value in fields.items():
        key = str(key)
        if key in MULTIFIELDS:
            portal.crm.leads.add_multifield(row, key, value)
        elif key in ufs:
            row[key] = [as_str(v) for v in value] if isinstance(value, list) else as_str(value)
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
    semantic = portal.crm.status_semantics("STATUS", status_id) or "P"
    row["STATUS_ID"] = status_id
    row["STATUS_SEMANTIC_ID"] = semantic
    row["MOVED_BY_ID"] = str(user_id)
    row["MOVED_TIME"] = portal.now_str(ts)
    row["DATE_CLOSED"] = portal.now_str(ts) if semantic in ("S", "F") else ""


def create_lead(
    portal: Portal, fields: dict[str, Any], user_id: int, ts: float | None = None
) -> int:
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
    for uf in portal.crm.uf_names():
        row[uf] = None
    _apply(portal, row, fields)
    status = row.get("STATUS_ID") or portal.crm.lead_status_ids()[0]
    _set_status(portal, row, status, user_id, ts)
    if not row["TITLE"]:
        row["TITLE"] = (
            f"Лид #{portal.crm.leads.next_id}"
            if portal.lang == "ru"
            else f"Lead #{portal.crm.leads.next_id}"
        )
    lead_id = portal.crm.leads.insert(row)
    portal.crm.record_stage(lead_id, status, 1, ts)
    return lead_id


def modify_lead(
    portal: Portal, lead_id: int, fields: dict[str, Any], user_id: int, ts: float | None = None
) -> None:
    """Update a lead; a STATUS_ID change moves it (stage history TYPE_ID 2, or 3 if final)."""
    row = portal.crm.leads.get(lead_id)
    if row is None:
        raise not_found_lead()
    ts = time.time() if ts is None else ts
    old_status = row.get("STATUS_ID")
    new_status = fields.get("STATUS_ID")
    _apply(portal, row, {k: v for k, v in fields.items() if k != "STATUS_ID"})
    if new_status and new_status != old_status:
        _set_status(portal, row, str(new_status), user_id, ts)
        final = row["STATUS_SEMANTIC_ID"] in ("S", "F")
        portal.crm.record_stage(lead_id, str(new_status), 3 if final else 2, ts)
    row["MODIFY_BY_ID"] = str(user_id)
    row["DATE_MODIFY"] = portal.now_str(ts)
