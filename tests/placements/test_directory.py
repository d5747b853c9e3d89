"""The portal's own names for sources, stages and employees: refreshed by a job in one batch
request, read by pages with no REST call."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from sqlalchemy import select

from b24app import directory
from b24app.kpi.reports import team_message
from b24app.storage.models import DirectoryEntry
from b24app.storage.models import Journey
from b24app.storage.models import JourneyStageChange
from b24app.storage.portals import InstallAuth
from b24app.storage.portals import upsert_install
from tests.placements.conftest import crm_items


@pytest.fixture
def framed(framed: Any, services: Any) -> Any:
    """The framed portal, with the tokens the install would have stored (jobs call REST)."""
    pair = framed.emu_portal.tokens_for(1)
    with services.db() as session:
        upsert_install(
            session,
            InstallAuth(
                member_id=framed.emu_portal.member_id,
                access_token=pair.access_token,
                refresh_token=pair.refresh_token,
            ),
        )
    return framed


def _names(services: Any, portal_id: int, lang: str = "ru") -> directory.Names:
    with services.db() as session:
        return directory.load_names(session, portal_id, lang)


def test_refresh_stores_the_portals_names_in_one_request(framed, services, emulator) -> None:
    """Sources (open lines included), statuses and users: one batch; then the fallbacks."""
    framed.emu_portal.add_user(7, NAME="", LAST_NAME="")  # an employee with no name
    framed.emu_portal.add_user(8, NAME="Зинаида-Александра", LAST_NAME="Х" * 300)
    before = emulator.http_requests(framed.emu_portal)
    assert directory.refresh(services, framed.emu_portal.member_id) > 20
    assert emulator.http_requests(framed.emu_portal) - before == 1
    names = _names(services, framed.portal_id)
    assert names.source("CALL") == "Звонок"
    assert names.source("2|TELEGRAM") == "Открытая линия - Telegram"
    assert names.source("5|WHATSAPP") == "Открытая линия 5 · Whatsapp"  # not in the portal
    assert names.source("MY_OWN") == "MY_OWN"
    assert names.source("") == ""
    assert names.status("IN_PROCESS") == "В работе"
    assert names.status("NOPE") is None
    assert names.user(2) == "Мария Менеджерова"
    assert names.user(7) == "Сотрудник #7"
    assert names.user(8).startswith("Зинаида-Александра ХХХ") and len(names.user(8)) == 255
    assert names.user(99) == "Сотрудник #99"
    assert names.user(None) == "(не назначен)"
    assert _names(services, framed.portal_id, "en").user(99) == "Employee #99"


def test_a_user_who_left_keeps_the_name_marked(framed, services) -> None:
    directory.refresh(services, framed.emu_portal.member_id)
    del framed.emu_portal.users[3]  # deleted from the portal
    directory.refresh(services, framed.emu_portal.member_id)
    names = _names(services, framed.portal_id)
    assert names.user(3) == "Олег Продажин (не работает)"
    assert "[USER=3]Олег Продажин (не работает)[/USER]" in team_message(
        [{"manager": 3, "leads": 1, "conversion_pct": None, "sla_pct": None, "revenue": 0}],
        "2026-W47",
        "ru",
        names,
    )


def test_dashboard_reads_names_and_never_calls_bitrix24(framed, services, emulator) -> None:
    """Empty directory: the page answers from the store and only queues the refresh; with
    the directory filled, the page shows names."""
    with services.db() as s:
        s.add(Journey(portal_id=framed.portal_id, lead_id=1, created_at=dt.datetime.now(dt.UTC)
                   .replace(tzinfo=None), source_id="2|TELEGRAM", assigned_by_id=2))  # fmt: skip
    before = emulator.http_requests(framed.emu_portal)
    page = framed.open("/app/dashboard", "CRM_ANALYTICS_MENU").get_data(as_text=True)
    rest = [c.method for c in emulator.calls(portal=framed.emu_portal)][before:]
    assert not [m for m in rest if m not in ("app.info", "user.admin")]  # the trust check only
    assert "Сотрудник #2" in page
    job = services.queue("default").fetch_job(f"directory-{framed.portal_id}")
    assert job is not None and job.func_name == "b24app.directory.refresh_directory"
    directory.refresh(services, framed.emu_portal.member_id)
    page = framed.open("/app/dashboard", "CRM_ANALYTICS_MENU").get_data(as_text=True)
    assert "Мария Менеджерова" in page and "Открытая линия - Telegram" in page
    assert ">2|TELEGRAM<" not in page  # the code only in the tooltip


def _csv(framed: Any, token: str, table: str) -> list[list[str]]:
    response = framed.client.post(f"/app/export/{table}.csv", data={"t": token, "period": "7d"})
    assert response.status_code == 200
    return [
        line.split(";") for line in response.get_data(as_text=True).lstrip("\ufeff").splitlines()
    ]


def test_csv_exports_name_sources_channels_and_employees_as_the_page_does(framed, services):
    """The CSV of a table shows the page's names, the code in the next column."""
    directory.refresh(services, framed.emu_portal.member_id)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=1)
    with services.db() as s:
        for i, (source, user) in enumerate((("2|TELEGRAM", 2), ("CALL", 2), ("", None)), 1):
            s.add(Journey(portal_id=framed.portal_id, lead_id=i, created_at=now, source_id=source,
                       channel="chat", assigned_by_id=user, utm_campaign=""))  # fmt: skip
    page = framed.open("/app/dashboard", "CRM_ANALYTICS_MENU")
    token = re.search(r'name="t" value="([^"]+)"', page.get_data(as_text=True))
    assert token is not None
    sources = _csv(framed, token.group(1), "sources")
    assert sources[0][:2] == ["Источник", "Код"]
    assert sorted(tuple(r[:3]) for r in sources[1:]) == [
        ("(не указано)", "", "1"), ("Звонок", "CALL", "1"),
        ("Открытая линия - Telegram", "2|TELEGRAM", "1"),
    ]  # fmt: skip
    employees = _csv(framed, token.group(1), "employees")
    assert employees[0][:2] == ["Сотрудник", "ID сотрудника"]
    assert [r[:3] for r in employees[1:]] == [
        ["Мария Менеджерова", "2", "2"], ["(не назначен)", "", "1"],
    ]  # fmt: skip
    channels = _csv(framed, token.group(1), "channels")
    assert [r[:2] for r in channels[1:]] == [["Чат", "3"]]
    campaigns = _csv(framed, token.group(1), "campaigns")
    assert [r[:2] for r in campaigns[1:]] == [["(не указано)", "3"]]


