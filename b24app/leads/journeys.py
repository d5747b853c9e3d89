"""Client journeys: one :class:`~b24app.storage.models.Journey` row per client, across lead and deal.

A journey starts on a lead (``lead_id`` set, ``entity_type="lead"``) or on a deal created
directly (``deal_id`` only, ``entity_type="deal"``). When a lead is converted, the deal's
``LEAD_ID`` points back at it and the same row gets the ``deal_id``: the journey now lives on
the deal, and the KPIs still count it once.

**Journey key.** Timers (``Timer.journey_key``), stage moves (``JourneyStageChange.journey_key``) and
robot calls are keyed by an integer that stays the same for the whole journey:
:func:`journey_key` — the lead's id when the journey started on a lead, ``-deal_id`` when it
started on a deal. A lead journey's key is exactly what it was before deals existed, so no
stored timer changes meaning; :func:`find_journey` with ``key=`` resolves it back.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement
from sqlalchemy import select
from sqlalchemy.orm import Session

from b24app.storage.models import Journey


def journey_key(journey: Journey) -> int:
    """The stable integer key of a journey (lead id, or minus the deal id for a direct deal)."""
    if journey.lead_id is not None:
        return int(journey.lead_id)
    if journey.deal_id is None:
        raise ValueError("a journey has a lead or a deal")
    return -int(journey.deal_id)


def key_filter(key: int) -> dict[str, int]:
    """``{"lead_id": key}`` or ``{"deal_id": -key}``: the column a journey key names."""
    return {"lead_id": key} if key > 0 else {"deal_id": -key}


def find_journey(
    session: Session,
    portal_id: int,
    *,
    lead_id: int | None = None,
    deal_id: int | None = None,
    contact_id: int | None = None,
    key: int | None = None,
) -> Journey | None:
    """The journey of a lead, a deal, a journey key, or (the latest live one of) a contact.

    With several arguments the first that finds a row wins, in the order lead, deal, key,
    contact.
    """
    if lead_id is not None:
        found = session.scalar(
            select(Journey).where(Journey.portal_id == portal_id, Journey.lead_id == lead_id)
        )
        if found is not None:
            return found
    if deal_id is not None:
        found = session.scalar(
            select(Journey).where(Journey.portal_id == portal_id, Journey.deal_id == deal_id)
        )
        if found is not None:
            return found
    if key is not None and key != 0:
        found = find_journey(session, portal_id, **key_filter(key))
        if found is not None:
            return found
    if contact_id is not None:
        return session.scalar(
            select(Journey)
            .where(
                Journey.portal_id == portal_id,
                Journey.contact_id == contact_id,
                Journey.deleted_at.is_(None),
            )
            .order_by(Journey.created_at.desc(), Journey.id.desc())
            .limit(1)
        )
    return None


def journey_where(key: int) -> ColumnElement[bool]:
    """The SQL condition on ``Journey`` that selects the journey with this key."""
    return Journey.lead_id == key if key > 0 else Journey.deal_id == -key


@dataclass(frozen=True)
class CrmTarget:
    """The CRM entity a journey lives on now: where the app writes fields, comments, to-dos."""

    entity_type_id: int  # 1 lead, 2 deal (crm.item / ownerTypeId)
    entity_id: int
    entity_type: str  # "lead" / "deal" (crm.timeline.comment.add ENTITY_TYPE)

    @property
    def document_prefix(self) -> str:
        return "LEAD" if self.entity_type_id == 1 else "DEAL"


def crm_target(journey: Journey | None, key: int) -> CrmTarget:
    """The deal when the journey has one, else its lead (a bare key when there is no row)."""
    if journey is not None and journey.deal_id is not None:
        return CrmTarget(2, int(journey.deal_id), "deal")
    if journey is not None and journey.lead_id is not None:
        return CrmTarget(1, int(journey.lead_id), "lead")
    return CrmTarget(1, key, "lead") if key > 0 else CrmTarget(2, -key, "deal")
