"""Placement fixtures: an emulator portal that trusts the app (API-only install, no HTTP to
the app needed) with its Portal row in our store, and a helper that opens a widget the way
Bitrix24 does — the emulator's own (query, form) payload POSTed to the Flask test client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from b24app.storage.portals import InstallAuth
from b24app.storage.portals import upsert_install
from devportal import Portal as EmuPortal


@dataclass
class Framed:
    """An emulated portal the app knows, and how to open its pages in the test client."""

    emu_portal: EmuPortal
    portal_id: int
    client: Any

    def payload(
        self, placement: str, options: dict[str, Any] | None = None, *, user_id: int = 1,
        lang: str = "ru",
    ) -> tuple[dict[str, str], dict[str, str]]:  # fmt: skip
        return self.emu_portal.frame_payload(user_id, placement, options, lang)

    def open(
        self, path: str, placement: str = "DEFAULT", options: dict[str, Any] | None = None, *,
        user_id: int = 1, lang: str = "ru", form_overrides: dict[str, str] | None = None,
    ) -> Any:  # fmt: skip
        query, form = self.payload(placement, options, user_id=user_id, lang=lang)
        form.update(form_overrides or {})
        return self.client.post(path, query_string=query, data=form)


def crm_items(emu_portal: EmuPortal, entity: str, *ids: int, assigned_by: int = 1) -> None:
    """Leads or deals with these ids in the emulated CRM (no events): a tab shows an item only
    when Bitrix24 lets the viewer read it, so seeded journeys need their items. Ids are taken
    in ascending order, each above the ones before."""
    store = emu_portal.leads if entity == "lead" else emu_portal.deals
    add = emu_portal.add_lead if entity == "lead" else emu_portal.add_deal
    for item_id in sorted(ids):
        if store.get(item_id) is not None:
            continue
        assert item_id >= store.next_id, "ids must be above the ones the emulator has given"
        store.next_id = item_id
        add({"ASSIGNED_BY_ID": assigned_by}, events=False)


def register_portal(services: Any, emu_portal: EmuPortal) -> int:
    """Make the emulated portal known to the app, as the install flow would."""
    emu_portal.prepare_install(None, api_only=True)
    with services.db() as session:
        portal = upsert_install(
            session,
            InstallAuth(
                member_id=emu_portal.member_id,
                domain=emu_portal.domain,
                client_endpoint=emu_portal.client_endpoint,
                server_endpoint=emu_portal.server_endpoint,
                application_token=emu_portal.application_token,
                lang=emu_portal.lang,
                user_id=1,
            ),
        )
        return portal.id


@pytest.fixture
def framed(emulator: Any, services: Any, client: Any) -> Framed:
    emu_portal = emulator.create_portal("salon", lang="ru", time_zone="Europe/Moscow")
    return Framed(emu_portal, register_portal(services, emu_portal), client)