def test_lead_tab_orders_the_stage_history_and_names_stages(framed, services) -> None:
    """NEW and IN_PROCESS in the same second, stored in reverse: New comes first, by the
    portal's status names."""
    directory.refresh(services, framed.emu_portal.member_id)
    crm_items(framed.emu_portal, "lead", 5)
    created = dt.datetime(2026, 11, 2, 7, 0)
    with services.db() as s:
        s.add(Journey(portal_id=framed.portal_id, lead_id=5, created_at=created,
                   status_id="IN_PROCESS", stage="other", source_id="CALL"))  # fmt: skip
        for status, stage in (("IN_PROCESS", "other"), ("NEW", "new")):
            s.add(JourneyStageChange(portal_id=framed.portal_id, journey_key=5, status_id=status,
                                  stage=stage, changed_at=created))  # fmt: skip
    html = framed.open("/app/lead-tab", "CRM_LEAD_DETAIL_TAB", {"ID": "5"}).get_data(as_text=True)
    assert html.index("Не обработан") < html.index("В работе</span>")
    assert '<dd id="lead-stage">В работе</dd>' in html
    assert '<dd id="lead-source">Звонок' in html
    assert "(IN_PROCESS)" not in html


def test_store_is_idempotent(framed, services) -> None:
    directory.refresh(services, framed.emu_portal.member_id)
    with services.db() as s:
        first = s.scalar(select(DirectoryEntry.id).order_by(DirectoryEntry.id.desc()))
    directory.refresh(services, framed.emu_portal.member_id)
    with services.db() as s:
        assert s.scalar(select(DirectoryEntry.id).order_by(DirectoryEntry.id.desc())) == first
