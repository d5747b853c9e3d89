"""The deal tab and the CRM mode on the dashboard, over real HTTP from the emulator."""

from __future__ import annotations

from sqlalchemy import update

from b24app.storage.models import Portal


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
    page = installed_portal.open_placement("CRM_DEAL_DETAIL_TAB", {"ID": "99"})
    assert (
        page.status_code == 200 and "Сделка №99" in page.text and 'id="lead-missing"' in page.text
    )
    bad = installed_portal.open_placement("CRM_DEAL_DETAIL_TAB", {"ID": "x"})
    assert bad.status_code == 400 and bad.json()["code"] == 400
