"""Deals into client journeys: "something happened to deal N" → the journey's record.

The fetch is a pair, like the lead path, so a batching event job can put many deals into one
``batch`` request: :func:`deal_commands` gives the commands for one deal (``crm.item.get``
entityTypeId 2 + its ``crm.stagehistory.list``), :func:`read_deal` reads their answers back
out of a :class:`~b24app.bitrix.client.BatchResult`, :func:`apply_deal` records the result.

Which journey: the one that already has the deal; else the one of the deal's ``LEAD_ID`` (a
converted lead: the same journey goes on); else a new journey started by the deal. The deal's
stage is mapped with its pipeline's map (``registration["deal_stages"]`` overridden by the
settings' ``deal_stage_map``); a won deal (``S``) is *came* unless mapped otherwise and its
``OPPORTUNITY`` is the revenue; failed stages (``F``) are *junk*. Moves out of the deal's
first stage are replies, exactly as lead status moves are (the creation is not).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from b24app import logs
from b24app.bitrix.client import BatchResult
from b24app.bitrix.client import BitrixClient
from b24app.context import Services
from b24app.install.stages import crm_mode
from b24app.install.stages import map_pipeline
from b24app.install.stages import stage_entity
from b24app.install.stages import stage_list
from b24app.leads.classify import classify
from b24app.leads.classify import lead_channel
from b24app.leads.deal_snapshot import DealSnapshot
from b24app.leads.deal_snapshot import HISTORY_SELECT
from b24app.leads.deal_snapshot import normalise_deal
from b24app.leads.deal_snapshot import parse_deal_history
from b24app.leads.items import cancel_timers
from b24app.leads.items import item_commands
from b24app.leads.items import lead_lock
from b24app.leads.items import read_item
from b24app.leads.items import sync_timers
from b24app.leads.journeys import find_journey
from b24app.leads.journeys import journey_key
from b24app.leads.lifecycle import add_moves
from b24app.leads.lifecycle import apply_fields
from b24app.leads.lifecycle import HistoryEntry
from b24app.leads.lifecycle import Outcome
from b24app.leads.lifecycle import refresh_stage_times
from b24app.leads.lifecycle import settle_conversions
from b24app.leads.lifecycle import TRACKED_FIELDS
from b24app.leads.tag_writes import DEFAULT_LEAD_FIELD
from b24app.leads.tag_writes import tag_recorded
from b24app.settings import load_settings
from b24app.storage.models import EntityType
from b24app.storage.models import Journey
from b24app.storage.models import PortalStatus
from b24app.storage.models import Stage
from b24app.storage.models import utc_now
from b24app.storage.portals import get_portal

log = logging.getLogger(__name__)

DEAL_TRACKED = (*TRACKED_FIELDS, "deal_id", "deal_stage_id", "category_id", "contact_id")
# Where the client came from: a deal that does not say keeps what its lead said.
KEPT_FROM_LEAD = ("source_id", "utm_source", "utm_medium", "utm_campaign", "utm_content",
                  "utm_term", "channel")  # fmt: skip
Fetched = tuple[DealSnapshot, list[dict[str, Any]] | None]


def deal_commands(deal_id: int, prefix: str = "") -> dict[str, tuple[str, dict[str, Any]]]:
    """The ``batch`` commands that read one deal and its stage history."""
    return item_commands(2, deal_id, f"{prefix}deal", f"{prefix}history", HISTORY_SELECT)


def read_deal(
    answer: BatchResult, deal_id: int, deal_field: str, prefix: str = ""
) -> Fetched | None:
    """The deal and its raw history rows from a batch answer; None if the deal is gone.

    The history is None when it could not be read (a move then counts at ``MOVED_TIME``).
    """
    read = read_item(answer, f"{prefix}deal", f"{prefix}history")
    if read is None:
        return None
    item, found = read
    rows: list[dict[str, Any]] | None = None
    if found is not None:
        rows = [r for r in found if str(r.get("OWNER_ID")) == str(deal_id)]
    return normalise_deal(item, deal_field), rows


def fetch_deal(client: BitrixClient, deal_id: int, deal_field: str) -> Fetched | None:
    """One deal and its history in one ``batch`` request."""
    return read_deal(client.batch(deal_commands(deal_id)), deal_id, deal_field)


def stage_map(
    registration: Mapping[str, Any], settings: Mapping[str, Any], category: int
) -> dict[str, str]:
    """The stage map of one pipeline: install defaults, then the admin's choices."""
    key = str(category)
    mapping = dict(((registration.get("deal_stages") or {}).get(key)) or {})
    override = (settings.get("deal_stage_map") or {}).get(key) or {}
    for stage, stage_id in override.items():
        if stage_id == "none":
            mapping.pop(stage, None)  # the admin says: no stage of this pipeline means it
        elif stage_id and stage_id != "default":
            mapping[stage] = str(stage_id)
    return mapping


