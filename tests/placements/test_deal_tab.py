"""The deal tab and the CRM mode on the dashboard, over real HTTP from the emulator."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy import update

from b24app.storage.models import Portal
from tests.placements.conftest import crm_items


def test_dashboard_says_which_crm_mode(installed_portal, services) -> None:  # type: ignore[no-untyped-def]
    page = installed_portal.open_placement("CRM_ANALYTICS_MENU")
    assert page.status_code == 200 and 'data-mode="classic"' in page.text
    assert "Режим CRM: классический" in page.text
    with services.db() as session:
        session.execute(
            update(Portal)
            .where(Portal.member_id == installed_portal.member_id)
            .values(crm_mode="simple")
        )
    page = installed_portal.open_placement("CRM_ANALYTICS_MENU")
    assert 'data-mode="simple"' in page.text


def test_deal_tab_of_an_unknown_deal_and_bad_options(installed_portal) -> None:  # type: ignore[no-untyped-def]
    """A deal Bitrix24 has but our journal does not: the tab says so."""
    crm_items(installed_portal, "deal", 99)
    page = installed_portal.open_placement("CRM_DEAL_DETAIL_TAB", {"ID": "99"})
    assert (
        page.status_code == 200 and "Сделка №99" in page.text and 'id="lead-missing"' in page.text
    )
    bad = installed_portal.open_placement("CRM_DEAL_DETAIL_TAB", {"ID": "x"})
    assert bad.status_code == 400 and bad.json()["code"] == 400


def test_admin_maps_deal_stages_per_pipeline(
    installed_portal, services, emulator, run_jobs
) -> None:  # type: ignore[no-untyped-def]
    """The settings page lists each pipeline's stages; the admin's choice overrides the
    default map and the next deal move is recorded with it."""
    import re

    import requests

    from b24app.leads.journeys import find_journey
    from b24app.settings import load_settings
    from b24app.storage.models import Stage
    from tests.placements.test_views import _settings_form

    page = installed_portal.open_app("/app/settings")
    html = page.text
    assert 'id="deal-stages"' in html and 'name="deal_stage_0_came"' in html
    assert "по умолчанию: WON" in html
    token = re.search(r'name="t" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    form = _settings_form(
        token, deal_stage_0_qualified="", deal_stage_0_confirmed="PREPAYMENT_INVOICE",
        deal_stage_0_came="EXECUTING", deal_stage_0_no_show="none",
    )  # fmt: skip
    saved = requests.post(emulator.app_url("/app/settings"), data=form, timeout=10)
    assert saved.status_code == 200 and 'id="settings-saved"' in saved.text
    with services.db() as session:
        portal_id = session.scalar(
            select(Portal.id).where(Portal.member_id == installed_portal.member_id)
        )
        stored = load_settings(session, portal_id)["deal_stage_map"]["0"]
    assert stored == {"qualified": "default", "confirmed": "PREPAYMENT_INVOICE",
                      "came": "EXECUTING", "no_show": "none"}  # fmt: skip
    deal_id = installed_portal.add_deal({"TITLE": "Маникюр"})
    installed_portal.update_deal(deal_id, {"STAGE_ID": "EXECUTING"})
    for _ in range(3):
        assert emulator.wait_idle()
        run_jobs("events")
    with services.db() as session:
        journey = find_journey(session, portal_id, deal_id=deal_id)
        assert journey is not None and journey.stage == Stage.CAME and journey.came_at


def test_deal_tab_names_the_deal_stage_as_the_portal_does(
    installed_portal, services, emulator, run_jobs
) -> None:  # type: ignore[no-untyped-def]
    """The deal's stage by the portal's name (``crm.status.list`` DEAL_STAGE / DEAL_STAGE_N,
    refreshed into the directory), not our stage with the code."""
    from b24app import directory
    from devportal.deals import add_pipeline

    pipeline = add_pipeline(installed_portal, "Салон на Ленина")
    deal_id = installed_portal.add_deal({"TITLE": "Стрижка"})
    installed_portal.update_deal(deal_id, {"STAGE_ID": "PREPAYMENT_INVOICE"})
    for _ in range(3):
        assert emulator.wait_idle()
        run_jobs("events")
    page = installed_portal.open_placement("CRM_DEAL_DETAIL_TAB", {"ID": str(deal_id)})
    assert "(PREPAYMENT_INVOICE)" in page.text  # names not loaded yet: the code shows
    directory.refresh(services, installed_portal.member_id)
    page = installed_portal.open_placement("CRM_DEAL_DETAIL_TAB", {"ID": str(deal_id)})
    assert page.status_code == 200
    assert '<dd id="lead-stage">Счёт на предоплату</dd>' in page.text
    assert "(PREPAYMENT_INVOICE)" not in page.text
    with services.db() as session:
        portal_id = session.scalar(
            select(Portal.id).where(Portal.member_id == installed_portal.member_id)
        )
        names = directory.load_names(session, portal_id, "ru")
    assert names.deal_stage(f"C{pipeline}:NEW") == "Новая"
    assert names.deal_stage("NOPE") is None
    assert names.status("NEW") == "Не обработан"  # lead statuses apart from deal stages
