"""Scheduled reports: due in the portal's time zone, sent once through im.notify.system.add
to the emulator over real HTTP, never twice."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy import select

from b24app.kpi import reports
from b24app.settings import DEFAULTS
from b24app.storage.models import ReportRun
from b24app.storage.portals import InstallAuth
from b24app.storage.portals import upsert_install
from tests.kpi.conftest import lead

MONDAY_0930_MSK = dt.datetime(2026, 11, 23, 6, 30)  # naive UTC


@pytest.fixture
def salon(emulator: Any, services: Any) -> tuple[Any, int]:
    """An emulated portal with the app's tokens stored (installer = user 1, the owner)."""
    emu_portal = emulator.create_portal("salon", lang="ru", time_zone="Europe/Moscow")
    emu_portal.prepare_install(None, api_only=True)
    pair = emu_portal.tokens_for(1)
    with services.db() as s:
        portal = upsert_install(
            s,
            InstallAuth(
                member_id=emu_portal.member_id, domain=emu_portal.domain,
                client_endpoint=emu_portal.client_endpoint,
                server_endpoint=emu_portal.server_endpoint, access_token=pair.access_token,
                refresh_token=pair.refresh_token, application_token=emu_portal.application_token,
                lang="ru", user_id=1,
            ),
        )  # fmt: skip
        pid = portal.id
        sunday = dt.datetime(2026, 11, 22, 9, 0)
        tuesday = dt.datetime(2026, 11, 17, 9, 0)
        s.add_all(
            [
                lead(pid, 1, sunday, assigned_by_id=2, source_id="WEB", reply_s=60, confirmed_at=sunday),
                lead(pid, 2, sunday, assigned_by_id=3, source_id="WEB", reply_s=600),
                lead(pid, 3, sunday, assigned_by_id=3, source_id="CALL", is_ai=True),
                lead(pid, 4, tuesday, assigned_by_id=2, source_id="CALL", reply_s=30),
            ]
        )  # fmt: skip
    return emu_portal, pid


def test_schedule_in_the_portal_time_zone() -> None:
    """09:30 Moscow on a Monday: yesterday's daily and last ISO week's weekly are due; 08:30 none."""
    assert MONDAY_0930_MSK.weekday() == 0
    due = reports.due_reports(DEFAULTS, MONDAY_0930_MSK)
    assert [(r.kind, r.key) for r in due] == [("daily", "2026-11-22"), ("weekly", "2026-W47")]
    assert (due[1].period.first_day, due[1].period.last_day) == (
        dt.date(2026, 11, 16),
        dt.date(2026, 11, 22),
    )
    assert reports.due_reports(DEFAULTS, MONDAY_0930_MSK - dt.timedelta(hours=1)) == []
    tuesday = reports.due_reports(DEFAULTS, MONDAY_0930_MSK + dt.timedelta(days=1))
    assert [r.kind for r in tuesday] == ["daily"]
    off = {**DEFAULTS, "reports": {**DEFAULTS["reports"], "enabled": False}}
    assert reports.due_reports(off, MONDAY_0930_MSK) == []


def test_reports_go_out_once(salon, services) -> None:
    """Daily to the owner, weekly to managers 2 and 3, the team table to the owner; a rerun sends nothing."""
    emu_portal, pid = salon
    assert reports.send_due_reports(MONDAY_0930_MSK) == 4
    notes = emu_portal.notifications
    by_user: dict[int, list[str]] = {}
    for note in notes:
        by_user.setdefault(int(note["user_id"]), []).append(note["message"])
    assert sorted(by_user) == [1, 2, 3] and len(by_user[1]) == 2
    daily = next(m for m in by_user[1] if "Сводка" in m)
    assert len(daily.splitlines()) == 6  # title + the 5 lines
    assert "Заявок: 3 (ИИ-лидов: 1)" in daily and "WEB (2)" in daily
    assert "Заявок: 2" in by_user[2][0] and "Заявок: 2" in by_user[3][0]
    assert reports.send_due_reports(MONDAY_0930_MSK + dt.timedelta(minutes=5)) == 0
    assert len(emu_portal.notifications) == 4
    with services.db() as s:
        assert s.scalar(select(func.count()).select_from(ReportRun)) == 4
