"""tag_ai_lead writes the field and one comment once, and can be retried after a failure."""

from __future__ import annotations

import pytest

from b24app.bitrix.errors import BitrixError
from b24app.leads.lifecycle import get_lead
from b24app.leads.tagging import tag_ai_lead
from b24app.storage.portals import get_portal


def _portal_id(services, emu_portal) -> int:  # type: ignore[no-untyped-def]
    with services.db() as session:
        portal = get_portal(session, emu_portal.member_id)
        assert portal is not None
        return portal.id


def test_tag_once_even_for_a_lead_not_seen_yet(emulator, installed_portal, services) -> None:  # type: ignore[no-untyped-def]
    """The robot's call on a lead the app has not recorded: fetched, tagged; again → False."""
    portal_id = _portal_id(services, installed_portal)
    lead_id = installed_portal.add_lead({"SOURCE_ID": "CALL"}, events=False)
    assert tag_ai_lead(services, portal_id, lead_id, "whatsapp", "через бота") is True
    assert tag_ai_lead(services, portal_id, lead_id, "whatsapp") is False
    crm = installed_portal.lead(lead_id)
    assert crm is not None and crm["UF_CRM_B24APP_AI"] == "AI-lead · WhatsApp"
    notes = [c for c in installed_portal.timeline_comments if c["ENTITY_ID"] == lead_id]
    assert (
        len(notes) == 1
        and "WhatsApp" in notes[0]["COMMENT"]
        and "через бота" in notes[0]["COMMENT"]
    )
    with services.db() as session:
        lead = get_lead(session, portal_id, lead_id)
        assert lead is not None and lead.is_ai and lead.ai_channel == "whatsapp"


def test_failed_write_can_be_retried(emulator, installed_portal, services) -> None:  # type: ignore[no-untyped-def]
    """The comment is refused: the error is raised, the lead stays untagged, a retry tags it."""
    portal_id = _portal_id(services, installed_portal)
    lead_id = installed_portal.add_lead({"SOURCE_ID": "CALL"}, events=False)
    emulator.inject_fault(
        "internal_error", method="crm.timeline.comment.add", count=1, portal=installed_portal
    )
    with pytest.raises(BitrixError):
        tag_ai_lead(services, portal_id, lead_id, "telegram")
    with services.db() as session:
        lead = get_lead(session, portal_id, lead_id)
        assert lead is not None and lead.ai_tagged_at is None
    assert tag_ai_lead(services, portal_id, lead_id, "telegram") is True
    notes = [c for c in installed_portal.timeline_comments if c["ENTITY_ID"] == lead_id]
    assert len(notes) == 1
