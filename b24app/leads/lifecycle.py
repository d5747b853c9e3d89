"""The lead lifecycle record: what the SLA engine and the KPIs read instead of the CRM.

One :class:`~b24app.storage.models.Journey` row per portal and lead holds the creation time,
the first reply, the time each lifecycle stage was first reached, the responsible user,
source, UTM tags, channel, AI flag and amount. Each status move is also kept as a
:class:`~b24app.storage.models.JourneyStageChange` row (unique per lead, status and time, so the
same move recorded twice — a repeated event, the backfill and an event — is one row).

Stages
======

The portal's own status ids are mapped onto our stages at install
(``Portal.registration["statuses"]``: ``new``, ``qualified``, ``confirmed``, ``came``,
``no_show``). A status that is not mapped is ``junk`` when Bitrix24 marks it as a failure
(semantics ``F``) and ``other`` otherwise — a success status counts as *came* only when the
mapping says so. ``qualified_at``, ``confirmed_at``, ``came_at`` and ``no_show_at`` are the
first time the lead reached that stage (taken from Bitrix24's stage history, so a late or
repeated event still records the real time of the move).

First reply
===========

The **first reply** to a lead is the earliest of:

1. its first **status change out of New** — a move to any status other than the portal's
   "new" one (creating a lead directly in another status is not a reply);
2. an **outgoing call, e-mail or chat message** logged on the lead (a completed outgoing
   call activity, an outgoing e-mail activity, an outgoing open-line/SMS message), at the
   time the activity was created;
3. the **"mark replied"** robot (the SLA stop robot) running on the lead.

Its time is ``first_reply_at``; the reply time is ``first_reply_at − created_at``, measured
from the lead's creation in the CRM (a reply logged with an earlier time counts as
immediate). The kind (``status``, ``call``, ``email``, ``chat``, ``robot``) is kept in
``first_reply_kind``. Whatever arrives first is recorded; a signal that arrives later but
happened earlier moves the time back, so the record is the earliest whatever the delivery
order.

Ordering
========

Events arrive late and out of order. Every snapshot carries the CRM's ``DATE_MODIFY``; a
snapshot older than the one recorded (``Journey.modified_at``) never overwrites its fields.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from b24app.leads.classify import Classification
from b24app.leads.classify import classify
from b24app.leads.classify import lead_channel
from b24app.leads.journeys import find_journey
from b24app.leads.journeys import journey_key
from b24app.leads.snapshot import DealSnapshot
from b24app.leads.snapshot import LeadSnapshot
from b24app.leads.snapshot import parse_time
from b24app.storage.db import rows_affected
from b24app.storage.models import EntityType
from b24app.storage.models import Journey
from b24app.storage.models import JourneyStageChange
from b24app.storage.models import Portal
from b24app.storage.models import Stage
from b24app.storage.models import utc_now

REPLY_KINDS = ("status", "call", "email", "chat", "robot")
# LeadStageChange.origin of the status a lead was created in (not a move, so never a reply).
ORIGIN_CREATED = "created"
STAGE_TIME_FIELDS: dict[str, str] = {
    Stage.QUALIFIED: "qualified_at",
    Stage.CONFIRMED: "confirmed_at",
    Stage.CAME: "came_at",
    Stage.NO_SHOW: "no_show_at",
}
# The fields whose change matters to the SLA engine and the KPIs.
TRACKED_FIELDS = (
    "status_id", "stage", "assigned_by_id", "source_id", "channel", "is_ai", "ai_channel",
    "opportunity", "currency_id", "utm_source", "utm_medium", "utm_campaign", "utm_content",
    "utm_term", "first_reply_at", "qualified_at", "confirmed_at", "came_at", "no_show_at",
    "deleted_at", "created_at",
)  # fmt: skip


@dataclass(frozen=True)
class HistoryEntry:
    """One ``crm.stagehistory.list`` row of a lead or deal, under its journey's key;
    ``created`` for TYPE_ID 1 (creation)."""

    history_id: int
    journey_key: int
    status_id: str
    semantic: str
    changed_at: dt.datetime
    created: bool


@dataclass
class Outcome:
    """What recording one snapshot changed."""

    created: bool = False
    stale: bool = False
    changed: set[str] = field(default_factory=set)
    moves_added: int = 0

    @property
    def lifecycle_changed(self) -> bool:
        return self.created or bool(self.changed)


def parse_history(
    rows: Iterable[Any],
    *,
    stage_key: str = "STATUS_ID",
    semantic_key: str = "STATUS_SEMANTIC_ID",
    journey_key: int | None = None,
) -> list[HistoryEntry]:
    """``crm.stagehistory.list`` items (numbers or strings) as entries; bad rows are skipped.

    Leads carry ``STATUS_ID``/``STATUS_SEMANTIC_ID`` and are keyed by their ``OWNER_ID``; deals
    carry ``STAGE_ID``/``STAGE_SEMANTIC_ID`` and are recorded under their journey's key.
    """
    entries: list[HistoryEntry] = []
    for row in rows:
        if not isinstance(row, Mapping):
            continue
        at = parse_time(row.get("CREATED_TIME"))
        try:
            history_id = int(str(row.get("ID")))
            key = journey_key if journey_key is not None else int(str(row.get("OWNER_ID")))
            type_id = int(str(row.get("TYPE_ID") or 0))
        except ValueError:
            continue
        status_id = str(row.get(stage_key) or "")
        if at is None or not status_id:
            continue
        entries.append(
            HistoryEntry(
                history_id=history_id,
                journey_key=key,
                status_id=status_id[:64],
                semantic=str(row.get(semantic_key) or "").upper(),
                changed_at=at,
                created=type_id == 1,
            )
        )
    return entries


def stage_for(status_id: str, semantic: str, statuses: Mapping[str, str]) -> str:
    """Our stage for a portal status id (see "Stages" in the module docstring).

    ``statuses["converted"]`` (set by the intake for a lead converted into a deal) names the
    lead status that means "converted": :attr:`Stage.CONVERTED`, whatever else maps to it.
    """
    if statuses.get(Stage.CONVERTED) == status_id:
        return Stage.CONVERTED
    for stage, mapped in statuses.items():
        if mapped == status_id and stage in Stage.ORDER:
            return stage
    if "new" not in statuses and status_id == "NEW":
        return Stage.NEW
    if semantic == "F":
        return Stage.JUNK
    return Stage.OTHER


def get_lead(session: Session, portal_id: int, lead_id: int) -> Journey | None:
    """The lifecycle record of a lead, or None if the app has not seen it.

    ``lead_id`` is a journey key (:mod:`b24app.leads.journeys`): a lead id, or minus the id
    of a deal that started a journey of its own.
    """
    return find_journey(session, portal_id, key=lead_id)


def record_first_reply(
    session: Session, portal_id: int, lead_id: int, at: dt.datetime, kind: str
) -> bool:
    """Record a reply signal (see "First reply" above); True only when it is the first one.

    ``at`` is naive UTC (an aware time is converted). A signal earlier than the recorded
    one moves the time back but returns False. False too when the app has no record of the
    lead (the event that creates it will follow).
    """
    if at.tzinfo is not None:
        at = at.astimezone(dt.UTC).replace(tzinfo=None)
    lead = get_lead(session, portal_id, lead_id)
    if lead is None:
        return False
    moment = max(at, lead.created_at) if lead.created_at else at
    first = session.execute(
        update(Journey)
        .where(Journey.id == lead.id, Journey.first_reply_at.is_(None))
        .values(first_reply_at=moment, first_reply_kind=kind[:32])
    )
    if rows_affected(first) == 1:
        return True
    session.execute(
        update(Journey)
        .where(Journey.id == lead.id, Journey.first_reply_at > moment)
        .values(first_reply_at=moment, first_reply_kind=kind[:32])
    )
    return False


def mark_deleted(
    session: Session, portal_id: int, lead_id: int, at: dt.datetime | None = None
) -> bool:
    """Mark a lead deleted in the CRM; False if unknown or already marked."""
    result = session.execute(
        update(Journey)
        .where(
            Journey.portal_id == portal_id, Journey.lead_id == lead_id, Journey.deleted_at.is_(None)
        )
        .values(deleted_at=at or utc_now())
    )
    return rows_affected(result) == 1


def _tracked(lead: Journey) -> tuple[Any, ...]:
    return tuple(getattr(lead, name) for name in TRACKED_FIELDS)


def new_lead(portal_id: int, snap: LeadSnapshot) -> Journey:
    """An empty lifecycle record for a lead first seen now."""
    return Journey(
        portal_id=portal_id,
        lead_id=snap.lead_id,
        created_at=snap.created_at or snap.modified_at or utc_now(),
        stage=Stage.NEW,
        status_id="",
        channel="other",
        is_ai=False,
        ai_channel="",
        source_id="",
        utm_source="",
        utm_medium="",
        utm_campaign="",
        utm_content="",
        utm_term="",
        currency_id="",
    )


def apply_fields(
    lead: Journey,
    snap: LeadSnapshot,
    statuses: Mapping[str, str],
    classification: Classification,
    channel: str,
) -> bool:
    """Copy a snapshot's fields onto the record unless it is older than the one recorded;
    returns False (nothing copied) for a stale snapshot."""
    if lead.modified_at is not None and snap.modified_at is not None:
        if snap.modified_at < lead.modified_at:
            return False
    if snap.created_at is not None:
        lead.created_at = snap.created_at
    if snap.status_id:
        lead.status_id = snap.status_id
        lead.stage = stage_for(snap.status_id, snap.status_semantic, statuses)
    lead.assigned_by_id = snap.assigned_by_id
    lead.source_id = snap.source_id[:64]
    for name in ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term"):
        setattr(lead, name, getattr(snap, name)[:255])
    lead.channel = channel
    lead.opportunity = snap.opportunity
    lead.currency_id = snap.currency_id
    if classification.is_ai and not lead.is_ai:
        lead.is_ai = True
        lead.ai_channel = classification.channel[:64]
    if snap.ai_field_value and lead.ai_tagged_at is None:
        # Tagged already (by us before a reinstall, or by a person): never write it again.
        lead.is_ai = True
        lead.ai_channel = lead.ai_channel or classification.channel or "other"
        lead.ai_tagged_at = snap.modified_at or utc_now()
    if snap.modified_at is not None:
        lead.modified_at = snap.modified_at
    lead.deleted_at = None  # found in the CRM: it exists (restored from the recycle bin)
    return True


def apply_lead_to_deal_journey(
    lead: Journey, snap: LeadSnapshot, classification: Classification
) -> bool:
    """A lead snapshot on a journey that already has its deal (see :func:`record_snapshot`)."""
    if snap.created_at is not None and (
        lead.created_at is None or snap.created_at < lead.created_at
    ):
        lead.created_at = snap.created_at
    if snap.status_id:
        lead.status_id = snap.status_id
    if classification.is_ai and not lead.is_ai:
        lead.is_ai = True
        lead.ai_channel = classification.channel[:64]
    return True


def add_moves(
    session: Session,
    portal_id: int,
    entries: Iterable[HistoryEntry],
    statuses: Mapping[str, str],
    origin: str,
) -> int:
    """Store history entries as ``JourneyStageChange`` rows not stored yet; returns how many."""
    wanted = {(e.journey_key, e.status_id, e.changed_at): e for e in entries}
    if not wanted:
        return 0
    lead_ids = {key[0] for key in wanted}
    existing = set(
        session.execute(
            select(
                JourneyStageChange.journey_key,
                JourneyStageChange.status_id,
                JourneyStageChange.changed_at,
            ).where(
                JourneyStageChange.portal_id == portal_id,
                JourneyStageChange.journey_key.in_(lead_ids),
            )
        ).tuples()
    )
    added = 0
    for key, entry in wanted.items():
        if key in existing:
            continue
        session.add(
            JourneyStageChange(
                portal_id=portal_id,
                journey_key=entry.journey_key,
                status_id=entry.status_id,
                stage=stage_for(entry.status_id, entry.semantic, statuses),
                changed_at=entry.changed_at,
                origin=ORIGIN_CREATED if entry.created else origin,
            )
        )
        added += 1
    session.flush()
    return added


def refresh_stage_times(
    session: Session, portal_id: int, leads: Iterable[Journey], now: dt.datetime | None = None
) -> None:
    """Set the stage times and the status-change first reply of ``leads`` from their stored
    moves (earliest wins; nothing is ever cleared)."""
    from b24app.leads.journeys import journey_key

    by_id = {journey_key(lead): lead for lead in leads}
    if not by_id:
        return
    rows = session.execute(
        select(
            JourneyStageChange.journey_key,
            JourneyStageChange.stage,
            JourneyStageChange.changed_at,
            JourneyStageChange.origin,
        )
        .where(JourneyStageChange.portal_id == portal_id, JourneyStageChange.journey_key.in_(by_id))
        .order_by(JourneyStageChange.changed_at, JourneyStageChange.id)
    ).tuples()
    replied: dict[int, dt.datetime] = {}
    for lead_id, stage, changed_at, origin in rows:
        lead = by_id[lead_id]
        attr = STAGE_TIME_FIELDS.get(stage)
        if attr is not None:
            current = getattr(lead, attr)
            if current is None or changed_at < current:
                setattr(lead, attr, changed_at)
        replying = stage not in (Stage.NEW, Stage.CONVERTED)
        if origin != ORIGIN_CREATED and replying and lead_id not in replied:
            replied[lead_id] = changed_at
    for lead_id, at in replied.items():
        lead = by_id[lead_id]
        moment = max(at, lead.created_at)
        if lead.first_reply_at is None or moment < lead.first_reply_at:
            lead.first_reply_at = moment
            lead.first_reply_kind = "status"


# Bitrix24's lead success status: exactly one per portal, the system status CONVERTED
# (tests/fixtures/crm_status_list_lead_STATUS.json); assumed fixed, as system statuses cannot
# be renamed.
LEAD_SUCCESS_STATUS = "CONVERTED"


def settle_conversions(session: Session, portal_id: int, journeys: Iterable[Journey]) -> int:
    """Journeys that go on on the deal their lead was converted into: the lead's move to its
    success status was the hand-over (:attr:`Stage.CONVERTED`), not a visit nor a reply.

    Every path that learns of the deal calls this, because a path that stored the lead's
    moves first could not tell: the install's lead backfill reads leads before deals, and a
    portal's default map makes the success status *came* when it has no "Пришёл" status. Moves
    re-staged here give back the *came* time (and a status first reply) they alone had set;
    returns how many moves changed."""
    linked = {j.lead_id: j for j in journeys if j.lead_id is not None and j.deal_id is not None}
    if not linked:
        return 0
    wrong = session.execute(
        select(JourneyStageChange.journey_key, JourneyStageChange.changed_at).where(
            JourneyStageChange.portal_id == portal_id,
            JourneyStageChange.journey_key.in_(linked),
            JourneyStageChange.status_id == LEAD_SUCCESS_STATUS,
            JourneyStageChange.stage != Stage.CONVERTED,
        )
    ).all()
    if not wrong:
        return 0
    changed = rows_affected(
        session.execute(
            update(JourneyStageChange)
            .where(
                JourneyStageChange.portal_id == portal_id,
                JourneyStageChange.journey_key.in_({lead_id for lead_id, _ in wrong}),
                JourneyStageChange.status_id == LEAD_SUCCESS_STATUS,
                JourneyStageChange.stage != Stage.CONVERTED,
            )
            .values(stage=Stage.CONVERTED)
            .execution_options(synchronize_session=False)
        )
    )
    touched = []
    for lead_id, at in wrong:
        journey = linked[lead_id]
        journey.came_at = None  # set again below from the moves that really say "came"
        if journey.first_reply_kind == "status" and journey.first_reply_at == max(
            at, journey.created_at
        ):
            journey.first_reply_at = None
            journey.first_reply_kind = None
        touched.append(journey)
    session.flush()
    refresh_stage_times(session, portal_id, touched)
    return changed


def record_snapshot(
    session: Session,
    portal_id: int,
    snap: LeadSnapshot,
    history: list[HistoryEntry] | None,
    statuses: Mapping[str, str],
    classification: Classification,
    channel: str,
    origin: str = "event",
) -> tuple[Journey, Outcome]:
    """Record what one fetch of a lead says: fields (unless stale), moves, stage times.

    ``history`` is the lead's ``crm.stagehistory.list``; without it (not readable) a status
    different from the recorded one counts as a move at ``MOVED_TIME``.
    """
    outcome = Outcome()
    lead = get_lead(session, portal_id, snap.lead_id)
    if lead is None:
        lead = new_lead(portal_id, snap)
        session.add(lead)
        outcome.created = True
        before: tuple[Any, ...] = ()
    else:
        before = _tracked(lead)
    previous_status = lead.status_id
    if lead.deal_id is not None:
        # The journey lives on its deal: the lead adds its status, its moves and its
        # (earlier) creation time, never the deal's stage, amount or responsible.
        outcome.stale = not apply_lead_to_deal_journey(lead, snap, classification)
    else:
        outcome.stale = not apply_fields(lead, snap, statuses, classification, channel)
    if history is None and snap.status_id and snap.status_id != previous_status:
        at = snap.moved_at or snap.modified_at or utc_now()
        history = [
            HistoryEntry(0, snap.lead_id, snap.status_id, snap.status_semantic, at,
                         created=outcome.created and at <= lead.created_at)
        ]  # fmt: skip
    session.flush()
    outcome.moves_added = add_moves(session, portal_id, history or [], statuses, origin)
    if outcome.moves_added or outcome.created:
        refresh_stage_times(session, portal_id, [lead])
    if outcome.moves_added and lead.deal_id is not None:
        settle_conversions(session, portal_id, [lead])
    if not outcome.created:
        after = _tracked(lead)
        outcome.changed = {
            n for n, a, b in zip(TRACKED_FIELDS, before, after, strict=True) if a != b
        }
    return lead, outcome


@dataclass(frozen=True)
class LeadChange:
    """What :func:`apply_snapshot` changed on the lifecycle record of one lead."""

    lead: Journey
    created: bool
    stage_changed: bool
    stale: bool
    changed: frozenset[str]
    moves_added: int


def apply_snapshot(
    session: Session,
    portal: Portal,
    snapshot: LeadSnapshot,
    origin: str = "event",
    history: list[HistoryEntry] | None = None,
) -> LeadChange:
    """Record one fetch of a lead with the portal's status mapping and AI rules (classify and
    channel included); :func:`record_snapshot` with everything looked up. Without
    ``history`` a status different from the recorded one counts as a move at ``MOVED_TIME``.
    """
    from b24app.settings import load_settings

    rules = load_settings(session, portal.id).get("ai_rules") or {}
    statuses = dict((portal.registration or {}).get("statuses") or {})
    lead, outcome = record_snapshot(
        session, portal.id, snapshot, history, statuses, classify(snapshot, rules),
        lead_channel(snapshot), origin,
    )  # fmt: skip
    return LeadChange(
        lead=lead,
        created=outcome.created,
        stage_changed=outcome.created or bool({"stage", "status_id"} & outcome.changed),
        stale=outcome.stale,
        changed=frozenset(outcome.changed),
        moves_added=outcome.moves_added,
    )


# -- deals ----------------------------------------------------------------------------------

DEAL_TRACKED = (*TRACKED_FIELDS, "deal_id", "deal_stage_id", "category_id", "contact_id")
# Where the client came from: a deal that does not say keeps what its lead said.
KEPT_FROM_LEAD = ("source_id", "utm_source", "utm_medium", "utm_campaign", "utm_content",
                  "utm_term", "channel")  # fmt: skip
JourneyCache = dict[tuple[str, int], Journey]


def record_deal(
    session: Session,
    portal_id: int,
    deal: DealSnapshot,
    history_rows: list[dict[str, Any]] | None,
    mapping: Mapping[str, str],
    rules: Mapping[str, Any],
    origin: str = "event",
    cache: JourneyCache | None = None,
) -> tuple[Journey, Outcome]:
    """Record one fetch of a deal on its journey: the one that already has the deal; else the
    one of its ``LEAD_ID`` (a converted lead: the same journey goes on); else a new journey
    started by the deal. A won deal (``S``) is *came* unless mapped otherwise and its
    ``OPPORTUNITY`` the revenue; failed stages (``F``) are *junk*.

    ``cache`` (the backfill): every journey of the round's deals and leads, preloaded by
    ``("deal", id)`` / ``("lead", id)``; a missing key means "no journey" (no query).
    """
    outcome = Outcome()
    journey, outcome.created = _deal_journey(session, portal_id, deal, cache)
    before = () if outcome.created else tuple(getattr(journey, n) for n in DEAL_TRACKED)
    previous_stage = journey.deal_stage_id
    outcome.stale = not _apply_deal_fields(journey, deal, mapping, rules)
    session.flush()
    outcome.moves_added = add_moves(
        session, portal_id, _deal_entries(journey, deal, history_rows, previous_stage, outcome),
        mapping, origin,
    )  # fmt: skip
    if outcome.moves_added or outcome.created:
        refresh_stage_times(session, portal_id, [journey])
    if cache is None:  # the backfill settles a whole round at once
        settle_conversions(session, portal_id, [journey])
    if not outcome.created:
        after = tuple(getattr(journey, n) for n in DEAL_TRACKED)
        outcome.changed = {n for n, a, b in zip(DEAL_TRACKED, before, after, strict=True) if a != b}
    return journey, outcome


def _deal_journey(
    session: Session, portal_id: int, deal: DealSnapshot, cache: JourneyCache | None
) -> tuple[Journey, bool]:
    """The deal's journey, or a new one (added to the session and the cache): (it, new)."""

    def find(kind: str, value: int) -> Journey | None:
        if cache is not None:
            return cache.get((kind, value))
        if kind == "deal":
            return find_journey(session, portal_id, deal_id=value)
        return find_journey(session, portal_id, lead_id=value)

    journey = find("deal", deal.deal_id)
    if journey is None and deal.lead_id is not None:
        journey = find("lead", deal.lead_id)
        if journey is not None and journey.deal_id not in (None, deal.deal_id):
            journey = None  # the lead lives on another deal already: this one starts anew
    if journey is not None:
        return journey, False
    lead_free = deal.lead_id is not None and find("lead", deal.lead_id) is None
    journey = Journey(
        portal_id=portal_id,
        lead_id=deal.lead_id if lead_free else None,
        deal_id=deal.deal_id,
        entity_type=EntityType.LEAD if lead_free else EntityType.DEAL,
        created_at=deal.created_at or deal.modified_at or utc_now(),
        stage=Stage.NEW, status_id="", channel="other", is_ai=False, ai_channel="",
        source_id="", utm_source="", utm_medium="", utm_campaign="", utm_content="",
        utm_term="", currency_id="", deal_stage_id="",
    )  # fmt: skip
    session.add(journey)
    if cache is not None:
        cache[("deal", deal.deal_id)] = journey
        if journey.lead_id is not None:
            cache[("lead", journey.lead_id)] = journey
    return journey, True


