"""Erasing a client who never wrote «СТОП» (b24app/consent/privacy.py): the consent goes, an
opt-out of the administrator's stands instead, and nothing more is sent to the client."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from b24app.consent.contact import Contact
from b24app.consent.policy import may_message
from b24app.consent.privacy import erase_client
from b24app.consent.privacy import export_client
from b24app.consent.records import record_consent
from b24app.context import Services
from b24app.storage.models import ConsentRecord


def test_erase_without_a_stop_records_the_administrators_opt_out(
    installed_portal: Any, services: Services, portal_id: int
) -> None:
    """Consent given in the tab, then erased: only an ``admin`` opt-out remains."""
    client = Contact(contact_id=42, chat_id=4242)
    with services.db() as session:
        record_consent(session, portal_id, client, source="tab", text="Согласна", by=1)
        assert may_message(session, portal_id, client, "advertising")
        assert export_client(session, portal_id, client)["consents"][0]["text"] == "Согласна"
        removed = erase_client(session, portal_id, client, by=1)
        assert removed["consents"] == 1
        rows = session.scalars(select(ConsentRecord)).all()
        assert [(r.kind, r.source, r.recorded_by, r.text) for r in rows] == [
            ("opt_out", "admin", 1, ""),
        ]  # fmt: skip
        assert not may_message(session, portal_id, client, "service")
        assert not may_message(session, portal_id, Contact(contact_id=42), "advertising")