def record_deal(
    session: Any,
    portal_id: int,
    deal: DealSnapshot,
    history_rows: list[dict[str, Any]] | None,
    mapping: Mapping[str, str],
    rules: Mapping[str, Any],
    origin: str = "event",
    cache: dict[tuple[str, int], Journey] | None = None,
) -> tuple[Journey, Outcome]:
    """Record one fetch of a deal on its journey (see the module docstring).

    ``cache`` (the backfill): every journey of the round's deals and leads, preloaded by
    ``("deal", id)`` / ``("lead", id)``; a missing key means "no journey" (no query).
    """

    def find(kind: str, value: int) -> Journey | None:
        if cache is not None:
            return cache.get((kind, value))
        if kind == "deal":
            return find_journey(session, portal_id, deal_id=value)
        return find_journey(session, portal_id, lead_id=value)

    outcome = Outcome()
    journey = find("deal", deal.deal_id)
    if journey is None and deal.lead_id is not None:
        journey = find("lead", deal.lead_id)
        if journey is not None and journey.deal_id not in (None, deal.deal_id):
            journey = None  # the lead lives on another deal already: this one starts anew
    lead_free = deal.lead_id is not None and find("lead", deal.lead_id) is None
    before: tuple[Any, ...] = ()
    if journey is None:
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
        outcome.created = True
        if cache is not None:
            cache[("deal", deal.deal_id)] = journey
            if journey.lead_id is not None:
                cache[("lead", journey.lead_id)] = journey
    else:
        before = tuple(getattr(journey, n) for n in DEAL_TRACKED)
    journey.deal_id = deal.deal_id
    journey.contact_id = deal.contact_id or journey.contact_id
    journey.category_id = deal.category_id
    previous_stage = journey.deal_stage_id
    saved_status, saved_created = journey.status_id, journey.created_at
    kept = {n: getattr(journey, n) for n in KEPT_FROM_LEAD} if journey.lead_id is not None else {}
    snap = deal.as_lead_snapshot()
    classification = classify(snap, rules)
    fresh = apply_fields(journey, snap, mapping, classification, lead_channel(snap))
    outcome.stale = not fresh
    if fresh:
        journey.deal_stage_id = deal.stage_id
        journey.status_id = saved_status if journey.lead_id is not None else ""
        if saved_created is not None and journey.created_at > saved_created:
            journey.created_at = saved_created  # the client first wrote on the lead
        if kept and not (deal.source_id or deal.utm_source or deal.utm_campaign):
            for name, value in kept.items():  # the deal does not say: the lead's stay
                setattr(journey, name, value)
    session.flush()
    key = journey_key(journey)
    entries: list[HistoryEntry] | None = (
        parse_deal_history(history_rows, key) if history_rows is not None else None
    )
    if entries is None and deal.stage_id and deal.stage_id != previous_stage:
        at = deal.moved_at or deal.modified_at or utc_now()
        entries = [HistoryEntry(0, key, deal.stage_id, deal.stage_semantic, at,
                                created=outcome.created and at <= (deal.created_at or at))]  # fmt: skip
    outcome.moves_added = add_moves(session, portal_id, entries or [], mapping, origin)
    if outcome.moves_added or outcome.created:
        refresh_stage_times(session, portal_id, [journey])
    if cache is None:  # the backfill settles a whole round at once
        settle_conversions(session, portal_id, [journey])
    if not outcome.created:
        after = tuple(getattr(journey, n) for n in DEAL_TRACKED)
        outcome.changed = {n for n, a, b in zip(DEAL_TRACKED, before, after, strict=True) if a != b}
    return journey, outcome


