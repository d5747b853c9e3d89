"""Deals end to end through the emulator: a converted lead's journey goes on on its deal (one
record), a direct deal starts its own, stages map per pipeline, a won deal is a visit with its
revenue, simple mode converts every lead at once and the app follows."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import update

from b24app.context import Services
from b24app.leads.journeys import find_journey
from b24app.storage.db import rows_affected
from b24app.storage.models import EntityType
from b24app.storage.models import Journey
from b24app.storage.models import JourneyStageChange
from b24app.storage.models import Stage
from devportal import DevPortal
from devportal.deals import add_pipeline
from tests.leads.test_intake import db_portal


@pytest.fixture
def settle(emulator: DevPortal, run_jobs: Callable[..., None]) -> Callable[[], None]:
    def run() -> None:
        for _ in range(3):
            assert emulator.wait_idle()
            run_jobs("events")

    return run


def journey(services: Services, portal_id: int, **key: int) -> Journey:
    with services.db() as session:
        row = find_journey(session, portal_id, **key)
        assert row is not None, f"no journey for {key}"
        session.expunge(row)
        return row


def journeys(services: Services, portal_id: int) -> int:
    with services.db() as session:
        return int(session.scalar(select(func.count()).where(Journey.portal_id == portal_id)) or 0)


def test_converted_lead_is_one_journey_on_its_deal(installed_portal, services, settle) -> None:  # type: ignore[no-untyped-def]
    portal = installed_portal
    pid = db_portal(services, portal).id
    lead_id = portal.add_lead({"TITLE": "Анна", "SOURCE_ID": "CALL", "UTM_CAMPAIGN": "spring"})
    settle()
    deal_id = portal.convert_lead(lead_id)
    settle()
    row = journey(services, pid, lead_id=lead_id)
    assert row.deal_id == deal_id and row.contact_id and row.entity_type == EntityType.LEAD
    assert row.status_id == "CONVERTED" and row.deal_stage_id == "NEW"
    # conversion is neither a reply nor a visit
    assert row.first_reply_at is None and row.came_at is None
    assert row.utm_campaign == "spring"
    portal.update_deal(deal_id, {"STAGE_ID": "EXECUTING"}, by_user=2)
    settle()
    row = journey(services, pid, deal_id=deal_id)
    assert row.first_reply_kind == "status" and row.first_reply_at is not None
    portal.update_deal(deal_id, {"STAGE_ID": "WON", "OPPORTUNITY": 3500})
    settle()
    row = journey(services, pid, deal_id=deal_id)
    assert row.stage == Stage.CAME and row.came_at is not None
    assert row.opportunity == Decimal("3500.00")
    assert journeys(services, pid) == 1


def test_a_conversion_stored_as_a_visit_is_settled_by_the_deal(
    installed_portal, services, settle
) -> None:  # type: ignore[no-untyped-def]
    """The lead's move to CONVERTED reached the store as *came* (the install's lead backfill
    reads leads before deals and cannot tell); the deal's next event makes it a conversion."""
    portal = installed_portal
    pid = db_portal(services, portal).id
    lead_id = portal.add_lead({"TITLE": "Анна", "SOURCE_ID": "CALL"})
    settle()
    deal_id = portal.convert_lead(lead_id)
    settle()
    with services.db() as session:
        moved = session.execute(
            update(JourneyStageChange)
            .where(
                JourneyStageChange.journey_key == lead_id,
                JourneyStageChange.status_id == "CONVERTED",
            )
            .values(stage=Stage.CAME)
        )
        assert rows_affected(moved) == 1
        row = find_journey(session, pid, lead_id=lead_id)
        assert row is not None
        row.came_at = row.created_at
    portal.update_deal(deal_id, {"STAGE_ID": "EXECUTING"}, by_user=2)
    settle()
    row = journey(services, pid, lead_id=lead_id)
    assert row.came_at is None and row.deal_stage_id == "EXECUTING"
    portal.update_deal(deal_id, {"STAGE_ID": "WON"}, by_user=2)
    settle()
    assert journey(services, pid, lead_id=lead_id).came_at is not None


