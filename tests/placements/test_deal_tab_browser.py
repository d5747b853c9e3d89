"""The deal card's tab in a real headless Chromium, framed by the emulator's portal page:
a converted lead's journey shown on its deal (its timeline, its SLA timer, where it began)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from b24app.storage.models import Journey
from b24app.storage.models import JourneyStageChange
from b24app.storage.models import Portal
from b24app.storage.models import Timer
from b24app.storage.models import utc_now
from tests.placements.conftest import crm_items
from tests.placements.test_browser import _open
from tests.plugins.browser import screenshot


def _seed(services: Any, member_id: str) -> None:
    """Lead 7, converted into deal 70 (pipeline 0), with a fired first-reply reminder."""
    created = utc_now() - dt.timedelta(hours=3)
    with services.db() as s:
        portal_id = s.scalar(select(Portal.id).where(Portal.member_id == member_id))
        s.add(Journey(portal_id=portal_id, lead_id=7, deal_id=70, contact_id=5, category_id=0,
                   entity_type="lead", status_id="CONVERTED", deal_stage_id="EXECUTING",
                   stage="other", channel="chat", source_id="1|OPENLINE", is_ai=True,
                   ai_channel="openline", created_at=created))  # fmt: skip
        s.add(JourneyStageChange(portal_id=portal_id, journey_key=7, status_id="CONVERTED",
                              stage="converted", changed_at=created + dt.timedelta(minutes=5)))  # fmt: skip
        s.add(Timer(portal_id=portal_id, journey_key=7, policy="first_reply", level="remind",
                    due_at=created, state="fired", job_id="d-1",
                    fired_at=created + dt.timedelta(minutes=3)))  # fmt: skip


@pytest.mark.browser
def test_deal_tab_in_the_deal_card(installed_portal, services, page) -> None:  # type: ignore[no-untyped-def]
    _seed(services, installed_portal.member_id)
    crm_items(installed_portal, "deal", 70)
    url = installed_portal.page_url("placement/CRM_DEAL_DETAIL_TAB") + "?ID=70"
    frame = _open(page, url, "#lead-tab")
    assert frame.locator("#lead-tab h2").inner_text() == "Сделка №70"
    assert frame.locator("#lead-tab").get_attribute("data-entity") == "deal"
    assert frame.locator("#deal-from-lead").inner_text() == "Начало: лид №7"
    assert "EXECUTING" in frame.locator("#lead-stage").inner_text()
    timeline = frame.locator("#lead-timeline").inner_text()
    assert "Сконвертирован в сделку" in timeline
    assert "напоминание" in frame.locator("#lead-timers").inner_text()
    screenshot(page, "deal-tab-ru")