def apply_deal(
    services: Services,
    member_id: str,
    deal_id: int,
    fetched: Fetched | None,
    *,
    auto_tag: bool = True,
    origin: str = "event",
    tags: dict[int, str] | None = None,
) -> str:
    """Record a fetched deal (None: the CRM no longer has it); returns what happened:
    ``created``, ``linked`` (a converted lead's journey got its deal), ``changed``,
    ``unchanged``, ``stale``, ``deleted``, ``gone`` or ``no_portal``.

    ``tags``: the coalesced intake collects the AI tag to write (journey key → channel) and
    writes the round's tags in one batch instead of one request per deal here."""
    with services.db() as session:
        portal = get_portal(session, member_id)
        if portal is None or portal.status == PortalStatus.UNINSTALLED:
            return "no_portal"
        portal_id = portal.id
        registration = dict(portal.registration or {})
        settings = load_settings(session, portal_id)
    if fetched is None:
        return mark_deal_deleted(services, portal_id, deal_id)
    deal, rows = fetched
    if str(deal.category_id) not in (registration.get("deal_stages") or {}):
        registration = learn_pipeline(services, member_id, deal.category_id)
    mapping = stage_map(registration, settings, deal.category_id)
    with services.db() as session:
        had_journey = find_journey(session, portal_id, deal_id=deal.deal_id) is not None
        journey, outcome = record_deal(
            session, portal_id, deal, rows, mapping, settings.get("ai_rules") or {}, origin
        )
        key = journey_key(journey)
        wants_tag = (
            auto_tag and journey.is_ai and journey.ai_tagged_at is None and not deal.ai_field_value
        )
        ai_channel = journey.ai_channel or "other"
    if outcome.lifecycle_changed or not had_journey:
        sync_timers(services, portal_id, key)
    if wants_tag and tags is not None:
        tags[key] = ai_channel
    elif wants_tag:
        tag_recorded(services, portal_id, key, ai_channel, None)
    if outcome.created:
        return "created"
    if not had_journey:
        return "linked"
    if outcome.changed:
        log.info("deal changed: %s", ",".join(sorted(outcome.changed)))
        return "changed"
    return "stale" if outcome.stale else "unchanged"


def mark_deal_deleted(services: Services, portal_id: int, deal_id: int) -> str:
    """A deleted deal ends a journey it started; a converted lead's journey loses its deal."""
    with services.db() as session:
        journey = find_journey(session, portal_id, deal_id=deal_id)
        if journey is None or journey.deleted_at is not None:
            return "gone"
        key = journey_key(journey)
        journey.deleted_at = utc_now()
    cancel_timers(services, portal_id, key)
    log.info("deal deleted")
    return "deleted"


def process_deal(
    services: Services,
    member_id: str,
    deal_id: int,
    *,
    deleted: bool = False,
    auto_tag: bool = True,
) -> str:
    """Fetch one deal and record it (``ONCRMDEALADD``/``UPDATE``; ``deleted`` for DELETE).

    Work on a deal is serialised by a Redis lock per deal, fetch included (of two jobs the
    later one records the later state); a deal with a ``LEAD_ID`` also takes its lead's lock,
    so the lead's job and the deal's never both start the journey.
    """
    with services.db() as session:
        portal = get_portal(session, member_id)
        if portal is None or portal.status == PortalStatus.UNINSTALLED:
            return "no_portal"
        portal_id = portal.id
        deal_field = str((portal.registration or {}).get("deal_field") or DEFAULT_LEAD_FIELD)
    with logs.bind(member_id=member_id, deal_id=deal_id), lead_lock(services, portal_id, -deal_id):
        if deleted:
            return apply_deal(services, member_id, deal_id, None)
        fetched = fetch_deal(services.bitrix(member_id), deal_id, deal_field)
        if fetched is not None and fetched[0].lead_id is not None:
            with lead_lock(services, portal_id, fetched[0].lead_id):
                return apply_deal(services, member_id, deal_id, fetched, auto_tag=auto_tag)
        return apply_deal(services, member_id, deal_id, fetched, auto_tag=auto_tag)


