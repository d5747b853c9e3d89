"""KPI fixtures: portals in the store and a compact way to write hand-made lifecycle rows."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from b24app.storage.models import Journey
from b24app.storage.portals import InstallAuth
from b24app.storage.portals import upsert_install


def make_portal(services: Any, member_id: str, **extra: Any) -> int:
    with services.db() as session:
        portal = upsert_install(
            session,
            InstallAuth(
                member_id=member_id,
                domain=f"{member_id}.bitrix24.ru",
                application_token=f"app-token-{member_id}",
                **extra,
            ),
        )
        return portal.id


def lead(portal_id: int, lead_id: int, created: dt.datetime, **fields: Any) -> Journey:
    """A Lead row; ``reply_s`` sets ``first_reply_at`` that many seconds after creation."""
    reply_s = fields.pop("reply_s", None)
    if reply_s is not None:
        fields["first_reply_at"] = created + dt.timedelta(seconds=reply_s)
    if "opportunity" in fields and fields["opportunity"] is not None:
        fields["opportunity"] = Decimal(fields["opportunity"])
    return Journey(portal_id=portal_id, lead_id=lead_id, created_at=created, **fields)


@pytest.fixture
def portal_id(services: Any) -> int:
    return make_portal(services, "kpi-portal-a")
