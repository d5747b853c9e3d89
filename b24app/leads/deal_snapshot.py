"""One deal as the CRM returned it (``crm.item.get`` entityTypeId 2 in camelCase, or
``crm.deal.get`` in UPPER_CASE), in one shape; and its ``crm.stagehistory.list`` rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from b24app.leads.lifecycle import HistoryEntry
from b24app.leads.lifecycle import parse_history
from b24app.leads.snapshot import _int
from b24app.leads.snapshot import _text
from b24app.leads.snapshot import common_fields
from b24app.leads.snapshot import is_item_style
from b24app.leads.snapshot import LeadSnapshot
from b24app.leads.snapshot import user_field_value

FIELD_NAMES: dict[str, str] = {
    "ID": "id",
    "TITLE": "title",
    "LEAD_ID": "leadId",
    "CONTACT_ID": "contactId",
    "CATEGORY_ID": "categoryId",
    "STAGE_ID": "stageId",
    "STAGE_SEMANTIC_ID": "stageSemanticId",
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
HISTORY_SELECT = [
    "ID", "TYPE_ID", "OWNER_ID", "CREATED_TIME", "CATEGORY_ID", "STAGE_ID", "STAGE_SEMANTIC_ID",
]  # fmt: skip


@dataclass(frozen=True)
class DealSnapshot:
    """The fields of a deal the journey records; times are naive UTC."""

    deal_id: int
    lead_id: int | None
    contact_id: int | None
    category_id: int
    stage_id: str
    stage_semantic: str
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
    ai_field_value: str = ""

    def as_lead_snapshot(self) -> LeadSnapshot:
        """The same fields in the lead shape (classification, channel and field copying are
        shared with leads); the stage goes in ``status_id``."""
        return LeadSnapshot(
            lead_id=self.deal_id, title=self.title, status_id=self.stage_id,
            status_semantic=self.stage_semantic, assigned_by_id=self.assigned_by_id,
            source_id=self.source_id, source_description=self.source_description,
            comments=self.comments, utm_source=self.utm_source, utm_medium=self.utm_medium,
            utm_campaign=self.utm_campaign, utm_content=self.utm_content,
            utm_term=self.utm_term, opportunity=self.opportunity, currency_id=self.currency_id,
            created_at=self.created_at, modified_at=self.modified_at, moved_at=self.moved_at,
            ai_field_value=self.ai_field_value,
        )  # fmt: skip


def normalise_deal(raw: Mapping[str, Any], deal_field: str | None = None) -> DealSnapshot:
    """A ``crm.item`` (camelCase) or ``crm.deal`` (UPPER_CASE) deal as a snapshot.

    :raise ValueError: the answer has no positive deal id.
    """
    item_style = is_item_style(raw)

    def get(upper: str) -> Any:
        return raw.get(FIELD_NAMES[upper] if item_style else upper)

    deal_id = _int(get("ID"))
    if deal_id is None:
        raise ValueError("the deal answer has no id")
    ai_value = user_field_value(raw, deal_field)
    return DealSnapshot(
        deal_id=deal_id,
        lead_id=_int(get("LEAD_ID")),
        contact_id=_int(get("CONTACT_ID")),
        category_id=_int(get("CATEGORY_ID")) or 0,
        stage_id=_text(get("STAGE_ID"))[:64],
        stage_semantic=_text(get("STAGE_SEMANTIC_ID")).upper(),
        title=_text(get("TITLE")),
        **common_fields(get, ai_value),
    )


def parse_deal_history(rows: Iterable[Any], key: int) -> list[HistoryEntry]:
    """Deal ``crm.stagehistory.list`` rows as lifecycle history entries of journey ``key``."""
    return parse_history(
        rows, stage_key="STAGE_ID", semantic_key="STAGE_SEMANTIC_ID", journey_key=key
    )