def _apply_deal_fields(
    journey: Journey, deal: DealSnapshot, mapping: Mapping[str, str], rules: Mapping[str, Any]
) -> bool:
    """The deal's fields on its journey; False when the fetch is older than the record."""
    journey.deal_id = deal.deal_id
    journey.contact_id = deal.contact_id or journey.contact_id
    journey.category_id = deal.category_id
    saved_status, saved_created = journey.status_id, journey.created_at
    kept = {n: getattr(journey, n) for n in KEPT_FROM_LEAD} if journey.lead_id is not None else {}
    snap = deal.as_lead_snapshot()
    fresh = apply_fields(journey, snap, mapping, classify(snap, rules), lead_channel(snap))
    if fresh:
        journey.deal_stage_id = deal.stage_id
        journey.status_id = saved_status if journey.lead_id is not None else ""
        if saved_created is not None and journey.created_at > saved_created:
            journey.created_at = saved_created  # the client first wrote on the lead
        if kept and not (deal.source_id or deal.utm_source or deal.utm_campaign):
            for name, value in kept.items():  # the deal does not say: the lead's stay
                setattr(journey, name, value)
    return fresh


def _deal_entries(
    journey: Journey,
    deal: DealSnapshot,
    history_rows: list[dict[str, Any]] | None,
    previous_stage: str,
    outcome: Outcome,
) -> list[HistoryEntry]:
    """The deal's moves under its journey's key; without a readable history, a stage other
    than the recorded one counts as a move at ``MOVED_TIME``."""
    key = journey_key(journey)
    if history_rows is not None:
        return parse_history(
            history_rows, stage_key="STAGE_ID", semantic_key="STAGE_SEMANTIC_ID", journey_key=key
        )
    if not deal.stage_id or deal.stage_id == previous_stage:
        return []
    at = deal.moved_at or deal.modified_at or utc_now()
    return [HistoryEntry(0, key, deal.stage_id, deal.stage_semantic, at,
                         created=outcome.created and at <= (deal.created_at or at))]  # fmt: skip
