"""Install on the deal side: deal events, the deal tab, the deal field, the CRM mode and the
stage map per pipeline — inside the same one read batch + one write batch; ONAPPUPDATE brings
an older install up to date and re-reads the mode."""

from __future__ import annotations

from b24app.install.registration import LEAD_FIELD_NAME
from b24app.storage.portals import get_portal
from devportal.deals import add_pipeline

DEAL_EVENTS = {"ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMDEALDELETE"}


def _stored(services, member_id: str):  # type: ignore[no-untyped-def]
    with services.db() as session:
        portal = get_portal(session, member_id)
        assert portal is not None
        session.expunge(portal)
        return portal


def test_install_binds_deals_and_maps_each_pipeline(
    emulator, live_app, portal, services, run_jobs
) -> None:  # type: ignore[no-untyped-def]
    category = add_pipeline(portal, "Абонементы")
    portal.install()
    run_jobs()
    assert DEAL_EVENTS <= {e["event"] for e in portal.events}
    assert "CRM_DEAL_DETAIL_TAB" in {p["placement"] for p in portal.placements}
    assert LEAD_FIELD_NAME in [uf["FIELD_NAME"] for uf in portal.deal_userfields.values()]
    robot = next(iter(portal.robots.values()))
    assert ["crm", "CCrmDocumentDeal"] in robot["FILTER"]["INCLUDE"]
    stored = _stored(services, portal.member_id)
    assert stored.crm_mode == "classic"
    stages = stored.registration["deal_stages"]
    assert stages["0"] == {"new": "NEW", "came": "WON"}
    assert stages[str(category)] == {"new": f"C{category}:NEW", "came": f"C{category}:WON"}
    # the page and ONAPPINSTALL each register: two read batches, one write batch in all
    batches = [str(c.params.get("cmd")) for c in emulator.calls("batch", portal) if c.ok]
    assert len([b for b in batches if "crm.settings.mode.get" in b]) == 2
    assert len([b for b in batches if "crm.deal.userfield.add" in b]) == 1
    assert all(c.in_batch for c in emulator.calls("crm.deal.userfield.add", portal))


def test_update_adds_deal_registrations_and_rereads_the_mode(
    emulator, installed_portal, services, run_jobs
) -> None:  # type: ignore[no-untyped-def]
    portal = installed_portal
    # An install from before deals: no deal events, no deal tab, no deal field.
    with portal.lock:
        portal.bus.bindings[:] = [e for e in portal.events if e["event"] not in DEAL_EVENTS]
        portal.widgets.placements[:] = [
            p for p in portal.placements if p["placement"] != "CRM_DEAL_DETAIL_TAB"
        ]
        portal.deal_userfields.clear()
    portal.set_crm_mode("simple")
    portal.update_app("2")
    run_jobs()
    assert DEAL_EVENTS <= {e["event"] for e in portal.events}
    assert "CRM_DEAL_DETAIL_TAB" in {p["placement"] for p in portal.placements}
    assert portal.deal_userfields
    assert _stored(services, portal.member_id).crm_mode == "simple"


def test_missing_deal_stages_are_added_only_when_the_admin_allows(
    emulator, installed_portal, services, run_jobs
) -> None:  # type: ignore[no-untyped-def]
    from b24app.settings import save_settings

    portal = installed_portal
    entities = {c.params["fields"]["ENTITY_ID"] for c in emulator.calls("crm.status.add", portal)}
    assert not {e for e in entities if e.startswith("DEAL_STAGE")}  # not allowed: nothing added
    stored = _stored(services, portal.member_id)
    with services.db() as session:
        save_settings(session, stored.id, {"deal_stages_add_missing": True})
    portal.update_app("2")
    run_jobs()
    stages = {
        r["STATUS_ID"]: portal.status_semantics("DEAL_STAGE", r["STATUS_ID"])
        for r in portal.statuses.values()
        if r["ENTITY_ID"] == "DEAL_STAGE"
    }
    assert stages["B24APP_NO_SHOW"] == "F" and stages["B24APP_CAME"] is None
    mapping = _stored(services, portal.member_id).registration["deal_stages"]["0"]
    assert mapping["came"] == "B24APP_CAME" and mapping["no_show"] == "B24APP_NO_SHOW"
    # a second run adds nothing more
    before = len(emulator.calls("crm.status.add", portal))
    portal.update_app("3")
    run_jobs()
    assert len(emulator.calls("crm.status.add", portal)) == before
