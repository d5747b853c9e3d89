"""Turn "something happened to lead N / deal N" into its journey's record (events only carry
the id).

:func:`process` takes an entity kind (:mod:`b24app.leads.kinds`): it reads the entity and its
stage history in ONE ``batch`` request (``crm.item.get`` with ``useOriginalUfNames=Y`` +
``crm.stagehistory.list``), records what changed, tags a new AI-lead, and brings the
journey's SLA timers in line. An entity the CRM no longer has is marked deleted and its
timers cancelled. Work on one journey is serialised by a Redis lock keyed by its journey key,
and the fetch happens inside it, so of two jobs for the same entity the later one always
records the later state; a deal with a ``LEAD_ID`` also takes its lead's lock (lock order deal
→ lead), so the lead's job and the deal's never both start the journey.

* **Lead**: :func:`record_fetched` (under the lead's lock), then :func:`after_recorded`
  outside it: a lead converted into a deal links the deal's journey at once.
* **Deal** (:func:`apply_deal`): which journey — the one that already has the deal; else the
  one of the deal's ``LEAD_ID`` (a converted lead: the same journey goes on); else a new one
  started by the deal (:func:`b24app.leads.lifecycle.record_deal`). The deal's stage is mapped
  with its pipeline's map (:mod:`b24app.leads.pipelines`); moves out of its first stage are
  replies, exactly as lead status moves are.

:func:`process_activity` reads an activity and records an outgoing call/e-mail/chat on a lead
or a deal as its journey's reply (see :mod:`b24app.leads.lifecycle`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from b24app import logs
from b24app.bitrix.client import BitrixClient
from b24app.bitrix.errors import NotFound
from b24app.context import Services
from b24app.leads.classify import classify
from b24app.leads.classify import lead_channel
from b24app.leads.items import cancel_timers
from b24app.leads.items import lead_lock
from b24app.leads.items import sync_timers
from b24app.leads.journeys import find_journey
from b24app.leads.journeys import journey_key
from b24app.leads.kinds import DEAL
from b24app.leads.kinds import EntityKind
from b24app.leads.kinds import LEAD
from b24app.leads.lifecycle import get_lead
from b24app.leads.lifecycle import HistoryEntry
from b24app.leads.lifecycle import mark_deleted
from b24app.leads.lifecycle import record_deal
from b24app.leads.lifecycle import record_first_reply
from b24app.leads.lifecycle import record_snapshot
from b24app.leads.pipelines import learn_pipeline
from b24app.leads.pipelines import refresh_crm_mode
from b24app.leads.pipelines import stage_map
from b24app.leads.snapshot import DealSnapshot
from b24app.leads.snapshot import LeadSnapshot
from b24app.leads.snapshot import parse_time
from b24app.leads.tag_writes import tag_recorded
from b24app.settings import load_settings
from b24app.storage.models import PortalStatus
from b24app.storage.models import Stage
from b24app.storage.models import utc_now
from b24app.storage.portals import get_portal

log = logging.getLogger(__name__)

# Activity TYPE_ID: 2 call, 4 e-mail; DIRECTION 2 = outgoing.
OUTGOING = "2"
CHAT_PROVIDERS = frozenset({"IMOPENLINES_SESSION", "CRM_SMS", "CRM_WHATSAPP", "CRM_TELEGRAM"})


UNKNOWN: Any = object()  # record_fetched(converted=…): not read yet, ask the CRM
LeadFetched = tuple[LeadSnapshot, list[HistoryEntry] | None]
DealFetched = tuple[DealSnapshot, list[dict[str, Any]] | None]


def fetch(client: BitrixClient, kind: EntityKind, entity_id: int, field: str) -> Any:
    """One entity and its raw history rows in one ``batch`` request; None if it is gone."""
    return kind.read(client.batch(kind.commands(entity_id)), entity_id, field)


def lead_fetched(read: tuple[Any, list[Any] | None] | None) -> LeadFetched | None:
    """A lead read by :meth:`~b24app.leads.kinds.EntityKind.read` with its history parsed
    (None when it could not be read: the caller falls back on ``MOVED_TIME``)."""
    if read is None:
        return None
    snap, rows = read
    return snap, (LEAD.history(rows) if rows is not None else None)


@dataclass(frozen=True)
class _Portal:
    portal_id: int
    registration: dict[str, Any]
    crm_mode: str
    rules: dict[str, Any]


def _portal(services: Services, member_id: str) -> _Portal | None:
    with services.db() as session:
        portal = get_portal(session, member_id)
        if portal is None or portal.status == PortalStatus.UNINSTALLED:
            return None
        rules = load_settings(session, portal.id).get("ai_rules") or {}
        return _Portal(portal.id, dict(portal.registration or {}), portal.crm_mode or "classic",
                       rules)  # fmt: skip


def process(
    kind: EntityKind,
    services: Services,
    member_id: str,
    entity_id: int,
    *,
    deleted: bool = False,
    auto_tag: bool = True,
) -> str:
    """Record the current state of one lead or deal; returns what happened (for logs and
    tests): ``created``, ``linked`` (a converted lead's journey got its deal), ``changed``,
    ``unchanged``, ``stale``, ``deleted``, ``gone`` or ``no_portal``.

    ``deleted`` is set for ``ONCRMLEADDELETE`` / ``ONCRMDEALDELETE`` (no fetch: the CRM would
    say "not found").
    """
    portal = _portal(services, member_id)
    if portal is None:
        return "no_portal"
    record = _RECORD[kind.name]
    bound = logs.bind(member_id=member_id, **{f"{kind.name}_id": entity_id})
    with bound, lead_lock(services, portal.portal_id, kind.key(entity_id)):
        fetched = None
        if not deleted:
            client = services.bitrix(member_id)
            fetched = fetch(client, kind, entity_id, kind.field(portal.registration))
        outcome, after = record(services, member_id, portal, entity_id, fetched, auto_tag)
    if after is not None:
        after()
    return outcome


After = Callable[[], None] | None


def _record_lead(
    services: Services, member_id: str, portal: _Portal, lead_id: int, read: Any, auto_tag: bool
) -> tuple[str, After]:
    statuses: dict[str, str] = dict(portal.registration.get("statuses") or {})
    recorded = record_fetched(
        services, member_id, portal.portal_id, lead_id, lead_fetched(read), statuses,
        portal.rules, portal.crm_mode, auto_tag=auto_tag,
    )  # fmt: skip

    def after() -> None:  # outside the lead's lock: a conversion takes the deal's lock
        after_recorded(services, member_id, portal.portal_id, lead_id, recorded, portal.crm_mode)
        if recorded.tag_channel is not None:
            tag_recorded(services, portal.portal_id, lead_id, recorded.tag_channel, None)

    return recorded.outcome, after


def _record_deal(
    services: Services, member_id: str, portal: _Portal, deal_id: int, read: Any, auto_tag: bool
) -> tuple[str, After]:
    if read is None or read[0].lead_id is None:
        return apply_deal(services, member_id, deal_id, read, auto_tag=auto_tag), None
    with lead_lock(services, portal.portal_id, read[0].lead_id):
        return apply_deal(services, member_id, deal_id, read, auto_tag=auto_tag), None


_RECORD = {LEAD.name: _record_lead, DEAL.name: _record_deal}


@dataclass(frozen=True)
class Recorded:
    """What recording one fetched lead gave: the outcome (see :func:`process`), the AI
    channel when the lead still needs its tag, and what must happen after the lead's lock is
    released (a conversion into a deal: the deal's processing takes the lead's lock too)."""

    outcome: str
    tag_channel: str | None = None
    converted_into: int | None = None
    first_sight: bool = False
    status_semantic: str = ""

    def rechecks_mode(self, crm_mode: str) -> bool:
        """A lead left unconverted on a "simple" portal: the admin may have switched back."""
        return self.first_sight and crm_mode == "simple" and self.status_semantic != "S"

    def has_follow_up(self, crm_mode: str) -> bool:
        return (
            self.tag_channel is not None
            or self.converted_into is not None
            or self.rechecks_mode(crm_mode)
        )


def record_fetched(
    services: Services,
    member_id: str,
    portal_id: int,
    lead_id: int,
    fetched: LeadFetched | None,
    statuses: dict[str, str],
    rules: dict[str, Any],
    crm_mode: str,
    *,
    auto_tag: bool = True,
    converted: int | None | Any = UNKNOWN,
) -> Recorded:
    """Record what was read about one lead (None = the CRM no longer has it), under the
    caller's lead lock. The caller then runs :func:`after_recorded` (outside the lock) and
    writes the AI tag, alone or batched.

    ``converted``: the deal the lead was converted into when the caller read it already
    (None: none), else :data:`UNKNOWN` and a converted lead costs a ``crm.deal.list``."""
    if fetched is None:
        with services.db() as session:
            marked = mark_deleted(session, portal_id, lead_id)
        if marked:
            cancel_timers(services, portal_id, lead_id)
            log.info("lead deleted")
        return Recorded("deleted" if marked else "gone")
    snap, history = fetched
    converted_into = None
    if snap.status_semantic == "S":
        # Converted into a deal: that status is the hand-over, not a reply nor a visit.
        converted_into = (
            converted_deal(services.bitrix(member_id), lead_id)
            if converted is UNKNOWN
            else converted
        )
        if converted_into is not None:
            statuses = {**statuses, Stage.CONVERTED: snap.status_id}
    with services.db() as session:
        seen = get_lead(session, portal_id, lead_id)
        # First sight of the lead itself (its deal's event may have started the journey).
        first_sight = seen is None or not seen.status_id
        lead, outcome = record_snapshot(
            session, portal_id, snap, history, statuses, classify(snap, rules), lead_channel(snap)
        )
        wants_tag = (
            auto_tag and lead.is_ai and lead.ai_tagged_at is None and not snap.ai_field_value
        )
        ai_channel = lead.ai_channel or "other"
    if outcome.lifecycle_changed:
        sync_timers(services, portal_id, lead_id)
    if outcome.changed:
        log.info("lead changed: %s", ",".join(sorted(outcome.changed)))
    return Recorded(
        _result(outcome.created, outcome.changed, outcome.stale),
        ai_channel if wants_tag else None,
        converted_into,
        first_sight,
        snap.status_semantic,
    )


def _result(created: bool, changed: set[str], stale: bool) -> str:
    if created:
        return "created"
    if changed:
        return "changed"
    return "stale" if stale else "unchanged"


def after_recorded(
    services: Services,
    member_id: str,
    portal_id: int,
    lead_id: int,
    recorded: Recorded,
    crm_mode: str,
) -> None:
    """Follow a conversion into its deal and re-read the CRM mode when the lead contradicts
    it; outside the lead's lock."""
    if recorded.converted_into is not None:
        # Converted on arrival while we think "classic": the admin may have switched to simple.
        recheck = recorded.first_sight and crm_mode != "simple"
        after_conversion(services, member_id, recorded.converted_into, first_sight=recheck)
    elif recorded.rechecks_mode(crm_mode):
        refresh_crm_mode(services, member_id)


def apply_deal(
    services: Services,
    member_id: str,
    deal_id: int,
    fetched: DealFetched | None,
    *,
    auto_tag: bool = True,
    origin: str = "event",
    tags: dict[int, str] | None = None,
) -> str:
    """Record a fetched deal (None: the CRM no longer has it) under the caller's locks;
    returns what happened (see :func:`process`).

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
    if not had_journey and not outcome.created:
        return "linked"
    if outcome.changed:
        log.info("deal changed: %s", ",".join(sorted(outcome.changed)))
    return _result(outcome.created, outcome.changed, outcome.stale)


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
    process(DEAL, services, member_id, deal_id)


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
    process(DEAL, services, member_id, deal_id)
    with services.db() as session:
        known = find_journey(session, portal_id, deal_id=deal_id)
        return journey_key(known) if known is not None else -deal_id


def reply_kind(activity: dict[str, Any]) -> str | None:
    """``call``/``email``/``chat`` when the activity is an outgoing reply, else None."""
    if str(activity.get("DIRECTION") or "") != OUTGOING:
        return None
    type_id = str(activity.get("TYPE_ID") or "")
    provider = str(activity.get("PROVIDER_ID") or "").upper()
    if type_id == "2":
        return "call" if str(activity.get("COMPLETED") or "N").upper() == "Y" else None
    if type_id == "4":
        return "email"
    if provider in CHAT_PROVIDERS:
        return "chat"
    return None


def process_activity(services: Services, member_id: str, activity_id: int) -> str:
    """Record an outgoing call/e-mail/chat activity on a lead or a deal as its journey's
    reply; returns ``replied``, ``not_first``, ``not_a_reply``, ``not_a_lead``, ``gone`` or
    ``no_portal``."""
    with services.db() as session:
        portal = get_portal(session, member_id)
        if portal is None or portal.status == PortalStatus.UNINSTALLED:
            return "no_portal"
        portal_id = portal.id
    try:
        activity = services.bitrix(member_id).call("crm.activity.get", {"id": activity_id})
    except NotFound:
        return "gone"
    if not isinstance(activity, dict):
        return "gone"
    owner_type = str(activity.get("OWNER_TYPE_ID") or "")
    if owner_type not in ("1", "2"):  # a lead, or a deal (its journey's reply)
        return "not_a_lead"
    kind = reply_kind(activity)
    if kind is None:
        return "not_a_reply"
    try:
        owner_id = int(str(activity.get("OWNER_ID")))
    except ValueError:
        return "not_a_lead"
    at = parse_time(activity.get("CREATED")) or parse_time(activity.get("START_TIME"))
    if at is None:
        return "not_a_reply"
    key = deal_journey_key(services, member_id, owner_id) if owner_type == "2" else owner_id
    with logs.bind(member_id=member_id, lead_id=key):
        return _record_reply(services, member_id, portal_id, key, at, kind)


def _record_reply(
    services: Services, member_id: str, portal_id: int, key: int, at: Any, kind: str
) -> str:
    with services.db() as session:
        known = get_lead(session, portal_id, key) is not None
    if not known and key > 0:
        process(LEAD, services, member_id, key)
    with lead_lock(services, portal_id, key), services.db() as session:
        before = get_lead(session, portal_id, key)
        previous = before.first_reply_at if before is not None else None
        first = record_first_reply(session, portal_id, key, at, kind)
        after = get_lead(session, portal_id, key)
        moved = after is not None and after.first_reply_at != previous
    if first or moved:
        sync_timers(services, portal_id, key)
        log.info("first reply recorded (%s)", kind)
        return "replied"
    return "not_first"
