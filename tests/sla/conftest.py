"""Helpers for SLA tests: a portal row and lead lifecycle rows written straight to the DB."""

from __future__ import annotations

import datetime as dt
from typing import Any

from b24app.context import Services
from b24app.storage.models import Lead
from b24app.storage.models import Portal


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
        session.add(Lead(portal_id=portal_id, lead_id=lead_id, **values))


def update_lead(services: Services, portal_id: int, lead_id: int, **fields: Any) -> None:
    with services.db() as session:
        lead = session.query(Lead).filter_by(portal_id=portal_id, lead_id=lead_id).one()
        for key, value in fields.items():
            setattr(lead, key, value)
