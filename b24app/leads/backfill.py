"""Import a portal's existing leads and their status moves into the lifecycle record.

Run on install (a ``bulk``-queue job, :func:`b24app.handlers.jobs.enqueue_backfill`) and on
demand (``b24app backfill --member-id X``). Resumable and cheap on the portal's limits:

* **Fast paging**, as Bitrix24 advises for big exports: every page is ``order[ID]=ASC``,
  ``filter[>ID]=<last>``, ``start=-1`` (no ``total`` count); 50 pages go in ONE ``batch``
  request, each page filtering on the last row of the page before it
  (``$result[p3][49][ID]``), so one HTTP request reads up to 2,500 rows.
* **Moves only**: the status each lead was created in (and its time) is on the lead itself,
  so the stage history is read with ``filter[>TYPE_ID]=1`` — only real moves. While leads
  are being read, one slot of each batch carries the next history page, so a portal with
  few moves costs no extra request at all.
* **One round = one HTTP request = one transaction**: the leads and moves of a round are
  written and ``BackfillState`` (last lead id, last history id) is committed together; a
  killed backfill resumes after the last committed round, and re-importing a round twice
  changes nothing (leads are upserted by ``(portal, lead)``, moves by their unique key).

Leads already recorded from events are updated only when the listed row is not older
(``DATE_MODIFY``) than the recorded one. The backfill never writes to the CRM (no tagging)
and starts no SLA timers: the history is not an emergency.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from b24app import logs
from b24app.bitrix.budget import bulk_rest
from b24app.bitrix.chain import chain_rows
from b24app.bitrix.client import BitrixClient
from b24app.bitrix.client import MAX_BATCH
from b24app.bitrix.client import PAGE_SIZE
from b24app.context import Services
from b24app.leads.classify import classify
from b24app.leads.classify import lead_channel
from b24app.leads.lifecycle import add_moves
from b24app.leads.lifecycle import apply_fields
from b24app.leads.lifecycle import apply_lead_to_deal_journey
from b24app.leads.lifecycle import HistoryEntry
from b24app.leads.lifecycle import new_lead
from b24app.leads.lifecycle import parse_history
from b24app.leads.lifecycle import refresh_stage_times
from b24app.leads.lifecycle import settle_conversions
from b24app.leads.snapshot import LeadSnapshot
from b24app.leads.snapshot import normalise_lead
from b24app.leads.tag_writes import DEFAULT_LEAD_FIELD
from b24app.settings import load_settings
from b24app.storage.models import BackfillState
from b24app.storage.models import Journey
from b24app.storage.models import utc_now
from b24app.storage.portals import get_portal

log = logging.getLogger(__name__)

LEAD_SELECT = [
    "ID", "TITLE", "STATUS_ID", "STATUS_SEMANTIC_ID", "SOURCE_ID", "SOURCE_DESCRIPTION",
    "COMMENTS", "ASSIGNED_BY_ID", "DATE_CREATE", "DATE_MODIFY", "MOVED_TIME", "OPPORTUNITY",
    "CURRENCY_ID", "UTM_SOURCE", "UTM_MEDIUM", "UTM_CAMPAIGN", "UTM_CONTENT", "UTM_TERM", "IM",
]  # fmt: skip
HISTORY_SELECT = ["ID", "TYPE_ID", "OWNER_ID", "CREATED_TIME", "STATUS_ID", "STATUS_SEMANTIC_ID"]
PHASE_LEADS = "leads"
PHASE_HISTORY = "history"
PHASE_DONE = "done"
PHASE_DEALS = "deals"
PHASE_DEAL_HISTORY = "deal_history"

# Called after each committed round with (leads imported so far, leads in this round).
ProgressHook = Callable[[int, int], None]


class PortalNotFound(LookupError):
    """No active portal with that member_id."""


@dataclass
class Round:
    """What one batch request brought back."""

    leads: list[dict[str, Any]]
    leads_done: bool
    moves: list[HistoryEntry]
    history_done: bool


def _lead_params(bound: int | str, lead_field: str) -> dict[str, Any]:
    return {
        "select": [*LEAD_SELECT, lead_field],
        "filter": {">ID": bound},
        "order": {"ID": "ASC"},
        "start": -1,
    }


def _history_params(bound: int | str) -> dict[str, Any]:
    return {
        "entityTypeId": 1,
        "select": HISTORY_SELECT,
        "filter": {">ID": bound, ">TYPE_ID": 1},
        "order": {"ID": "ASC"},
        "start": -1,
    }


def fetch_round(
    client: BitrixClient,
    lead_field: str,
    last_lead: int,
    last_history: int,
    *,
    leads_done: bool,
) -> Round:
    """One ``batch`` request: a chain of lead pages plus the next history page, or (leads
    done) a chain of history pages."""
    lead_pages = 0 if leads_done else MAX_BATCH - 1
    history_pages = MAX_BATCH if leads_done else 1
    commands: dict[str, tuple[str, Mapping[str, Any] | None]] = {}
    for k in range(history_pages):
        bound: int | str = (
            last_history if k == 0 else f"$result[h{k - 1}][items][{PAGE_SIZE - 1}][ID]"
        )
        commands[f"h{k}"] = ("crm.stagehistory.list", _history_params(bound))
    for k in range(lead_pages):
        bound = last_lead if k == 0 else f"$result[p{k - 1}][{PAGE_SIZE - 1}][ID]"
        commands[f"p{k}"] = ("crm.lead.list", _lead_params(bound, lead_field))
    answer = client.batch(commands)
    history_rows, history_done = chain_rows(
        answer.results, answer.errors, "h", history_pages, last_history, "items",
        "crm.stagehistory.list",
    )  # fmt: skip
    if leads_done:
        leads: list[dict[str, Any]] = []
        done = True
    else:
        leads, done = chain_rows(
            answer.results, answer.errors, "p", lead_pages, last_lead, None, "crm.lead.list"
        )
    return Round(leads, done, parse_history(history_rows), history_done)


def _store_round(
    services: Services,
    portal_id: int,
    snapshots: list[LeadSnapshot],
    moves: list[HistoryEntry],
    rules: Mapping[str, Any],
    statuses: Mapping[str, str],
    state_update: dict[str, Any],
) -> None:
    """Write one round's leads and moves and the new progress in one transaction."""
    with services.db() as session:
        lead_ids = {s.lead_id for s in snapshots} | {m.lead_id for m in moves}
        existing = {
            lead.lead_id: lead
            for lead in session.scalars(
                select(Journey).where(Journey.portal_id == portal_id, Journey.lead_id.in_(lead_ids))
            )
        } if lead_ids else {}  # fmt: skip
        for snap in snapshots:
            lead = existing.get(snap.lead_id)
            if lead is None:
                lead = new_lead(portal_id, snap)
                session.add(lead)
                existing[snap.lead_id] = lead
            if lead.deal_id is not None:  # its deal's event came first: the deal leads
                apply_lead_to_deal_journey(lead, snap, classify(snap, rules))
            else:
                apply_fields(lead, snap, statuses, classify(snap, rules), lead_channel(snap))
        session.flush()
        add_moves(session, portal_id, moves, statuses, origin="backfill")
        refresh_stage_times(session, portal_id, list(existing.values()))
        settle_conversions(session, portal_id, existing.values())
        state = session.get(BackfillState, portal_id)
        assert state is not None
        for key, value in state_update.items():
            setattr(state, key, value)


