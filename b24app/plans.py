"""Each portal's plan (its REST bucket size), read from its licence once a day.

Bitrix24 gives Enterprise portals a 5 req/s / 250 bucket and every other plan 2 / 50
(EN:``limits.md``). The plan is read with ``app.info`` right after registration and again
by :func:`refresh_stale_plans` (cron, hourly) once the stored one is a day old, so a portal
that upgrades or downgrades gets the right bucket within a day. The plan lives in Redis
(:mod:`b24app.bitrix.budget`); without one the client uses the standard figures.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from b24app import context
from b24app.bitrix.budget import load_plan
from b24app.bitrix.budget import plan_is_stale
from b24app.bitrix.budget import PortalPlan
from b24app.bitrix.budget import Priority
from b24app.bitrix.budget import refresh_plan
from b24app.bitrix.budget import rest_priority
from b24app.bitrix.errors import BitrixError
from b24app.context import Services

log = logging.getLogger(__name__)


def refresh_portal_plan(services: Services, member_id: str) -> PortalPlan | None:
    """Read the licence now (one ``app.info`` request); None if the portal refused."""
    try:
        with rest_priority(Priority.BULK):
            plan = refresh_plan(services.bitrix(member_id))
    except BitrixError as exc:
        log.warning("portal %s: could not read its plan (%s)", member_id, exc.code)
        return None
    log.info("portal %s: plan %s (%s)", member_id, plan.family, plan.license)
    return plan


def refresh_stale_plans() -> int:
    """Periodic job: re-read the plan of every active portal whose plan is a day old."""
    from b24app.storage.models import Portal
    from b24app.storage.models import PortalStatus

    services = context.current()
    with services.db() as session:
        members = list(
            session.scalars(select(Portal.member_id).where(Portal.status == PortalStatus.ACTIVE))
        )
    refreshed = 0
    for member_id in members:
        if plan_is_stale(load_plan(services.redis, member_id)):
            refreshed += refresh_portal_plan(services, member_id) is not None
    return refreshed
