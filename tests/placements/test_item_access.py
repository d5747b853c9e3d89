"""Issue 19: the lead and deal tabs show an item only to a user Bitrix24 lets read it.

The tab asks Bitrix24 (``crm.item.get`` with the viewer's own frame token) once per open; the
emulator answers as a portal whose non-admins read only the items assigned to them unless
granted (devportal/src/devportal/__init__.py).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest

from b24app.storage.models import Journey
from b24app.storage.models import Timer
from tests.placements.conftest import crm_items
from tests.placements.conftest import Framed

CREATED = dt.datetime(2026, 11, 2, 7, 0)


def _journey(framed: Framed, services: Any, *, lead_id: int, deal_id: int | None = None) -> None:
    """Our records of a journey: an AI lead from Telegram with a fired reminder."""
    with services.db() as s:
        s.add(Journey(portal_id=framed.portal_id, lead_id=lead_id, deal_id=deal_id,
                   created_at=CREATED, is_ai=True, ai_channel="telegram", channel="chat",
                   utm_campaign="secret-campaign", stage="new"))  # fmt: skip
        s.add(Timer(portal_id=framed.portal_id, journey_key=lead_id, policy="first_reply",
                    level="remind", due_at=CREATED, state="fired", job_id=f"j{lead_id}",
                    fired_at=CREATED + dt.timedelta(minutes=3)))  # fmt: skip


def _shows_nothing_of_it(response: Any, item_id: int) -> None:
    html = response.get_data(as_text=True)
    assert response.status_code == 403, html
    assert 'id="notice"' in html and "Нет доступа к этому элементу" in html
    for leak in ('id="lead-tab"', "secret-campaign", "telegram", "02.11.2026", str(item_id)):
        assert leak not in html


def _lead_tab(framed: Framed, lead_id: int, user_id: int) -> Any:
    return framed.open("/app/lead-tab", "CRM_LEAD_DETAIL_TAB", {"ID": str(lead_id)},
                       user_id=user_id)  # fmt: skip


def _deal_tab(framed: Framed, deal_id: int, user_id: int) -> Any:
    return framed.open("/app/deal-tab", "CRM_DEAL_DETAIL_TAB", {"ID": str(deal_id)},
                       user_id=user_id)  # fmt: skip


def test_a_lead_tab_shows_the_lead_only_to_whom_bitrix24_lets_read_it(
    framed: Framed, services: Any, emulator: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Lead 4101 is Oleg's (user 3): Maria (user 2) gets a 403 page with nothing of it; Oleg
    and the admin see it. One crm.item.get per open; no token in the logs."""
    crm_items(framed.emu_portal, "lead", 4101, assigned_by=3)
    _journey(framed, services, lead_id=4101)
    before = len(emulator.calls(method="crm.item.get"))
    query, form = framed.payload("CRM_LEAD_DETAIL_TAB", {"ID": "4101"}, user_id=2)
    with caplog.at_level(logging.DEBUG):
        refused = framed.client.post("/app/lead-tab", query_string=query, data=form)
    _shows_nothing_of_it(refused, 4101)
    assert form["AUTH_ID"] not in caplog.text and form["REFRESH_ID"] not in caplog.text
    assert len(emulator.calls(method="crm.item.get")) - before == 1
    for user_id in (3, 1):
        page = _lead_tab(framed, 4101, user_id)
        assert page.status_code == 200 and "secret-campaign" in page.get_data(as_text=True)
    assert len(emulator.calls(method="crm.item.get")) - before == 3
    framed.emu_portal.grant_crm_read(2, "lead")
    assert _lead_tab(framed, 4101, user_id=2).status_code == 200


def test_a_deal_tab_shows_the_deal_only_to_whom_bitrix24_lets_read_it(
    framed: Framed, services: Any
) -> None:
    """Deal 4270 (from lead 4201) is Oleg's: Maria is refused until granted deals; a deal that
    Bitrix24 does not have is refused to the admin too (nothing of our copy shows)."""
    crm_items(framed.emu_portal, "deal", 4270, assigned_by=3)
    _journey(framed, services, lead_id=4201, deal_id=4270)
    _shows_nothing_of_it(_deal_tab(framed, 4270, user_id=2), 4270)
    page = _deal_tab(framed, 4270, user_id=3)
    assert page.status_code == 200 and "secret-campaign" in page.get_data(as_text=True)
    framed.emu_portal.grant_crm_read(2, "deal")
    assert _deal_tab(framed, 4270, user_id=2).status_code == 200
    _journey(framed, services, lead_id=4301, deal_id=4370)  # our copy of a deal deleted since
    _shows_nothing_of_it(_deal_tab(framed, 4370, user_id=1), 4370)


def test_a_tab_that_cannot_be_checked_shows_nothing(
    framed: Framed, services: Any, emulator: Any
) -> None:
    """Bitrix24 fails while asked (500): 503 with nothing of the item, never the data."""
    crm_items(framed.emu_portal, "lead", 4401)
    _journey(framed, services, lead_id=4401)
    emulator.inject_fault("internal_error", portal=framed.emu_portal.slug, method="crm.item.get")
    response = _lead_tab(framed, 4401, user_id=1)
    emulator.faults.clear()
    html = response.get_data(as_text=True)
    assert response.status_code == 503 and 'id="notice"' in html
    assert "secret-campaign" not in html and 'id="lead-tab"' not in html
    assert _lead_tab(framed, 4401, user_id=1).status_code == 200
