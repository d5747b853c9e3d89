"""Import a portal's existing leads and deals, with their stage moves, into the journeys.

Run on install (a ``bulk``-queue job, :func:`b24app.handlers.jobs.enqueue_backfill`) and on
demand (``b24app backfill --member-id X``). One entity kind after the other
(:mod:`b24app.leads.kinds`): the leads (phases ``leads``, ``history``), then the deals
(``deals``, ``deal_history``), so converted leads are already journeys when their deals join
them (``LEAD_ID``). Resumable and cheap on the portal's limits:

* **Fast paging**, as Bitrix24 advises for big exports: every page is ``order[ID]=ASC``,
  ``filter[>ID]=<last>``, ``start=-1`` (no ``total`` count); 50 pages go in ONE ``batch``
  request, each page filtering on the last row of the page before it
  (``$result[p3][49][ID]``), so one HTTP request reads up to 2,500 rows.
* **Moves only**: the stage each entity was created in (and its time) is on the entity
  itself, so the stage history is read with ``filter[>TYPE_ID]=1`` — only real moves. While
  leads are being read, one slot of each batch carries the next lead history page, so a
  portal with few moves costs no extra request at all; the deals' moves are read after the
  deals, when every deal has its journey and so its journey key.
* **One round = one HTTP request = one transaction**: a round's entities and moves are
  written and ``BackfillState`` (last lead / history / deal / deal history id) is committed
  together; a killed backfill resumes after the last committed round, and re-importing a
  round twice changes nothing (journeys are upserted by their lead or deal, moves by their
  unique key).

Journeys already recorded from events are updated only when the listed row is not older
(``DATE_MODIFY``) than the recorded one. The backfill never writes to the CRM (no tagging)
and starts no SLA timers: the history is not an emergency.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy.orm import Session

from b24app import context
from b24app import logs
from b24app.bitrix.budget import bulk_rest
from b24app.bitrix.chain import chain_rows
from b24app.bitrix.client import BitrixClient
from b24app.bitrix.client import MAX_BATCH
from b24app.bitrix.client import PAGE_SIZE
from b24app.context import Services
from b24app.leads.classify import classify
from b24app.leads.classify import lead_channel
from b24app.leads.journeys import journey_key
from b24app.leads.kinds import Commands
from b24app.leads.kinds import DEAL
from b24app.leads.kinds import EntityKind
from b24app.leads.kinds import LEAD
from b24app.leads.lifecycle import add_moves
from b24app.leads.lifecycle import apply_fields
from b24app.leads.lifecycle import apply_lead_to_deal_journey
from b24app.leads.lifecycle import HistoryEntry
from b24app.leads.lifecycle import JourneyCache
from b24app.leads.lifecycle import new_lead
from b24app.leads.lifecycle import record_deal
from b24app.leads.lifecycle import refresh_stage_times
from b24app.leads.lifecycle import settle_conversions
from b24app.leads.pipelines import stage_map
from b24app.leads.snapshot import DealSnapshot
from b24app.leads.snapshot import LeadSnapshot
from b24app.leads.snapshot import normalise_deal
from b24app.leads.snapshot import normalise_lead
from b24app.settings import load_settings
from b24app.storage.models import BackfillState
from b24app.storage.models import Journey
from b24app.storage.models import Portal
from b24app.storage.models import utc_now
from b24app.storage.portals import get_portal

log = logging.getLogger(__name__)

PHASE_LEADS = "leads"
PHASE_HISTORY = "history"
PHASE_DEALS = "deals"
PHASE_DEAL_HISTORY = "deal_history"
PHASE_DONE = "done"

# Called after each committed round with (entities imported so far, entities in the round).
ProgressHook = Callable[[int, int], None]


class PortalNotFound(LookupError):
    """No active portal with that member_id."""


# -- the requests: chained pages of a kind's list and of its stage history --------------------


def page_commands(kind: EntityKind, last: int, field: str, pages: int) -> Commands:
    """``pages`` chained list pages of ``kind`` after id ``last`` (``p0``, ``p1``, …)."""
    commands: Commands = {}
    for k in range(pages):
        bound: int | str = last if k == 0 else f"$result[p{k - 1}][{PAGE_SIZE - 1}][ID]"
        commands[f"p{k}"] = (
            kind.list_method,
            {"select": [*kind.list_select, field], "filter": {">ID": bound},
             "order": {"ID": "ASC"}, "start": -1},
        )  # fmt: skip
    return commands


def history_page_commands(kind: EntityKind, last: int, pages: int) -> Commands:
    """``pages`` chained ``crm.stagehistory.list`` pages (real moves only) of ``kind``."""
    commands: Commands = {}
    for k in range(pages):
        bound: int | str = last if k == 0 else f"$result[h{k - 1}][items][{PAGE_SIZE - 1}][ID]"
        commands[f"h{k}"] = (
            "crm.stagehistory.list",
            {"entityTypeId": kind.entity_type_id, "select": list(kind.history_select),
             "filter": {">ID": bound, ">TYPE_ID": 1}, "order": {"ID": "ASC"}, "start": -1},
        )  # fmt: skip
    return commands


@dataclass
class Round:
    """What one batch request of the leads' phases brought back."""

    leads: list[dict[str, Any]]
    leads_done: bool
    moves: list[HistoryEntry]
    history_done: bool


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
    answer = client.batch(
        {
            **history_page_commands(LEAD, last_history, history_pages),
            **page_commands(LEAD, last_lead, lead_field, lead_pages),
        }
    )
    history_rows, history_done = chain_rows(
        answer.results, answer.errors, "h", history_pages, last_history, "items",
        "crm.stagehistory.list",
    )  # fmt: skip
    if leads_done:
        leads: list[dict[str, Any]] = []
        done = True
    else:
        leads, done = chain_rows(
            answer.results, answer.errors, "p", lead_pages, last_lead, None, LEAD.list_method
        )
    return Round(leads, done, LEAD.history(history_rows), history_done)


