"""Helpers for the reliability runs: polling with a deadline, DB counts, a second portal."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlalchemy import select

from b24app.context import Services
from b24app.storage.models import Journey
from b24app.storage.models import JourneyStageChange
from b24app.storage.models import Portal
from b24app.storage.portals import get_portal
from tests.waiting import wait_for

__all__ = ["wait_for"]


def db_portal(services: Services, member_id: str) -> Portal:
    with services.db() as session:
        portal = get_portal(session, member_id)
        assert portal is not None, f"portal {member_id} not stored"
        session.expunge(portal)
        return portal


def lead_rows(services: Services, portal_id: int) -> dict[int, int]:
    """``{bitrix lead id: number of Lead rows}`` of one portal."""
    with services.db() as session:
        rows = session.execute(
            select(Journey.lead_id, func.count())
            .where(Journey.portal_id == portal_id)
            .group_by(Journey.lead_id)
        )
        return {int(lead_id): int(n) for lead_id, n in rows}


def duplicate_moves(services: Services) -> list[Any]:
    """Stage moves recorded more than once (same portal, lead, status and time)."""
    with services.db() as session:
        return list(
            session.execute(
                select(
                    JourneyStageChange.portal_id,
                    JourneyStageChange.journey_key,
                    JourneyStageChange.status_id,
                    func.count(),
                )
                .group_by(
                    JourneyStageChange.portal_id,
                    JourneyStageChange.journey_key,
                    JourneyStageChange.status_id,
                )
                .having(func.count() > 1)
            )
        )
