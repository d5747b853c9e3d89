"""The demo as a new user first sees it: ``b24app-demo`` started as ``./dev demo`` starts it
(tests/plugins/demo.py), then the KPI widget opened in a real headless Chromium inside the
emulated portal. The
appointments block — how many, reminded vs not, by channel, confirmed, no-shows — and the
delivery by channel are filled from the 90 days the demo replays through the app."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.plugins.browser import screenshot
from tests.plugins.demo import DemoRun
from tests.waiting import deadline_seconds

# one demo run for this file and tests/test_demo.py (tests/plugins/demo.py)
pytestmark = pytest.mark.xdist_group("demo")


def _number(text: str) -> float:
    """A figure as the dashboard prints it (``1 234``, ``14,9 %``); ``—`` is no figure."""
    cleaned = re.sub(r"[\s\u00a0\u202f%₽]", "", text).replace(",", ".")
    assert cleaned not in ("", "—"), f"no figure in {text!r}"
    return float(cleaned)


@pytest.mark.browser
def test_demo_dashboard_shows_appointments_reminders_and_outcomes(
    running_demo: DemoRun, page: Any
) -> None:
    """First open of the demo's KPI widget (its default 30 days, then 90): appointments,
    reminded and not reminded, each with a no-show rate, the channels that reminded, the
    delivery by channel — and in 90 days the to-dos of the weeks before the SMS workflow."""
    page.goto(f"{running_demo.emulator_url}/salon/page/placement/CRM_ANALYTICS_MENU")
    frame = page.frame_locator("#app-frame")
    frame.locator("#appointments").wait_for(timeout=deadline_seconds() * 1000)

    def cells(row: str) -> list[str]:
        return frame.locator(f"{row} td").all_inner_texts()

    def check(days: str) -> list[str]:
        total = cells("#appt-total")
        reminded = cells("#appt-reminded")
        not_reminded = cells("#appt-not-reminded")
        assert _number(total[1]) >= 100, (days, total)
        assert 0 < _number(total[2]) <= 100, (days, total)  # confirmed
        assert 0 < _number(total[3]) < 50, (days, total)  # no-shows among known outcomes
        assert _number(reminded[1]) > 0 and _number(not_reminded[1]) > 0, (reminded, not_reminded)
        if days == "90d":  # the proof on screen (30 days hold too few unreminded visits to say)
            assert _number(reminded[3]) < _number(not_reminded[3]), (reminded, not_reminded)
        else:
            assert _number(reminded[3]) >= 0 and _number(not_reminded[3]) >= 0
        rows = " | ".join(frame.locator("#appointments tbody tr").all_inner_texts())
        assert "Чат клиента" in rows and "Бизнес-процесс (SMS)" in rows, rows
        delivery = frame.locator("#appt-delivery tbody tr").all_inner_texts()
        assert len(delivery) >= 2 and not any("Нет данных" in r for r in delivery), delivery
        assert _number(frame.locator("#kpi-no-show .value").inner_text()) > 0
        # the chat's sends in every state: delivered, and not (refused, or fell through)
        chat = cells("#appt-delivery-chat")
        assert _number(chat[2]) > 0 and _number(chat[4]) > 0, chat
        # the SMS workflow reports nothing back: its sends are "delivery unknown"
        workflow = cells("#appt-delivery-workflow")
        assert _number(workflow[1]) > 0 and _number(workflow[5]) > 0, workflow
        return delivery

    def rebooking() -> dict[str, float]:
        return {
            row: _number(cells(f"#appt-{row}")[1])
            for row in ("moved", "cancelled", "refilled", "refill-revenue")
        }

    recent = check("30d")
    assert rebooking()["moved"] > 0, rebooking()
    # the attempts carry the times they were made at: the to-dos are all older than 30 days
    assert not any("Дело менеджеру" in row for row in recent), recent
    screenshot(page, "demo-dashboard-30d")
    frame.locator("#period-select").select_option("90d")
    frame.locator("#period-form button[type=submit]").click()
    frame.locator("#period-select option[value='90d'][selected]").wait_for(
        state="attached", timeout=deadline_seconds() * 1000
    )
    frame.locator("#appointments").wait_for(timeout=deadline_seconds() * 1000)
    delivery = check("90d")
    # the weeks before the SMS workflow: the manager's to-do was all a client without a chat got
    assert any("Дело менеджеру" in row for row in delivery), delivery
    # clients moved and cancelled visits in their chats, and freed times were refilled from
    # the waitlist: the visits that came there earned their price
    moves = rebooking()
    assert all(moves[row] > 0 for row in moves), moves
    assert moves["refilled"] <= moves["cancelled"], moves
    # some re-invited clients answered and were booked again (devportal/demo_replay.py)
    reinvited = frame.locator("#appt-reinvite").inner_text()
    found = re.search(r"записались (\d+) из (\d+)", reinvited)
    assert found, reinvited
    assert 0 < int(found.group(1)) < int(found.group(2)), reinvited
    screenshot(page, "demo-dashboard-90d")


@pytest.mark.browser
def test_demo_lead_tab_shows_where_the_silent_clients_reminder_went(
    running_demo: DemoRun, page: Any
) -> None:
    """The WhatsApp client silent for 3 days: her lead's tab shows the chat refused with the
    reason (the 24 h window closed) and the SMS workflow that carried the message."""
    found = re.search(r"window closed: lead (\d+)", running_demo.printed)
    assert found, running_demo.printed
    page.goto(
        f"{running_demo.emulator_url}/salon/page/placement/CRM_LEAD_DETAIL_TAB?ID={found.group(1)}"
    )
    frame = page.frame_locator("#app-frame")
    table = frame.locator("#lead-appointments")
    table.wait_for(timeout=deadline_seconds() * 1000)
    failed = table.locator("tr.attempt-failed").all_inner_texts()
    sent = table.locator("tr.attempt-ok").all_inner_texts()
    assert len(failed) == 1 and "Чат клиента" in failed[0], failed
    assert "окно мессенджера закрыто" in failed[0], failed
    assert len(sent) == 1 and "Бизнес-процесс (SMS)" in sent[0], sent
    screenshot(page, "demo-lead-tab-whatsapp-window-closed")
