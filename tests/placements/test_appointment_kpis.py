"""The dashboard's no-show tables (the figures: tests/kpi/test_appointments.py)."""

from __future__ import annotations

from typing import Any

from tests.kpi.test_appointments import seed


def test_the_dashboard_shows_the_no_show_tables(framed: Any, services: Any) -> None:
    seed(services, framed.portal_id)
    html = framed.open("/app/dashboard", "CRM_ANALYTICS_MENU", {}).get_data(as_text=True)
    for table in ("confirmed-vs", "by-source", "by-master", "by-weekday", "by-lead-time"):
        assert f'id="appt-{table}"' in html, table
    assert "за 8+ дней" in html and "понедельник" in html and "не подтверждены" in html
    assert 'id="appt-refilled-no-show"' in html and "не пришедшими ранее" in html