def test_direct_deal_starts_its_own_journey(installed_portal, services, settle) -> None:  # type: ignore[no-untyped-def]
    portal = installed_portal
    pid = db_portal(services, portal).id
    deal_id = portal.add_deal({"TITLE": "Запись", "SOURCE_ID": "WEB", "OPPORTUNITY": 900})
    settle()
    row = journey(services, pid, deal_id=deal_id)
    assert row.lead_id is None and row.entity_type == EntityType.DEAL and row.stage == Stage.NEW
    portal.update_deal(deal_id, {"STAGE_ID": "LOSE"})
    settle()
    assert journey(services, pid, deal_id=deal_id).stage == Stage.JUNK
    portal.delete_deal(deal_id)
    settle()
    assert journey(services, pid, deal_id=deal_id).deleted_at is not None


def test_a_later_pipeline_gets_its_default_map(installed_portal, services, settle) -> None:  # type: ignore[no-untyped-def]
    portal = installed_portal
    pid = db_portal(services, portal).id
    category = add_pipeline(portal, "Абонементы")
    deal_id = portal.add_deal({"TITLE": "Абонемент", "CATEGORY_ID": category})
    settle()
    portal.update_deal(deal_id, {"STAGE_ID": f"C{category}:WON"})
    settle()
    row = journey(services, pid, deal_id=deal_id)
    assert row.category_id == category and row.stage == Stage.CAME
    stages = db_portal(services, portal).registration["deal_stages"]
    assert stages[str(category)]["came"] == f"C{category}:WON"


def test_simple_mode_every_lead_is_a_deal_journey(
    emulator, live_app, portal, services, run_jobs, settle
) -> None:  # type: ignore[no-untyped-def]
    portal.set_crm_mode("simple")
    portal.install()
    run_jobs()
    stored = db_portal(services, portal)
    assert stored.crm_mode == "simple"
    lead_id = portal.add_lead({"TITLE": "Чат", "SOURCE_ID": "2|TELEGRAM", "UTM_SOURCE": "ai_bot"})
    settle()
    deal_id = portal.deal_of_lead(lead_id)
    assert deal_id is not None
    row = journey(services, stored.id, lead_id=lead_id)
    assert row.deal_id == deal_id and row.is_ai and row.first_reply_at is None
    assert journeys(services, stored.id) == 1
    # the AI tag went on the deal, where the manager works
    assert portal.deal(deal_id)["UF_CRM_B24APP_AI"]  # type: ignore[index]
    portal.update_deal(deal_id, {"STAGE_ID": "PREPARATION"}, by_user=2)
    settle()
    assert journey(services, stored.id, deal_id=deal_id).first_reply_kind == "status"


def test_mode_switch_is_noticed_when_a_lead_arrives_converted(
    installed_portal, services, settle
) -> None:  # type: ignore[no-untyped-def]
    portal = installed_portal
    assert db_portal(services, portal).crm_mode == "classic"
    portal.set_crm_mode("simple")
    emulator = portal.emu
    emulator.delivery.hold()
    portal.add_lead({"TITLE": "Звонок"})
    # the deal's event first: it starts the journey, the lead's event still counts as the
    # lead's first sight
    assert emulator.delivery.release(order="reverse") == 3
    settle()
    assert db_portal(services, portal).crm_mode == "simple"


def test_switch_back_to_classic_is_noticed(
    emulator, live_app, portal, services, run_jobs, settle
) -> None:  # type: ignore[no-untyped-def]
    portal.set_crm_mode("simple")
    portal.install()
    run_jobs()
    assert db_portal(services, portal).crm_mode == "simple"
    mode_calls = len(emulator.calls("crm.settings.mode.get", portal))
    portal.add_lead({"TITLE": "Ещё один чат"})
    settle()
    # a converted lead on a simple portal is expected: no extra read
    assert len(emulator.calls("crm.settings.mode.get", portal)) == mode_calls
    portal.set_crm_mode("classic")
    portal.add_lead({"TITLE": "Звонок"})
    settle()
    assert db_portal(services, portal).crm_mode == "classic"


def test_daily_cron_rereads_every_portals_mode(installed_portal, services) -> None:  # type: ignore[no-untyped-def]
    from b24app.leads.pipelines import refresh_all_crm_modes

    installed_portal.set_crm_mode("simple")
    assert refresh_all_crm_modes() == 1
    assert db_portal(services, installed_portal).crm_mode == "simple"
    assert refresh_all_crm_modes() == 0
