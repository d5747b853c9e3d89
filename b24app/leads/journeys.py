"""Client journeys: one :class:`~b24app.storage.models.Lead` row per client, across lead and deal.

A journey starts on a lead (``lead_id`` set, ``entity_type="lead"``) or on a deal created
directly (``deal_id`` only, ``entity_type="deal"``). When a lead is converted, the deal's
``LEAD_ID`` points back at it and the same row gets the ``deal_id``: the journey now lives on
the deal, and the KPIs still count it once.

**Journey key.** Timers (``Timer.lead_id``), stage moves (``LeadStageChange.lead_id``) and
robot calls are keyed by an integer that stays the same for the whole journey:
:func:`journey_key` — the lead's id when the journey started on a lead, ``-deal_id`` when it
started on a deal. A lead journey's key is exactly what it was before deals existed, so no
stored timer changes meaning; :func:`find_journey` with ``key=`` resolves it back.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from b24app.storage.models import Lead


def journey_key(journey: Lead) -> int:
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
) -> Lead | None:
    """The journey of a lead, a deal, a journey key, or (the latest live one of) a contact.

    With several arguments the first that finds a row wins, in the order lead, deal, key,
    contact.
    """
    if lead_id is not None:
        found = session.scalar(
            select(Lead).where(Lead.portal_id == portal_id, Lead.lead_id == lead_id)
        )
        if found is not None:
            return found
    if deal_id is not None:
        found = session.scalar(
            select(Lead).where(Lead.portal_id == portal_id, Lead.deal_id == deal_id)
        )
        if found is not None:
            return found
    if key is not None and key != 0:
        found = find_journey(session, portal_id, **key_filter(key))
        if found is not None:
            return found
    if contact_id is not None:
        return session.scalar(
            select(Lead)
            .where(
                Lead.portal_id == portal_id,
                Lead.contact_id == contact_id,
                Lead.deleted_at.is_(None),
            )
            .order_by(Lead.created_at.desc(), Lead.id.desc())
            .limit(1)
        )
    return None
