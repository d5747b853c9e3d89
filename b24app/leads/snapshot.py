"""One lead or deal as the CRM returned it, in one shape whichever API generation answered.

``crm.item.get``/``crm.item.list`` answer in camelCase with numbers as numbers (``stageId``,
``assignedById``, ``updatedTime``, ``fm[]``); ``crm.lead.get``/``crm.lead.list`` answer in
UPPER_CASE with strings (``STATUS_ID``, ``"ASSIGNED_BY_ID": "1"``, ``DATE_MODIFY``, ``IM[]``).
:func:`normalise_lead` turns either into a :class:`LeadSnapshot` (:func:`normalise_deal`: a
:class:`DealSnapshot`), with every time as naive
UTC like everything stored in the database (both shapes: tests/fixtures/crm_item_get_lead.json,
tests/fixtures/crm_lead_get.json).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import fields
from decimal import Decimal
from decimal import InvalidOperation
from typing import Any

# crm.lead / crm.deal name -> crm.item name, the fields both kinds share.
_SHARED_NAMES: dict[str, str] = {
    "ID": "id",
    "TITLE": "title",
    "ASSIGNED_BY_ID": "assignedById",
    "SOURCE_ID": "sourceId",
    "SOURCE_DESCRIPTION": "sourceDescription",
    "COMMENTS": "comments",
    "UTM_SOURCE": "utmSource",
    "UTM_MEDIUM": "utmMedium",
    "UTM_CAMPAIGN": "utmCampaign",
    "UTM_CONTENT": "utmContent",
    "UTM_TERM": "utmTerm",
    "OPPORTUNITY": "opportunity",
    "CURRENCY_ID": "currencyId",
    "DATE_CREATE": "createdTime",
    "DATE_MODIFY": "updatedTime",
    "MOVED_TIME": "movedTime",
}
FIELD_NAMES: dict[str, str] = {
    **_SHARED_NAMES, "STATUS_ID": "stageId", "STATUS_SEMANTIC_ID": "stageSemanticId",
}  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class CrmFields:
    """The fields a lead and a deal share (:func:`read_common`); times are naive UTC."""

    title: str
    assigned_by_id: int | None
    source_id: str
    source_description: str
    comments: str
    utm_source: str
    utm_medium: str
    utm_campaign: str
    utm_content: str
    utm_term: str
    opportunity: Decimal | None
    currency_id: str
    created_at: dt.datetime | None
    modified_at: dt.datetime | None
    moved_at: dt.datetime | None
    # The app's own user field on the entity (``registration["lead_field"]`` or
    # ``["deal_field"]``), "" when empty.
    ai_field_value: str = ""


@dataclass(frozen=True, kw_only=True)
class LeadSnapshot(CrmFields):
    """The fields of a lead the app records."""

    lead_id: int
    status_id: str
    status_semantic: str  # P / S / F ("" when the answer did not say)
    # IM multifield values (``imol|telegrambot|2|67|21`` marks an open-line chat client).
    im_values: tuple[str, ...] = ()


def parse_time(value: Any) -> dt.datetime | None:
    """A Bitrix24 datetime (``2024-05-23T18:18:25+02:00``) as naive UTC; ``""``/None → None.

    A value without an offset is taken as UTC (Bitrix24 always sends one).
    """
    if value in (None, "") or not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment


def _text(value: Any) -> str:
    if value is None or isinstance(value, dict | list):
        return ""
    return str(value).strip()


def _int(value: Any) -> int | None:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _amount(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        return None


def uf_camel_name(name: str) -> str:
    """``UF_CRM_B24APP_AI`` → ``ufCrmB24appAi`` (``crm.item`` without useOriginalUfNames);
    a part starting with a digit keeps its underscore (``UF_CRM_1720`` → ``ufCrm_1720``)."""
    out = "ufCrm"
    for part in name.split("_")[2:]:
        if part:
            out += ("_" + part.lower()) if part[0].isdigit() else part.capitalize()
    return out


def user_field_value(raw: Mapping[str, Any], field: str | None) -> Any:
    """A user field's value under its ``UF_CRM_…`` name or its ``crm.item`` camel-case name;
    a multiple field gives its first non-empty value."""
    value: Any = None
    if field:
        value = raw.get(field)
        if value is None:
            value = raw.get(uf_camel_name(field))
    if isinstance(value, list):
        value = next((v for v in value if v), "")
    return value


def is_item_style(raw: Mapping[str, Any]) -> bool:
    """True for a ``crm.item`` answer (camelCase), False for ``crm.lead`` (UPPER_CASE)."""
    return "ID" not in raw and ("id" in raw or "stageId" in raw)


def _im_values(raw: Mapping[str, Any], item_style: bool) -> tuple[str, ...]:
    if item_style:
        entries = raw.get("fm") or []
        if isinstance(entries, dict):
            entries = list(entries.values())
        return tuple(
            str(e.get("value") or "")
            for e in entries
            if isinstance(e, dict) and str(e.get("typeId") or "").upper() == "IM"
        )
    entries = raw.get("IM") or []
    if isinstance(entries, dict):
        entries = list(entries.values())
    return tuple(str(e.get("VALUE") or "") for e in entries if isinstance(e, dict))


def read_common(
    raw: Mapping[str, Any], names: Mapping[str, str], field: str | None, what: str
) -> tuple[Callable[[str], Any], int, dict[str, Any]]:
    """What reading a lead and a deal share: ``get`` (an UPPER_CASE name looked up in the
    answer's own style, ``names`` mapping it to the ``crm.item`` name), the entity's id, and
    the fields both kinds have as keyword arguments of either snapshot (``field``: the app's AI
    user field).

    :raise ValueError: the answer has no positive id.
    """
    item_style = is_item_style(raw)

    def get(upper: str) -> Any:
        return raw.get(names[upper] if item_style else upper)

    entity_id = _int(get("ID"))
    if entity_id is None:
        raise ValueError(f"the {what} answer has no id")
    return (
        get,
        entity_id,
        {
            "title": _text(get("TITLE")),
            "assigned_by_id": _int(get("ASSIGNED_BY_ID")),
            "source_id": _text(get("SOURCE_ID")),
            "source_description": _text(get("SOURCE_DESCRIPTION")),
            "comments": _text(get("COMMENTS")),
            "utm_source": _text(get("UTM_SOURCE")),
            "utm_medium": _text(get("UTM_MEDIUM")),
            "utm_campaign": _text(get("UTM_CAMPAIGN")),
            "utm_content": _text(get("UTM_CONTENT")),
            "utm_term": _text(get("UTM_TERM")),
            "opportunity": _amount(get("OPPORTUNITY")),
            "currency_id": _text(get("CURRENCY_ID"))[:8],
            "created_at": parse_time(get("DATE_CREATE")),
            "modified_at": parse_time(get("DATE_MODIFY")),
            "moved_at": parse_time(get("MOVED_TIME")),
            "ai_field_value": _text(user_field_value(raw, field)),
        },
    )


def normalise_lead(raw: Mapping[str, Any], lead_field: str | None = None) -> LeadSnapshot:
    """A ``crm.item`` (camelCase) or ``crm.lead`` (UPPER_CASE) lead as a :class:`LeadSnapshot`.

    ``lead_field`` is the app's user field (``UF_CRM_B24APP_AI``); it is looked up under its
    original name and under the ``ufCrm…`` name ``crm.item`` uses without useOriginalUfNames.

    :raise ValueError: the answer has no positive lead id.
    """
    get, lead_id, common = read_common(raw, FIELD_NAMES, lead_field, "lead")
    return LeadSnapshot(
        lead_id=lead_id,
        status_id=_text(get("STATUS_ID")),
        status_semantic=_text(get("STATUS_SEMANTIC_ID")).upper(),
        im_values=_im_values(raw, is_item_style(raw)),
        **common,
    )


# -- deals ----------------------------------------------------------------------------------

# crm.deal name -> crm.item name.
DEAL_FIELD_NAMES: dict[str, str] = {
    **_SHARED_NAMES, "LEAD_ID": "leadId", "CONTACT_ID": "contactId", "CATEGORY_ID": "categoryId",
    "STAGE_ID": "stageId", "STAGE_SEMANTIC_ID": "stageSemanticId",
}  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class DealSnapshot(CrmFields):
    """The fields of a deal the journey records."""

    deal_id: int
    lead_id: int | None
    contact_id: int | None
    category_id: int
    stage_id: str
    stage_semantic: str

    def as_lead_snapshot(self) -> LeadSnapshot:
        """The same fields in the lead shape (classification, channel and field copying are
        shared with leads); the stage goes in ``status_id``."""
        shared = {f.name: getattr(self, f.name) for f in fields(CrmFields)}
        return LeadSnapshot(
            lead_id=self.deal_id,
            status_id=self.stage_id,
            status_semantic=self.stage_semantic,
            **shared,
        )


def normalise_deal(raw: Mapping[str, Any], deal_field: str | None = None) -> DealSnapshot:
    """A ``crm.item`` (camelCase) or ``crm.deal`` (UPPER_CASE) deal as a snapshot.

    :raise ValueError: the answer has no positive deal id.
    """
    get, deal_id, common = read_common(raw, DEAL_FIELD_NAMES, deal_field, "deal")
    return DealSnapshot(
        deal_id=deal_id,
        lead_id=_int(get("LEAD_ID")),
        contact_id=_int(get("CONTACT_ID")),
        category_id=_int(get("CATEGORY_ID")) or 0,
        stage_id=_text(get("STAGE_ID"))[:64],
        stage_semantic=_text(get("STAGE_SEMANTIC_ID")).upper(),
        **common,
    )
