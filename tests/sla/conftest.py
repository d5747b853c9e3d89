"""Helpers for SLA tests: a portal row and lead lifecycle rows written straight to the DB."""

from __future__ import annotations

import datetime as dt
from typing import Any

from rq.registry import ScheduledJobRegistry
from sqlalchemy import select

from b24app.context import Services
from b24app.storage.models import Journey
from b24app.storage.models import Portal
from b24app.storage.models import Timer

NOW = dt.datetime(2030, 5, 22, 9, 0)  # a Wednesday, 12:00 in Moscow


def scheduled_ids(services: Services) -> list[str]:
    return list(ScheduledJobRegistry(queue=services.queue("timers")).get_job_ids())


def timers(services: Services, **where: object) -> list[Timer]:
    with services.db() as session:
        rows = list(session.scalars(select(Timer).filter_by(**where).order_by(Timer.id)))
        session.expunge_all()
        return rows


def make_portal(services: Services, member_id: str = "sla-member") -> int:
    with services.db() as session:
        portal = Portal(
            member_id=member_id,
            domain="salon.example.bitrix24.ru",
            client_endpoint="https://salon.example.bitrix24.ru/rest/",
            server_endpoint="https://oauth.bitrix.info/rest/",
            installer_user_id=1,
        )
        session.add(portal)
        session.flush()
        return portal.id


def make_lead(services: Services, portal_id: int, lead_id: int, **fields: Any) -> None:
    values: dict[str, Any] = {
        "channel": "chat",
        "assigned_by_id": 2,
        "created_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
    }
    values.update(fields)
    with services.db() as session:
        session.add(Journey(portal_id=portal_id, lead_id=lead_id, **values))


def update_lead(services: Services, portal_id: int, lead_id: int, **fields: Any) -> None:
    with services.db() as session:
        lead = session.query(Journey).filter_by(portal_id=portal_id, lead_id=lead_id).one()
        for key, value in fields.items():
            setattr(lead, key, value)


def portal_id_of(services: Services, member_id: str) -> int:
    """The Portal row id of an installed emulator portal."""
    with services.db() as session:
        portal_id = session.scalar(select(Portal.id).where(Portal.member_id == member_id))
    assert portal_id is not None
    return int(portal_id)


def timer_row(services: Services, lead_id: int, level: str, policy: str | None = None) -> Timer:
    """One timer row, detached (safe to read after the session)."""
    with services.db() as session:
        query = select(Timer).where(Timer.journey_key == lead_id, Timer.level == level)
        if policy is not None:
            query = query.where(Timer.policy == policy)
        timer = session.scalars(query).one()
        session.expunge(timer)
        return timer
