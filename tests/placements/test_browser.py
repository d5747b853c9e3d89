"""The dashboard and the lead tab in a real headless Chromium, inside the emulator's portal
page that frames the app the way Bitrix24 does (hidden form POST into a named iframe, the
b24jssdk parent protocol): what a person sees — figures, a drawn chart, the language — and
that the page asks the portal to fit its frame."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from b24app.storage.models import Journey
from b24app.storage.models import Portal
from b24app.storage.models import Timer
from b24app.storage.models import utc_now
from tests.placements.conftest import crm_items
from tests.plugins.browser import screenshot
from tests.waiting import deadline_seconds

CANVAS_INK = """canvas => {
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < data.length; i += 4) { if (data[i] !== 0) { painted++; } }
  return painted;
}"""


def _seed(services: Any, member_id: str) -> None:
    """Twelve leads over the last days: 5 booked, 4 confirmed, 1 no-show, 2 paid visits."""
    base = utc_now() - dt.timedelta(days=6)
    with services.db() as s:
        portal_id = s.scalar(select(Portal.id).where(Portal.member_id == member_id))
        for i in range(1, 13):
            created = base + dt.timedelta(hours=11 * i)
            s.add(
                Journey(
                    portal_id=portal_id, lead_id=100 + i, created_at=created,
                    source_id=("WEB", "TELEGRAM", "CALL")[i % 3], channel=("chat", "call")[i % 2],
                    utm_campaign="spring" if i % 2 else "", assigned_by_id=1 + i % 3,
                    is_ai=i % 3 == 1, ai_channel="telegram" if i % 3 == 1 else "",
                    first_reply_at=created + dt.timedelta(seconds=40 * i),
                    booking_at=created if i <= 5 else None,
                    confirmed_at=created if i <= 4 else None,
                    no_show_at=created if i == 4 else None,
                    came_at=created if i <= 2 else None,
                    opportunity=Decimal(1500) if i <= 2 else None,
                )
            )  # fmt: skip
        s.add(Timer(portal_id=portal_id, journey_key=112, policy="first_reply", level="remind",
                    due_at=base, state="fired", job_id="b-1", fired_at=base))  # fmt: skip


def _open(page: Any, url: str, selector: str) -> Any:
    page.goto(url)
    frame = page.frame_locator("#app-frame")
    frame.locator(selector).wait_for(timeout=deadline_seconds() * 1000)
    return frame


def _wait_for(predicate: Any) -> bool:
    deadline = time.monotonic() + deadline_seconds()
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.mark.browser
def test_dashboard_in_the_portal_frame_russian(installed_portal, services, page) -> None:
    """CRM analytics → our widget: Russian figures, a chart with ink on it, and fitWindow."""
    _seed(services, installed_portal.member_id)
    frame = _open(page, installed_portal.page_url("placement/CRM_ANALYTICS_MENU"), "#kpi-cards")
    assert frame.locator("#kpi-leads .label").inner_text().casefold() == "входящие заявки"
    assert frame.locator("#kpi-leads .value").inner_text() == "12"
    assert frame.locator("#kpi-confirmed .value").inner_text() == "4"
    assert frame.locator("#kpi-no-show .value").inner_text().replace("\u00a0", " ") == "25,0 %"
    assert "bad" in (frame.locator("#kpi-no-show").get_attribute("class") or "")  # 25 % ≥ 12 %
    assert frame.locator("#kpi-conversion .value").inner_text().replace("\u00a0", " ") == "41,7 %"
    # app.js marks the canvas once Chart.js has drawn: wait for the mark, not for the element.
    canvas = frame.locator("#trend-chart[data-drawn='1']")
    canvas.wait_for(timeout=deadline_seconds() * 1000)
    assert canvas.evaluate(CANVAS_INK) > 500, "the trend chart drew nothing"
    assert frame.locator("#employees tbody tr").count() == 3
    assert _wait_for(
        lambda: any(m["command"] == "resizeWindow" for m in installed_portal.frame_messages)
    )
    screenshot(page, "dashboard-ru")


@pytest.mark.browser
def test_dashboard_in_english_and_period_change(installed_portal, services, page) -> None:
    """LANG=en shows English; a year by week reloads the frame through the session token."""
    _seed(services, installed_portal.member_id)
    frame = _open(
        page, installed_portal.page_url("placement/CRM_ANALYTICS_MENU") + "?lang=en", "#kpi-cards"
    )
    assert frame.locator("#kpi-leads .label").inner_text().casefold() == "incoming leads"
    assert frame.locator("#kpi-no-show .value").inner_text().replace("\u00a0", " ") == "25.0 %"
    screenshot(page, "dashboard-en")
    frame.locator("#period-select").select_option("365d")
    frame.locator("#period-form select[name=view]").select_option("week")
    frame.locator("#period-form button[type=submit]").click()
    frame.locator("#period-select option[value='365d'][selected]").wait_for(
        state="attached", timeout=deadline_seconds() * 1000
    )
    assert frame.locator("#kpi-leads .value").inner_text() == "12"
    assert frame.locator("#trend small").inner_text() == "by week"


@pytest.mark.browser
def test_lead_tab_in_the_lead_card(installed_portal, services, page) -> None:
    """The lead card's tab shows this lead's timeline with the fired SLA timer."""
    _seed(services, installed_portal.member_id)
    crm_items(installed_portal, "lead", 112)
    url = installed_portal.page_url("placement/CRM_LEAD_DETAIL_TAB") + "?ID=112"
    frame = _open(page, url, "#lead-tab")
    assert frame.locator("#lead-tab h2").inner_text() == "Лид №112"
    assert frame.locator("#lead-channel").inner_text() == "Чат"
    assert frame.locator("#lead-timeline li").count() == 3  # created, first reply, reminder fired
    assert "напоминание" in frame.locator("#lead-timers").inner_text()
    screenshot(page, "lead-tab-ru")


LONG_NAME = "Александра-Виктория " + "Длиннофамильная" * 12 + " 🌸"


def _seed_awkward(services: Any, emu_portal: Any) -> int:
    """Employees with no name, a very long non-ASCII name, one deleted from the portal; leads
    with no source, an unknown source and a very long emoji campaign; names refreshed."""
    from b24app import directory

    emu_portal.add_user(7, NAME="", LAST_NAME="")
    emu_portal.add_user(8, NAME=LONG_NAME, LAST_NAME="Ёлкина-Щукина")
    directory.refresh(services, emu_portal.member_id)
    del emu_portal.users[3]  # Олег left after the names were read
    directory.refresh(services, emu_portal.member_id)
    base = utc_now() - dt.timedelta(days=2)
    with services.db() as s:
        portal_id = s.scalar(select(Portal.id).where(Portal.member_id == emu_portal.member_id))
        for i, (user, source, campaign) in enumerate(
            [
                (7, "", ""),
                (8, "9|ВКОНТАКТЕ_БОТ", "🌸" * 60 + " весна"),
                (3, "2|TELEGRAM", ""),
                (None, "", "x" * 255),
                (404, "CALL", ""),  # a user id the portal never had
            ]
        ):
            s.add(Journey(portal_id=portal_id, lead_id=500 + i, created_at=base + dt.timedelta(hours=i),
                       source_id=source, utm_campaign=campaign, assigned_by_id=user,
                       channel="chat", status_id="NEW", stage="new"))  # fmt: skip
        return int(portal_id)


@pytest.mark.browser
def test_awkward_names_show_sensibly(installed_portal, services, page) -> None:
    """No name, a deleted user, a never-seen id, 300-character non-ASCII names, no source:
    the dashboard and the lead tab show something readable — and never a 500."""
    _seed_awkward(services, installed_portal)
    frame = _open(page, installed_portal.page_url("placement/CRM_ANALYTICS_MENU"), "#kpi-cards")
    employees = frame.locator("#employees tbody").inner_text()
    assert "Сотрудник #7" in employees
    assert "Олег Продажин (не работает)" in employees
    assert "Сотрудник #404" in employees
    assert "(не назначен)" in employees
    assert "Длиннофамильная" in employees
    page_text = frame.locator("body").inner_text()
    assert "(не указано)" in page_text  # the leads with no source
    assert "Открытая линия - Telegram" in page_text
    assert "Открытая линия 9 · Вконтакте_Бот" in page_text
    # Long names wrap inside the frame instead of widening it past the viewport.
    width = frame.locator("body").evaluate("b => b.scrollWidth")
    assert width <= 1280, f"the page is {width}px wide"
    screenshot(page, "dashboard-awkward-names")
    crm_items(installed_portal, "lead", 500, 503)
    for lead_id in (500, 503):
        url = installed_portal.page_url("placement/CRM_LEAD_DETAIL_TAB") + f"?ID={lead_id}"
        tab = _open(page, url, "#lead-tab")
        assert tab.locator("#lead-source").inner_text().startswith("(не указано)")
    screenshot(page, "lead-tab-no-source")
