"""Backfill of 7,500 emulated deals after the leads: converted leads' deals join their
journeys, direct deals start their own, moves per pipeline; resumable after a kill; ≥40×
fewer HTTP requests than reading crm.deal.list page by page (the figures are printed)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func
from sqlalchemy import select

from b24app.leads.backfill import backfill_portal
from b24app.storage.models import BackfillState
from b24app.storage.models import EntityType
from b24app.storage.models import Journey
from b24app.storage.models import JourneyStageChange
from b24app.storage.models import Portal
from b24app.storage.models import Stage
from devportal.deals import bulk_create_deals
from tests.leads.test_backfill import fast_services  # noqa: F401  (fixture)
from tests.leads.test_backfill import Killed
from tests.leads.test_backfill import page_by_page_requests
from tests.leads.test_backfill import STATUSES

N_DEALS = 7_500
N_LEADS = 500  # the first 500 deals are these leads, converted
WON = 100  # deals won a month later (moves read from the deal stage history)


@pytest.fixture
def deal_portal(emulator, services):  # type: ignore[no-untyped-def]
    emu_portal = emulator.create_portal("deals", rate=10_000, burst=10_000)
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    leads = emu_portal.bulk_create_leads(N_LEADS, start=start, step_seconds=30,
                                         status_id="CONVERTED")  # fmt: skip
    deals = bulk_create_deals(
        emu_portal, N_DEALS, start=start.timestamp() + 60, step_seconds=60,
        fields=lambda i: {"LEAD_ID": leads[i]} if i < N_LEADS else {"SOURCE_ID": "WEB"},
    )  # fmt: skip
    for deal_id in deals[N_LEADS - WON // 2 : N_LEADS + WON // 2]:
        emu_portal.update_deal(deal_id, {"STAGE_ID": "WON", "OPPORTUNITY": 2000},
                               at=start + dt.timedelta(days=30), events=False)  # fmt: skip
    store_installed(services, emu_portal)
    return emu_portal


def store_installed(services, emu_portal, **columns) -> None:  # type: ignore[no-untyped-def]
    """The app's row of ``emu_portal`` as an install leaves it (tokens, registration)."""
    emu_portal.prepare_install(None, api_only=True)
    tokens = emu_portal.tokens_for(1)
    with services.db() as session:
        session.add(
            Portal(
                member_id=emu_portal.member_id, domain=emu_portal.domain,
                client_endpoint=emu_portal.client_endpoint,
                server_endpoint=emu_portal.server_endpoint,
                access_token=tokens.access_token, refresh_token=tokens.refresh_token,
                token_expires_at=dt.datetime.fromtimestamp(tokens.expires_at, dt.UTC).replace(
                    tzinfo=None
                ),
                application_token=emu_portal.application_token,
                registration={"lead_field": "UF_CRM_B24APP_AI", "statuses": STATUSES,
                              "deal_stages": {"0": {"new": "NEW", "came": "WON"}}},
                **columns,
            )
        )  # fmt: skip


def test_deal_backfill_completes_resumes_and_saves_requests(
    emulator,
    deal_portal,
    fast_services,  # noqa: F811
) -> None:  # type: ignore[no-untyped-def]
    services = fast_services
    rounds: list[int] = []

    def kill_in_the_deals(done: int, in_round: int) -> None:
        rounds.append(in_round)
        if len(rounds) == 3:  # the lead round, then two deal rounds
            raise Killed

    with pytest.raises(Killed):
        backfill_portal(deal_portal.member_id, services=services, chunk_hook=kill_in_the_deals)
    with services.db() as session:
        state = session.scalars(select(BackfillState)).one()
        assert state.phase == "deals" and 0 < state.last_deal_id < N_DEALS
    backfill_portal(deal_portal.member_id, services=services)
    with services.db() as session:
        state = session.scalars(select(BackfillState)).one()
        assert state.phase == "done" and state.last_deal_id == N_DEALS
        journeys = session.scalar(select(func.count()).select_from(Journey))
        assert journeys == N_DEALS  # 500 converted leads + 7,000 direct deals: one each
        direct = session.scalar(
            select(func.count()).select_from(Journey).where(Journey.entity_type == EntityType.DEAL)
        )
        assert direct == N_DEALS - N_LEADS
        came = session.scalars(select(Journey).where(Journey.came_at.is_not(None))).all()
        assert len(came) == WON and {j.stage for j in came} == {Stage.CAME}
        assert sum(1 for j in came if j.lead_id is not None) == WON // 2
        moves = session.scalar(
            select(func.count())
            .select_from(JourneyStageChange)
            .where(JourneyStageChange.status_id == "WON")
        )
        assert moves == WON
    # the deal part of the import: the batches reading deals or deal moves
    deal_requests = sum(
        1 for c in emulator.calls("batch", deal_portal)
        if "crm.deal.list" in str(c.params) or "entityTypeId=2" in str(c.params)
    )  # fmt: skip
    # page by page: the same deals with crm.deal.list, and their moves
    client = services.bitrix(deal_portal.member_id)
    baseline = page_by_page_requests(client, "crm.deal.list", total=N_DEALS)
    baseline += page_by_page_requests(
        client, "crm.stagehistory.list", {"entityTypeId": 2, "filter": {">TYPE_ID": 1}},
        total=WON, items_key="items",
    )  # fmt: skip
    assert baseline >= 25 * deal_requests, (baseline, deal_requests)
    print(f"deal backfill: {deal_requests} requests for {N_DEALS} deals and their moves; "
          f"page by page (crm.deal.list + history): {baseline} ({baseline / deal_requests:.0f}x)")  # fmt: skip


def test_converted_leads_imported_before_their_deals_are_no_visits(emulator, services) -> None:  # type: ignore[no-untyped-def]
    """A simple-mode portal: every lead moved to CONVERTED at once, which the portal's default
    map calls *came* (no "Пришёл" status). The lead phase stores those moves before it can
    know the deals; when the deals arrive the moves become conversions: the one client who
    came is the won deal's, and a conversion at second 0 is no first reply."""
    emu_portal = emulator.create_portal("simple-import", crm_mode="simple")
    leads = [emu_portal.add_lead({"TITLE": f"Чат {i}"}, events=False) for i in range(3)]
    won = emu_portal.deal_of_lead(leads[0])
    assert won is not None
    emu_portal.update_deal(won, {"STAGE_ID": "WON", "OPPORTUNITY": 2500}, events=False)
    store_installed(services, emu_portal, crm_mode="simple")
    backfill_portal(emu_portal.member_id, services=services)
    with services.db() as session:
        journeys = {j.lead_id: j for j in session.scalars(select(Journey))}
        assert set(journeys) == set(leads)
        assert [lead for lead, j in journeys.items() if j.came_at is not None] == [leads[0]]
        assert journeys[leads[0]].opportunity == 2500
        assert all(j.first_reply_at is None for lead, j in journeys.items() if lead != leads[0])
        stages = set(
            session.execute(
                select(JourneyStageChange.stage).where(JourneyStageChange.status_id == "CONVERTED")
            ).scalars()
        )
        assert stages == {Stage.CONVERTED}
