"""Per-portal settings: defaults, partial updates, validation."""

from __future__ import annotations

import pytest
from marshmallow import ValidationError

from b24app.settings import DEFAULTS
from b24app.settings import load_settings
from b24app.settings import save_settings
from b24app.storage.portals import InstallAuth
from b24app.storage.portals import upsert_install


@pytest.fixture
def portal_id(services) -> int:
    with services.db() as session:
        return upsert_install(session, InstallAuth(member_id="m1", domain="x.bitrix24.ru")).id


def test_new_portal_gets_the_defaults(services, portal_id) -> None:
    """Nothing stored: the effective settings are the defaults."""
    with services.db() as session:
        assert load_settings(session, portal_id) == DEFAULTS


def test_partial_update_merges_into_defaults(services, portal_id) -> None:
    """Changing one SLA figure keeps every other default."""
    with services.db() as session:
        save_settings(session, portal_id, {"sla": {"first_reply": {"minutes": 5}}}, user_id=1)
    with services.db() as session:
        effective = load_settings(session, portal_id)
    assert effective["sla"]["first_reply"]["minutes"] == 5
    assert effective["sla"]["first_reply"]["escalate_minutes"] == 30
    assert effective["sla"]["confirmation"] == DEFAULTS["sla"]["confirmation"]


@pytest.mark.parametrize(
    "changes",
    [
        {"time_zone": "Mars/Olympus"},
        {"working_hours": {"mon": ["21:00", "09:00"]}},
        {"working_hours": {"funday": ["09:00", "10:00"]}},
        {"sla": {"first_reply": {"minutes": 30, "escalate_minutes": 10}}},
        {"targets": {"no_show_max_pct": 140}},
        {"unknown_key": 1},
        {"owner_user_id": "boss"},
        # issue 10, item 5: templates are {placeholder}-only, AI rules are bounded
        {"reminders": {"templates": {"default": {"ru": "{client_name:>1500000000}"}}}},
        {"reminders": {"templates": {"default": {"en": "Hello {"}}}},
        {"reminders": {"templates": {"default": {"en": "{client_name.__class__}"}}}},
        {"reminders": {"templates": {"default": {"en": "{client_name[0]}"}}}},
        {"reminders": {"templates": {"default": {"en": "{client_name!r}"}}}},
        {"reminders": {"templates": {"default": {"en": "{phone}"}}}},
        {"ai_rules": {"source_ids": ["*a" * 40]}},
        {"ai_rules": {"source_ids": [f"{n}|X" for n in range(101)]}},
        {"ai_rules": {"markers": [f"m{n}" for n in range(101)]}},
    ],
)
def test_invalid_changes_are_rejected_and_nothing_stored(services, portal_id, changes) -> None:
    """Invalid settings raise and leave the stored document as it was."""
    with pytest.raises(ValidationError), services.db() as session:
        save_settings(session, portal_id, changes)
    with services.db() as session:
        assert load_settings(session, portal_id) == DEFAULTS
