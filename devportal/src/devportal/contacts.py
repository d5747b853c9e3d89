"""CRM contacts of an emulated portal (``crm.contact.*``): a booking's client, a deal's
``CONTACT_ID``, the contact a lead conversion creates."""

from __future__ import annotations

import time
from typing import Any
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devportal.portal import Portal


def create_contact(portal: Portal, lead: dict[str, Any], user_id: int, ts: float) -> int:
    """The contact a lead conversion creates from the lead's name and multifields."""
    fields = {k: lead.get(k) for k in ("NAME", "SECOND_NAME", "LAST_NAME", "PHONE", "EMAIL",
                                       "ASSIGNED_BY_ID", "SOURCE_ID")}  # fmt: skip
    fields["LEAD_ID"] = lead.get("ID")
    return add_contact(portal, fields, user_id, ts)


CONTACT_TEXT_FIELDS = (
    "HONORIFIC", "NAME", "SECOND_NAME", "LAST_NAME", "POST", "COMMENTS", "SOURCE_ID",
    "SOURCE_DESCRIPTION", "TYPE_ID",
)  # fmt: skip


def add_contact(portal: Portal, fields: dict[str, Any], user_id: int, ts: float | None) -> int:
    """A contact row as ``crm.contact.get`` answers it: every value a string (ids too), empty
    text as "", unset ids as null, ``PHONE``/``EMAIL`` multifield lists (lock held)."""
    contact_id = portal.crm.next_contact_id
    portal.crm.next_contact_id += 1
    ts = time.time() if ts is None else ts
    row: dict[str, Any] = {"ID": str(contact_id)}
    for name in CONTACT_TEXT_FIELDS:
        row[name] = str(fields.get(name) or "")
    phones = list(fields.get("PHONE") or [])
    emails = list(fields.get("EMAIL") or [])
    lead_id = fields.get("LEAD_ID")
    company_id = fields.get("COMPANY_ID")
    row.update(
        {
            "PHOTO": None,
            "BIRTHDATE": "",
            "OPENED": "Y",
            "EXPORT": "Y",
            "HAS_PHONE": "Y" if phones else "N",
            "HAS_EMAIL": "Y" if emails else "N",
            "HAS_IMOL": "N",
            "ASSIGNED_BY_ID": str(fields.get("ASSIGNED_BY_ID") or user_id),
            "CREATED_BY_ID": str(user_id),
            "MODIFY_BY_ID": str(user_id),
            "DATE_CREATE": portal.now_str(ts),
            "DATE_MODIFY": portal.now_str(ts),
            "COMPANY_ID": str(company_id) if company_id else None,
            "LEAD_ID": str(lead_id) if lead_id else None,
            "ORIGINATOR_ID": None,
            "ORIGIN_ID": None,
            "ORIGIN_VERSION": None,
            "FACE_ID": None,
            "PHONE": phones,
            "EMAIL": emails,
        }
    )
    portal.crm.contacts[contact_id] = row
    return contact_id
