"""Helpers and fixtures shared by the robot tests."""

from __future__ import annotations

from typing import Any

import pytest

from b24app.storage.models import Portal
from b24app.storage.portals import get_portal


def run(
    portal, emulator, run_jobs, code: str, lead_id: int, props: dict[str, Any] | None = None
) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Run robot ``code`` as an automation rule would and return what the app sent back."""
    token = portal.run_robot(code, lead_id, props or {})
    assert emulator.wait_idle()
    run_jobs("events")
    result = portal.robot_result(token)
    assert result is not None, "the app never called bizproc.event.send"
    return result


def portal_row(services, portal) -> Portal:  # type: ignore[no-untyped-def]
    with services.db() as session:
        row = get_portal(session, portal.member_id)
        assert row is not None
        session.expunge(row)
        return row


@pytest.fixture
def lead_id(installed_portal, emulator, run_jobs) -> int:  # type: ignore[no-untyped-def]
    """A new lead (responsible: manager 2) in the installed portal."""
    new_id = installed_portal.add_lead({"TITLE": "Заявка с сайта", "ASSIGNED_BY_ID": 2})
    assert emulator.wait_idle()
    run_jobs()
    return int(new_id)