def converted_deal(client: BitrixClient, lead_id: int) -> int | None:
    """The deal a lead was converted into (``LEAD_ID`` on the deal), or None."""
    rows = client.call(
        "crm.deal.list", {"filter": {"LEAD_ID": lead_id}, "select": ["ID"], "order": {"ID": "ASC"}}
    )
    for row in rows or []:
        try:
            return int(str(row.get("ID")))
        except (TypeError, ValueError):
            continue
    return None


def after_conversion(
    services: Services, member_id: str, deal_id: int, *, first_sight: bool
) -> None:
    """A lead seen converted: link its deal now (the deal's own event may come later), and
    with ``first_sight`` (it arrived already converted on a portal we think is classic)
    re-read the CRM mode: simple mode converts every new lead at once."""
    if first_sight:
        refresh_crm_mode(services, member_id)
    process_deal(services, member_id, deal_id)


def refresh_crm_mode(services: Services, member_id: str) -> str | None:
    """Read ``crm.settings.mode.get`` and store it; returns the mode (None: portal gone)."""
    with services.db() as session:
        portal = get_portal(session, member_id)
        if portal is None or portal.status != PortalStatus.ACTIVE:
            return None
    mode = crm_mode(services.bitrix(member_id).call("crm.settings.mode.get", {}))
    with services.db() as session:
        portal = get_portal(session, member_id)
        if portal is not None and portal.crm_mode != mode:
            log.info("CRM mode is now %s", mode)
            portal.crm_mode = mode
    return mode


def refresh_all_crm_modes() -> int:
    """Periodic job (daily): re-read the CRM mode of every active portal; returns how many
    changed."""
    from sqlalchemy import select

    from b24app import context
    from b24app.bitrix.errors import BitrixError
    from b24app.bitrix.errors import PortalUnavailable
    from b24app.storage.models import Portal

    services = context.current()
    with services.db() as session:
        portals = list(
            session.execute(
                select(Portal.member_id, Portal.crm_mode).where(
                    Portal.status == PortalStatus.ACTIVE
                )
            ).tuples()
        )
    changed = 0
    for member_id, before in portals:
        try:
            changed += int(refresh_crm_mode(services, member_id) not in (None, before))
        except (BitrixError, PortalUnavailable) as exc:
            log.warning("reading the CRM mode of %s failed: %s", member_id, exc)
    return changed


def learn_pipeline(services: Services, member_id: str, category_id: int) -> dict[str, Any]:
    """A pipeline created after install: read its stages, store the default map (one call);
    returns the portal's updated registration."""
    rows = services.bitrix(member_id).call(
        "crm.status.list",
        {"filter": {"ENTITY_ID": stage_entity(category_id)}, "order": {"SORT": "ASC"}},
    )
    stages = [r for r in rows or [] if isinstance(r, dict)]
    mapping = map_pipeline(stages)
    with services.db() as session:
        portal = get_portal(session, member_id)
        if portal is None:
            return {}
        registration = dict(portal.registration or {})
        maps = dict(registration.get("deal_stages") or {})
        maps[str(category_id)] = mapping
        registration["deal_stages"] = maps
        lists = dict(registration.get("deal_stage_list") or {})
        lists[str(category_id)] = stage_list(stages)
        registration["deal_stage_list"] = lists
        portal.registration = registration
        return registration


def deal_journey_key(services: Services, member_id: str, deal_id: int) -> int:
    """The journey key of a deal (a robot ran on it): read the deal first when the app has not
    seen it yet, so a converted lead's deal joins the lead's journey; ``-deal_id`` when the
    deal cannot be read."""
    with services.db() as session:
        portal = get_portal(session, member_id)
        if portal is None:
            return -deal_id
        portal_id = portal.id
        known = find_journey(session, portal_id, deal_id=deal_id)
        if known is not None:
            return journey_key(known)
    process_deal(services, member_id, deal_id)
    with services.db() as session:
        known = find_journey(session, portal_id, deal_id=deal_id)
        return journey_key(known) if known is not None else -deal_id
