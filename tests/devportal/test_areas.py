"""A portal is the registry of its areas, each owning its state (docs/emulator.md, "Layout"):
what a REST method or a person's action changes lands in the area that owns it, and the
short names tests call on a portal are that area's own methods and state."""

from __future__ import annotations

import time

import pytest

from devportal import Portal
from tests.devportal.conftest import Rest

SHORT_NAMES = {
    "people": ["add_user", "is_admin", "grant_crm_read", "may_read"],
    "app": ["install", "prepare_install", "finish_install", "update_app", "uninstall"],
    "crm": ["add_lead", "update_lead", "lead", "add_deal", "convert_lead", "add_contact"],
    "booking": ["add_booking", "move_booking", "delete_booking"],
    "chats": ["open_chat", "client_writes", "operator_writes", "chat_messages"],
    "bizproc": ["run_robot", "robot_result", "expire_event_token"],
    "widgets": ["open_placement", "open_app", "frame_payload"],
}


def test_short_names_are_the_areas_own(installed: Portal) -> None:
    for area, names in SHORT_NAMES.items():
        owner = getattr(installed, area)
        for name in names:
            assert getattr(installed, name).__self__ is owner, (area, name)
    assert installed.event_deliveries.__self__ is installed.bus
    assert installed.leads is installed.crm.leads and installed.events is installed.bus.bindings
    assert installed.openlines is installed.chats.lines
    assert installed.application_token == installed.app.application_token != ""
    with pytest.raises(AttributeError, match="portal.bus.held"):
        installed.events_held = True  # type: ignore[attr-defined]


def test_rest_and_actions_change_the_area_that_owns_the_state(
    installed: Portal, rest: Rest
) -> None:
    handler = installed.emu.app_url("/handlers/crm")
    assert rest("event.bind", event="ONCRMLEADADD", handler=handler).json()["result"]
    assert any(b["handler"] == handler for b in installed.bus.bindings)
    assert rest("app.option.set", options={"mode": "on"}).json()["result"]
    assert installed.app.options == {"mode": "on"}
    lead_id = installed.add_lead({"TITLE": "Стрижка"})
    assert installed.crm.leads.get(lead_id)["TITLE"] == "Стрижка"
    assert rest("crm.lead.get", id=lead_id).json()["result"]["TITLE"] == "Стрижка"
    chat = installed.open_chat([("lead", lead_id)])
    installed.client_writes(chat.id, "1")
    assert [m.text for m in installed.chats.lines.chats[chat.id].messages] == ["1"]
    booking_id = installed.add_booking(time.time() + 3600, contact_id=7)
    assert installed.booking.clients[booking_id][0]["id"] == 7
    installed.uninstall()
    assert not installed.app.installed and installed.bus.bindings == []
    assert installed.app.options == {}  # clean uninstall