def fetch_pages(
    client: BitrixClient, kind: EntityKind, last: int, field: str
) -> tuple[list[dict[str, Any]], bool]:
    """One round of ``kind``: ``MAX_BATCH`` chained list pages; (rows, no more rows)."""
    answer = client.batch(page_commands(kind, last, field, MAX_BATCH))
    return chain_rows(answer.results, answer.errors, "p", MAX_BATCH, last, None, kind.list_method)


def fetch_moves(
    client: BitrixClient, kind: EntityKind, last: int
) -> tuple[list[dict[str, Any]], bool]:
    """One round of ``kind``'s moves: ``MAX_BATCH`` chained history pages."""
    answer = client.batch(history_page_commands(kind, last, MAX_BATCH))
    return chain_rows(
        answer.results, answer.errors, "h", MAX_BATCH, last, "items", "crm.stagehistory.list"
    )


# -- the run ----------------------------------------------------------------------------------


@dataclass
class Run:
    """One backfill run of a portal: what it reads with, and its progress (the columns of
    ``BackfillState`` it moves on, committed with each round)."""

    services: Services
    member_id: str
    portal_id: int
    registration: dict[str, Any]
    settings: dict[str, Any]
    state: dict[str, Any]
    on_lead_round: ProgressHook  # progress and chunk_hook
    on_deal_round: ProgressHook  # chunk_hook only: the progress bar counts leads

    @property
    def phase(self) -> str:
        return str(self.state["phase"])

    def client(self) -> BitrixClient:
        return self.services.bitrix(self.member_id)


def backfill_portal(
    member_id: str,
    *,
    services: Services | None = None,
    progress: ProgressHook | None = None,
    chunk_hook: ProgressHook | None = None,
    restart: bool = False,
) -> int:
    """Import (or finish importing) a portal's leads, deals and moves; returns the leads
    imported by all runs so far. ``restart`` starts over from the first lead. ``progress``
    (leads only) and ``chunk_hook`` (leads and deals) are called after each committed round
    (a chunk of up to 2,450 leads or 2,500 deals) with (imported so far, in the round); an
    exception from either stops the run with that round kept.

    :raise PortalNotFound: no active portal ``member_id``.
    :raise BitrixError: the portal refused a request (progress so far is kept).
    """
    services = services or context.current()
    run = _start(services, member_id, restart, progress, chunk_hook)
    if run is None:
        return _imported(services, member_id)
    with logs.bind(member_id=member_id), bulk_rest():
        log.info("backfill from lead %d / history %d (%s)", run.state["last_lead_id"],
                 run.state["last_history_id"], run.phase)  # fmt: skip
        for kind in (LEAD, DEAL):
            if run.phase in PHASES[kind.name]:
                _RUN_PHASES[kind.name](run)
        log.info("backfill done: %d leads", run.state["imported"])
    return int(run.state["imported"])