def backfill_portal(
    member_id: str,
    *,
    services: Services | None = None,
    progress: ProgressHook | None = None,
    chunk_hook: ProgressHook | None = None,
    restart: bool = False,
) -> int:
    """Import (or finish importing) a portal's leads and moves; returns the leads imported by
    all runs so far. ``restart`` starts over from the first lead. ``progress`` and
    ``chunk_hook`` are both called after each committed round (a chunk of up to 2,450 leads)
    with (leads imported so far, leads in the round); an exception from either stops the run
    with that round kept.

    :raise PortalNotFound: no active portal ``member_id``.
    :raise BitrixError: the portal refused a request (progress so far is kept).
    """
    from b24app import context

    services = services or context.current()
    with services.db() as session:
        portal = get_portal(session, member_id)
        if portal is None or portal.status != "active":
            raise PortalNotFound(member_id)
        portal_id = portal.id
        registration = dict(portal.registration or {})
        rules = load_settings(session, portal_id).get("ai_rules") or {}
        state = session.get(BackfillState, portal_id)
        if state is None:
            state = BackfillState(portal_id=portal_id, last_lead_id=0, last_history_id=0,
                                  phase=PHASE_LEADS, imported=0, started_at=utc_now())  # fmt: skip
            session.add(state)
        elif restart:
            state.last_lead_id = state.last_history_id = state.imported = 0
            state.phase, state.started_at, state.finished_at = PHASE_LEADS, utc_now(), None
        elif state.phase == PHASE_DONE and registration.get("deals_backfilled"):
            return state.imported
        elif state.phase == PHASE_DONE:
            state.phase = PHASE_DEALS  # an install from before deals: import them now
        last_lead, last_history = state.last_lead_id, state.last_history_id
        phase, imported = state.phase, state.imported
        deal_state = {"last_deal_id": state.last_deal_id or 0,
                      "last_deal_history_id": state.last_deal_history_id or 0}  # fmt: skip
        settings = load_settings(session, portal_id)
    statuses = dict(registration.get("statuses") or {})
    lead_field = str(registration.get("lead_field") or DEFAULT_LEAD_FIELD)
    client = services.bitrix(member_id)
    with logs.bind(member_id=member_id), bulk_rest():
        log.info("backfill from lead %d / history %d (%s)", last_lead, last_history, phase)
        while phase in (PHASE_LEADS, PHASE_HISTORY):
            got = fetch_round(
                client, lead_field, last_lead, last_history, leads_done=phase == PHASE_HISTORY
            )
            snapshots = [normalise_lead(row, lead_field) for row in got.leads]
            if snapshots:
                last_lead = max(last_lead, max(s.lead_id for s in snapshots))
            if got.moves:
                last_history = max(last_history, max(m.history_id for m in got.moves))
            imported += len(snapshots)
            if got.leads_done:
                # then the deals (b24app.leads.deal_backfill)
                phase = PHASE_DEALS if got.history_done else PHASE_HISTORY
            update: dict[str, Any] = {
                "last_lead_id": last_lead,
                "last_history_id": last_history,
                "phase": phase,
                "imported": imported,
            }
            _store_round(services, portal_id, snapshots, got.moves, rules, statuses, update)
            for hook in (progress, chunk_hook):
                if hook is not None:
                    hook(imported, len(snapshots))
        if phase in (PHASE_DEALS, PHASE_DEAL_HISTORY):
            from b24app.leads.deal_backfill import run_deal_phases

            run_deal_phases(
                services, member_id, portal_id, {"phase": phase, **deal_state}, registration,
                settings, chunk_hook,
            )  # fmt: skip
        log.info("backfill done: %d leads", imported)
    return imported


def count_leads(services: Services, member_id: str) -> int:
    """How many leads the portal has (one request; for a progress bar's total)."""
    envelope = services.bitrix(member_id).call_raw("crm.lead.list", {"select": ["ID"], "start": 0})
    return int(envelope.get("total") or 0)
