"""Backfill of 20,000 emulated leads: complete, resumable after a kill, and ≥40× fewer HTTP
requests than reading crm.lead.list page by page."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy import select

from b24app.bitrix.client import BitrixClient
from b24app.context import Services
from b24app.leads.backfill import backfill_portal
from b24app.storage.models import BackfillState
from b24app.storage.models import Journey
from b24app.storage.models import JourneyStageChange
from b24app.storage.models import Portal
from b24app.storage.models import Stage
from devportal import DevPortal

N_LEADS = 20_000
MOVED = 120  # leads moved to "qualified" after creation (3 history pages of moves)
STATUSES = {"new": "NEW", "qualified": "IN_PROCESS", "confirmed": "PROCESSED",
            "came": "CONVERTED", "no_show": "JUNK"}  # fmt: skip


class Killed(RuntimeError):
    """Stands in for the process being killed between two rounds."""


@pytest.fixture
def fast_services(services: Services) -> Services:
    """The services with a client rate limit that does not slow 400 baseline pages down."""
    fast = dataclasses.replace(services.settings, rest_rate=10_000.0, rest_burst=10_000)
    return dataclasses.replace(services, settings=fast)


@pytest.fixture
def big_portal(emulator: DevPortal, services: Services):  # type: ignore[no-untyped-def]
    """An emulated portal with 20,000 leads (every 7th from Telegram), stored as installed."""
    emu_portal = emulator.create_portal("big", rate=10_000, burst=10_000)
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    ids = emu_portal.bulk_create_leads(
        N_LEADS,
        source_id=lambda i: "2|TELEGRAM" if i % 7 == 0 else "CALL",
        assigned_by_id=lambda i: 2 + i % 3,
        start=start,
        step_seconds=60,
    )
    for lead_id in ids[:MOVED]:
        emu_portal.update_lead(
            lead_id, {"STATUS_ID": "IN_PROCESS"}, at=start + dt.timedelta(days=30), events=False
        )
    emu_portal.prepare_install(None, api_only=True)  # installed, no event handlers bound
    tokens = emu_portal.tokens_for(1)
    with services.db() as session:
        row = Portal(
            member_id=emu_portal.member_id,
            domain=emu_portal.domain,
            client_endpoint=emu_portal.client_endpoint,
            server_endpoint=emu_portal.server_endpoint,
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            token_expires_at=dt.datetime.fromtimestamp(tokens.expires_at, dt.UTC).replace(
                tzinfo=None
            ),
            application_token=emu_portal.application_token,
            registration={"lead_field": "UF_CRM_B24APP_AI", "statuses": STATUSES},
        )
        session.add(row)
    return emu_portal


def page_by_page_requests(
    client: BitrixClient, method: str, params: dict[str, Any] | None = None, *, total: int,
    items_key: str | None = None,
) -> int:  # fmt: skip
    """The requests ``client.list_all`` sends for the ``total`` rows of ``method``: one a
    page. The first page says the page size and the total, so the others are not sent."""
    first = client.call_raw(method, {**(params or {}), "start": 0})
    rows = first["result"][items_key] if items_key else first["result"]
    assert first["total"] == total and first["next"] == len(rows)
    return -(-total // len(rows))


def test_backfill_completes_resumes_and_saves_requests(emulator, big_portal, fast_services) -> None:  # type: ignore[no-untyped-def]
    """Killed after 4 rounds, resumed: all leads and moves imported once; the whole import
    takes ≥40× fewer HTTP requests than page-by-page crm.lead.list."""
    services = fast_services
    start_requests = emulator.http_requests(big_portal)
    rounds: list[int] = []

    def kill_after_four(imported: int, in_round: int) -> None:
        rounds.append(in_round)
        if len(rounds) == 4:
            raise Killed

    with pytest.raises(Killed):
        backfill_portal(big_portal.member_id, services=services, chunk_hook=kill_after_four)
    with services.db() as session:
        state = session.scalars(select(BackfillState)).one()
        stopped_at = state.last_lead_id
        assert state.phase == "leads" and 0 < stopped_at < N_LEADS
        assert session.scalar(select(func.count()).select_from(Journey)) == stopped_at

    imported = backfill_portal(big_portal.member_id, services=services)
    fast_requests = emulator.http_requests(big_portal) - start_requests
    assert imported == N_LEADS
    with services.db() as session:
        state = session.scalars(select(BackfillState)).one()
        assert state.phase == "done" and state.finished_at is not None
        assert session.scalar(select(func.count()).select_from(Journey)) == N_LEADS
        assert session.scalar(select(func.count()).select_from(JourneyStageChange)) == MOVED
        ai = session.scalar(select(func.count()).select_from(Journey).where(Journey.is_ai))
        assert ai == len(range(0, N_LEADS, 7))
        first = session.scalars(select(Journey).where(Journey.lead_id == 1)).one()
        assert first.stage == Stage.QUALIFIED and first.channel == "chat"
        assert first.created_at == dt.datetime(2025, 1, 1)
        assert first.qualified_at == dt.datetime(2025, 1, 31)
        assert first.first_reply_at == dt.datetime(2025, 1, 31)
        last = session.scalars(select(Journey).where(Journey.lead_id == N_LEADS)).one()
        assert last.stage == Stage.NEW and last.assigned_by_id == 2 + (N_LEADS - 1) % 3

    # A finished backfill asks nothing more.
    before = emulator.http_requests(big_portal)
    assert backfill_portal(big_portal.member_id, services=services) == N_LEADS
    assert emulator.http_requests(big_portal) == before

    # The baseline: the same leads read page by page.
    client = services.bitrix(big_portal.member_id)
    baseline = page_by_page_requests(client, "crm.lead.list", total=N_LEADS)
    assert baseline >= 40 * fast_requests, (baseline, fast_requests)
    print(f"backfill: {fast_requests} requests; page by page: {baseline}")
