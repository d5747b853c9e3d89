"""The two kinds of CRM entity a client journey lives on: a lead and a deal.

A kind says how its entity is read (one ``crm.item.get`` with its ``crm.stagehistory.list`` in
a ``batch``, and the backfill's list pages), how the answer is normalised
(:mod:`b24app.leads.snapshot`) and its stage history parsed, where the registration keeps the
name of its AI user field, and which journey key a journey started on it gets (the lead id, or
minus the deal id: :mod:`b24app.leads.journeys`). The intake, the coalesced event reads, the
backfill and the registration take a kind (:mod:`b24app.leads.intake`,
:mod:`b24app.leads.coalesce`, :mod:`b24app.leads.backfill`,
:mod:`b24app.install.registration`); what a kind's record does to the journey is in
:mod:`b24app.leads.lifecycle` (``record_snapshot`` for a lead, ``record_deal`` for a deal).
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from b24app.bitrix.client import BatchResult
from b24app.leads.items import item_commands
from b24app.leads.items import read_item
from b24app.leads.lifecycle import HistoryEntry
from b24app.leads.lifecycle import parse_history
from b24app.leads.snapshot import DealSnapshot
from b24app.leads.snapshot import LeadSnapshot
from b24app.leads.snapshot import normalise_deal
from b24app.leads.snapshot import normalise_lead
from b24app.leads.tag_writes import DEFAULT_LEAD_FIELD
from b24app.storage.models import EntityType

Commands = dict[str, tuple[str, dict[str, Any]]]


@dataclass(frozen=True)
class EntityKind:
    """One kind of CRM entity a journey lives on (see the module docstring)."""

    name: str  # EntityType.LEAD / DEAL; letters only (it prefixes batch command ids)
    entity_type_id: int  # crm.item / crm.stagehistory.list entityTypeId, ownerTypeId
    list_method: str  # the backfill's pages
    list_select: tuple[str, ...]
    history_select: tuple[str, ...]
    stage_key: str  # the stage column of its history rows
    semantic_key: str
    field_key: str  # the registration's key of its AI user field's name
    normalise: Callable[[Mapping[str, Any], str | None], LeadSnapshot | DealSnapshot]

    def key(self, entity_id: int) -> int:
        """The journey key of a journey started on this entity (also its lock's key)."""
        return entity_id if self.name == EntityType.LEAD else -entity_id

    def field(self, registration: Mapping[str, Any]) -> str:
        """The name of the app's AI user field on this kind."""
        return str(registration.get(self.field_key) or DEFAULT_LEAD_FIELD)

    def commands(self, entity_id: int, prefix: str = "") -> Commands:
        """The ``batch`` commands that read one entity and its stage history (two commands,
        so 25 entities fit in one request)."""
        return item_commands(
            self.entity_type_id, entity_id, f"{prefix}{self.name}", f"{prefix}history",
            list(self.history_select),
        )  # fmt: skip

    def read(
        self, answer: BatchResult, entity_id: int, field: str, prefix: str = ""
    ) -> tuple[Any, list[Any] | None] | None:
        """The answers to :meth:`commands` → (snapshot, its raw history rows), or None when
        the CRM no longer has it; the rows are None when the history could not be read."""
        read = read_item(answer, f"{prefix}{self.name}", f"{prefix}history")
        if read is None:
            return None
        item, found = read
        rows = None
        if found is not None:
            rows = [r for r in found if str(_get(r, "OWNER_ID")) == str(entity_id)]
        return self.normalise(item, field), rows

    def history(self, rows: Iterable[Any], key: int | None = None) -> list[HistoryEntry]:
        """Its ``crm.stagehistory.list`` rows as entries of journey ``key`` (None: each row's
        ``OWNER_ID``, a lead's own journey key)."""
        return parse_history(
            rows, stage_key=self.stage_key, semantic_key=self.semantic_key, journey_key=key
        )


def _get(row: Any, name: str) -> Any:
    return row.get(name) if isinstance(row, Mapping) else None


# the list fields both kinds read, in the order Bitrix24 is asked for them
_SHARED_SELECT = (
    "SOURCE_ID",
    "SOURCE_DESCRIPTION",
    "COMMENTS",
    "ASSIGNED_BY_ID",
    "DATE_CREATE",
    "DATE_MODIFY",
    "MOVED_TIME",
    "OPPORTUNITY",
    "CURRENCY_ID",
    "UTM_SOURCE",
    "UTM_MEDIUM",
    "UTM_CAMPAIGN",
    "UTM_CONTENT",
    "UTM_TERM",
)
# the stage history columns both kinds read before their own stage columns
_HISTORY_SELECT = ("ID", "TYPE_ID", "OWNER_ID", "CREATED_TIME")
LEAD = EntityKind(
    name=EntityType.LEAD,
    entity_type_id=1,
    list_method="crm.lead.list",
    list_select=(
        "ID",
        "TITLE",
        "STATUS_ID",
        "STATUS_SEMANTIC_ID",
        *_SHARED_SELECT,
        "IM",
    ),  # fmt: skip
    history_select=(*_HISTORY_SELECT, "STATUS_ID", "STATUS_SEMANTIC_ID"),
    stage_key="STATUS_ID",
    semantic_key="STATUS_SEMANTIC_ID",
    field_key="lead_field",
    normalise=normalise_lead,
)
DEAL = EntityKind(
    name=EntityType.DEAL,
    entity_type_id=2,
    list_method="crm.deal.list",
    list_select=(
        "ID",
        "TITLE",
        "LEAD_ID",
        "CONTACT_ID",
        "CATEGORY_ID",
        "STAGE_ID",
        "STAGE_SEMANTIC_ID",
        *_SHARED_SELECT,
    ),  # fmt: skip
    history_select=(*_HISTORY_SELECT, "CATEGORY_ID", "STAGE_ID", "STAGE_SEMANTIC_ID"),
    stage_key="STAGE_ID",
    semantic_key="STAGE_SEMANTIC_ID",
    field_key="deal_field",
    normalise=normalise_deal,
)
KINDS: dict[str, EntityKind] = {LEAD.name: LEAD, DEAL.name: DEAL}