def _start(
    services: Services,
    member_id: str,
    restart: bool,
    progress: ProgressHook | None,
    chunk_hook: ProgressHook | None,
) -> Run | None:
    """The run's state, created or reset; None when there is nothing left to import."""
    with services.db() as session:
        portal = get_portal(session, member_id)
        if portal is None or portal.status != "active":
            raise PortalNotFound(member_id)
        registration = dict(portal.registration or {})
        state = session.get(BackfillState, portal.id)
        if state is None:
            state = BackfillState(portal_id=portal.id, last_lead_id=0, last_history_id=0,
                                  phase=PHASE_LEADS, imported=0, started_at=utc_now())  # fmt: skip
            session.add(state)
        elif restart:
            state.last_lead_id = state.last_history_id = state.imported = 0
            state.phase, state.started_at, state.finished_at = PHASE_LEADS, utc_now(), None
        elif state.phase == PHASE_DONE and registration.get("deals_backfilled"):
            return None
        elif state.phase == PHASE_DONE:
            state.phase = PHASE_DEALS  # an install from before deals: import them now
        columns = {name: getattr(state, name) or 0 for name in _COLUMNS}
        columns["phase"] = state.phase
        settings = load_settings(session, portal.id)
        portal_id = portal.id
    return Run(services, member_id, portal_id, registration, settings, columns,
               _hooks(progress, chunk_hook), _hooks(None, chunk_hook))  # fmt: skip


_COLUMNS = ("last_lead_id", "last_history_id", "imported", "last_deal_id", "last_deal_history_id")


def _hooks(progress: ProgressHook | None, chunk_hook: ProgressHook | None) -> ProgressHook:
    def on_round(imported: int, count: int) -> None:
        for hook in (progress, chunk_hook):
            if hook is not None:
                hook(imported, count)

    return on_round


def _imported(services: Services, member_id: str) -> int:
    with services.db() as session:
        portal = get_portal(session, member_id)
        state = session.get(BackfillState, portal.id) if portal is not None else None
        return state.imported if state is not None else 0


def _save(session: Session, run: Run) -> None:
    """The run's progress, in the round's transaction; at the end the portal is marked as
    having its deals imported."""
    state = session.get(BackfillState, run.portal_id)
    assert state is not None
    for key, value in run.state.items():
        setattr(state, key, value)
    if run.phase == PHASE_DONE:
        state.finished_at = utc_now()
        portal = session.get(Portal, run.portal_id)
        if portal is not None:
            portal.registration = {**(portal.registration or {}), "deals_backfilled": True}


# -- leads --------------------------------------------------------------------------------------


def _run_lead_phases(run: Run) -> None:
    """Leads with one history page per round, then the rest of the history; then the deals."""
    lead_field = LEAD.field(run.registration)
    statuses = dict(run.registration.get("statuses") or {})
    rules = run.settings.get("ai_rules") or {}
    state = run.state
    while run.phase in PHASES[LEAD.name]:
        got = fetch_round(
            run.client(), lead_field, state["last_lead_id"], state["last_history_id"],
            leads_done=run.phase == PHASE_HISTORY,
        )  # fmt: skip
        snapshots = [normalise_lead(row, lead_field) for row in got.leads]
        if snapshots:
            state["last_lead_id"] = max(state["last_lead_id"], *(s.lead_id for s in snapshots))
        if got.moves:
            state["last_history_id"] = max(
                state["last_history_id"], *(m.history_id for m in got.moves)
            )
        state["imported"] += len(snapshots)
        if got.leads_done:
            state["phase"] = PHASE_DEALS if got.history_done else PHASE_HISTORY
        _store_leads(run, snapshots, got.moves, statuses, rules)
        run.on_lead_round(state["imported"], len(snapshots))


