"""Import a portal's existing deals and their stage moves into the client journeys.

Runs as the second part of the install-time backfill (:func:`b24app.leads.backfill.
backfill_portal` hands over when the leads are done: phases ``deals`` then ``deal_history``),
so converted leads are already journeys and their deals join them (``LEAD_ID``). Same
technique as :mod:`b24app.leads.backfill`: every page is ``order[ID]=ASC``, ``filter[>ID]``,
``start=-1``; 50 chained pages per ``batch`` request (``$result[p3][49][ID]``), so one
request reads up to 2,500 deals (20,000 deals: 8 requests instead of 400 page by page).
The moves (``crm.stagehistory.list`` entityTypeId 2, ``>TYPE_ID`` 1: only real moves) are read
after the deals, when every deal already has its journey and so its journey key.

One round = one request = one transaction with the progress (``BackfillState.last_deal_id``,
``last_deal_history_id``): a killed import resumes after the last committed round; importing a
round twice changes nothing. No CRM writes, no SLA timers.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from sqlalchemy import or_
from sqlalchemy import select

from b24app.bitrix.chain import chain_rows
from b24app.bitrix.client import BitrixClient
from b24app.bitrix.client import MAX_BATCH
from b24app.bitrix.client import PAGE_SIZE
from b24app.context import Services
from b24app.leads.deal_intake import record_deal
from b24app.leads.deal_intake import stage_map
from b24app.leads.deal_snapshot import DealSnapshot
from b24app.leads.deal_snapshot import HISTORY_SELECT
from b24app.leads.deal_snapshot import normalise_deal
from b24app.leads.deal_snapshot import parse_deal_history
from b24app.leads.journeys import journey_key
from b24app.leads.lifecycle import add_moves
from b24app.leads.lifecycle import refresh_stage_times
from b24app.leads.lifecycle import settle_conversions
from b24app.storage.models import BackfillState
from b24app.storage.models import Journey
from b24app.storage.models import Portal
from b24app.storage.models import utc_now

log = logging.getLogger(__name__)

PHASE_DEALS = "deals"
PHASE_DEAL_HISTORY = "deal_history"
DEAL_SELECT = [
    "ID", "TITLE", "LEAD_ID", "CONTACT_ID", "CATEGORY_ID", "STAGE_ID", "STAGE_SEMANTIC_ID",
    "SOURCE_ID", "SOURCE_DESCRIPTION", "COMMENTS", "ASSIGNED_BY_ID", "DATE_CREATE",
    "DATE_MODIFY", "MOVED_TIME", "OPPORTUNITY", "CURRENCY_ID", "UTM_SOURCE", "UTM_MEDIUM",
    "UTM_CAMPAIGN", "UTM_CONTENT", "UTM_TERM",
]  # fmt: skip


def deal_page_commands(last: int, deal_field: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """One round of deals: ``MAX_BATCH`` chained ``crm.deal.list`` pages after ``last``."""
    commands: dict[str, tuple[str, dict[str, Any]]] = {}
    for k in range(MAX_BATCH):
        bound: int | str = last if k == 0 else f"$result[p{k - 1}][{PAGE_SIZE - 1}][ID]"
        commands[f"p{k}"] = (
            "crm.deal.list",
            {"select": [*DEAL_SELECT, deal_field], "filter": {">ID": bound},
             "order": {"ID": "ASC"}, "start": -1},
        )  # fmt: skip
    return commands


def history_page_commands(last: int) -> dict[str, tuple[str, dict[str, Any]]]:
    """One round of deal moves: ``MAX_BATCH`` chained ``crm.stagehistory.list`` pages."""
    commands: dict[str, tuple[str, dict[str, Any]]] = {}
    for k in range(MAX_BATCH):
        bound: int | str = last if k == 0 else f"$result[h{k - 1}][items][{PAGE_SIZE - 1}][ID]"
        commands[f"h{k}"] = (
            "crm.stagehistory.list",
            {"entityTypeId": 2, "select": HISTORY_SELECT,
             "filter": {">ID": bound, ">TYPE_ID": 1}, "order": {"ID": "ASC"}, "start": -1},
        )  # fmt: skip
    return commands


def fetch_deals(
    client: BitrixClient, last: int, deal_field: str
) -> tuple[list[DealSnapshot], bool]:
    answer = client.batch(deal_page_commands(last, deal_field))
    rows, done = chain_rows(
        answer.results, answer.errors, "p", MAX_BATCH, last, None, "crm.deal.list"
    )
    return [normalise_deal(r, deal_field) for r in rows], done


def fetch_moves(client: BitrixClient, last: int) -> tuple[list[dict[str, Any]], bool]:
    answer = client.batch(history_page_commands(last))
    return chain_rows(
        answer.results, answer.errors, "h", MAX_BATCH, last, "items", "crm.stagehistory.list"
    )


def _store_deals(
    services: Services,
    portal_id: int,
    deals: list[DealSnapshot],
    registration: Mapping[str, Any],
    settings: Mapping[str, Any],
    update: dict[str, Any],
) -> None:
    rules = settings.get("ai_rules") or {}
    deal_ids = [d.deal_id for d in deals]
    lead_ids = [d.lead_id for d in deals if d.lead_id is not None]
    with services.db() as session:
        cache: dict[tuple[str, int], Journey] = {}
        if deals:
            found = session.scalars(
                select(Journey).where(
                    Journey.portal_id == portal_id,
                    or_(Journey.deal_id.in_(deal_ids), Journey.lead_id.in_(lead_ids)),
                )
            )
            for journey in found:
                if journey.deal_id is not None:
                    cache[("deal", journey.deal_id)] = journey
                if journey.lead_id is not None:
                    cache[("lead", journey.lead_id)] = journey
        journeys = []
        for deal in deals:
            mapping = stage_map(registration, settings, deal.category_id)
            journey, _ = record_deal(
                session, portal_id, deal, [], mapping, rules, "backfill", cache
            )
            journeys.append(journey)
        settle_conversions(session, portal_id, journeys)
        _progress(session, portal_id, update)


def _store_moves(
    services: Services,
    portal_id: int,
    rows: list[dict[str, Any]],
    registration: Mapping[str, Any],
    settings: Mapping[str, Any],
    update: dict[str, Any],
) -> None:
    deal_ids = {int(str(r.get("OWNER_ID"))) for r in rows if str(r.get("OWNER_ID", "")).isdigit()}
    with services.db() as session:
        journeys = {
            int(j.deal_id): j
            for j in session.scalars(
                select(Journey).where(Journey.portal_id == portal_id, Journey.deal_id.in_(deal_ids))
            )
            if j.deal_id is not None
        } if deal_ids else {}  # fmt: skip
        groups: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            journey = journeys.get(int(str(row.get("OWNER_ID") or 0) or 0))
            if journey is None:
                continue  # a deal deleted meanwhile
            category = int(str(row.get("CATEGORY_ID") or 0) or 0)
            groups[(journey_key(journey), category)].append(row)
        for (key, category), group in groups.items():
            mapping = stage_map(registration, settings, category)
            add_moves(session, portal_id, parse_deal_history(group, key), mapping, "backfill")
        refresh_stage_times(session, portal_id, list(journeys.values()))
        _progress(session, portal_id, update)


def _columns(state: dict[str, Any]) -> dict[str, Any]:
    return {k: state[k] for k in ("phase", "last_deal_id", "last_deal_history_id")}


def _progress(session: Any, portal_id: int, update: dict[str, Any]) -> None:
    state = session.get(BackfillState, portal_id)
    assert state is not None
    for key, value in update.items():
        setattr(state, key, value)
    if update.get("phase") == "done":
        state.finished_at = utc_now()
        portal = session.get(Portal, portal_id)
        if portal is not None:
            portal.registration = {**(portal.registration or {}), "deals_backfilled": True}


def run_deal_phases(
    services: Services,
    member_id: str,
    portal_id: int,
    state: dict[str, Any],
    registration: Mapping[str, Any],
    settings: Mapping[str, Any],
    on_round: Any = None,
) -> dict[str, Any]:
    """Run the ``deals`` and ``deal_history`` phases to the end; ``state`` holds
    ``phase``, ``last_deal_id``, ``last_deal_history_id``; ``on_round(deals so far, deals in
    the round)`` after each committed deal round. Returns ``state`` (``deals``: this run's)."""
    client = services.bitrix(member_id)
    deal_field = str(registration.get("deal_field") or "UF_CRM_B24APP_AI")
    while state["phase"] in (PHASE_DEALS, PHASE_DEAL_HISTORY):
        if state["phase"] == PHASE_DEALS:
            deals, done = fetch_deals(client, state["last_deal_id"], deal_field)
            if deals:
                state["last_deal_id"] = max(state["last_deal_id"], max(d.deal_id for d in deals))
            state["deals"] = state.get("deals", 0) + len(deals)
            if done:
                # No deal at all: no move to read either (saves the request).
                state["phase"] = PHASE_DEAL_HISTORY if state["last_deal_id"] else "done"
            _store_deals(services, portal_id, deals, registration, settings, _columns(state))
            if on_round is not None:
                on_round(state["deals"], len(deals))
        else:
            rows, done = fetch_moves(client, state["last_deal_history_id"])
            if rows:
                state["last_deal_history_id"] = max(
                    state["last_deal_history_id"], max(int(r["ID"]) for r in rows)
                )
            if done:
                state["phase"] = "done"
            _store_moves(services, portal_id, rows, registration, settings, _columns(state))
    log.info("deal backfill done (last deal %d)", state["last_deal_id"])
    return state