def _store_leads(
    run: Run,
    snapshots: list[LeadSnapshot],
    moves: list[HistoryEntry],
    statuses: Mapping[str, str],
    rules: Mapping[str, Any],
) -> None:
    """Write one round's leads and moves and the new progress in one transaction."""
    portal_id = run.portal_id
    with run.services.db() as session:
        lead_ids = {s.lead_id for s in snapshots} | {m.journey_key for m in moves}
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
        _save(session, run)


# -- deals --------------------------------------------------------------------------------------


def _run_deal_phases(run: Run) -> None:
    """The deals, then their moves; the progress goes with each round, ``on_deal_round``
    after each deal round with (deals so far in this run, deals in the round)."""
    deal_field = DEAL.field(run.registration)
    state, deals_so_far = run.state, 0
    while run.phase in PHASES[DEAL.name]:
        if run.phase == PHASE_DEALS:
            rows, done = fetch_pages(run.client(), DEAL, state["last_deal_id"], deal_field)
            deals = [normalise_deal(r, deal_field) for r in rows]
            if deals:
                state["last_deal_id"] = max(state["last_deal_id"], *(d.deal_id for d in deals))
            deals_so_far += len(deals)
            if done:
                # No deal at all: no move to read either (saves the request).
                state["phase"] = PHASE_DEAL_HISTORY if state["last_deal_id"] else PHASE_DONE
            _store_deals(run, deals)
            run.on_deal_round(deals_so_far, len(deals))
        else:
            rows, done = fetch_moves(run.client(), DEAL, state["last_deal_history_id"])
            if rows:
                state["last_deal_history_id"] = max(
                    state["last_deal_history_id"], *(int(r["ID"]) for r in rows)
                )
            if done:
                state["phase"] = PHASE_DONE
            _store_deal_moves(run, rows)
    log.info("deal backfill done (last deal %d)", state["last_deal_id"])


def _store_deals(run: Run, deals: list[DealSnapshot]) -> None:
    rules = run.settings.get("ai_rules") or {}
    with run.services.db() as session:
        cache = _journeys_of(session, run.portal_id, deals)
        journeys = []
        for deal in deals:
            mapping = stage_map(run.registration, run.settings, deal.category_id)
            journey, _ = record_deal(
                session, run.portal_id, deal, [], mapping, rules, "backfill", cache
            )
            journeys.append(journey)
        settle_conversions(session, run.portal_id, journeys)
        _save(session, run)


def _journeys_of(session: Session, portal_id: int, deals: list[DealSnapshot]) -> JourneyCache:
    """The journeys of a round's deals and of their leads, by ("deal"|"lead", id)."""
    cache: JourneyCache = {}
    if not deals:
        return cache
    deal_ids = [d.deal_id for d in deals]
    lead_ids = [d.lead_id for d in deals if d.lead_id is not None]
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
    return cache


def _store_deal_moves(run: Run, rows: list[dict[str, Any]]) -> None:
    portal_id = run.portal_id
    deal_ids = {int(str(r.get("OWNER_ID"))) for r in rows if str(r.get("OWNER_ID", "")).isdigit()}
    with run.services.db() as session:
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
            mapping = stage_map(run.registration, run.settings, category)
            add_moves(session, portal_id, DEAL.history(group, key), mapping, "backfill")
        refresh_stage_times(session, portal_id, list(journeys.values()))
        _save(session, run)


# Which phases each kind runs, and how; in this order.
PHASES = {LEAD.name: (PHASE_LEADS, PHASE_HISTORY), DEAL.name: (PHASE_DEALS, PHASE_DEAL_HISTORY)}
_RUN_PHASES: dict[str, Callable[[Run], None]] = {
    LEAD.name: _run_lead_phases,
    DEAL.name: _run_deal_phases,
}


def count_leads(services: Services, member_id: str) -> int:
    """How many leads the portal has (one request; for a progress bar's total)."""
    envelope = services.bitrix(member_id).call_raw("crm.lead.list", {"select": ["ID"], "start": 0})
    return int(envelope.get("total") or 0)
