"""Turn "something happened to lead N" into the lifecycle record (events only carry the id).

:func:`process_lead` reads the lead and its stage history in ONE ``batch`` request
(``crm.item.get`` with ``useOriginalUfNames=Y`` + ``crm.stagehistory.list`` for the lead),
records what changed, tags a new AI-lead, and brings the lead's SLA timers in line. A lead
the CRM no longer has is marked deleted and its timers cancelled. Work on one lead is
serialised by a Redis lock, and the fetch happens inside it, so of two jobs for the same
lead the later one always records the later state.

:func:`process_activity` reads an activity and records an outgoing call/e-mail/chat on a
lead as a reply (see :mod:`b24app.leads.lifecycle`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from b24app import logs
from b24app.bitrix.client import BatchResult
from b24app.bitrix.client import BitrixClient
from b24app.bitrix.errors import NotFound
from b24app.context import Services
from b24app.leads.classify import classify
from b24app.leads.classify import lead_channel
from b24app.leads.deal_intake import after_conversion
from b24app.leads.deal_intake import converted_deal
from b24app.leads.deal_intake import deal_journey_key
from b24app.leads.deal_intake import refresh_crm_mode
from b24app.leads.items import cancel_timers
from b24app.leads.items import item_commands
from b24app.leads.items import lead_lock
from b24app.leads.items import read_item
from b24app.leads.items import sync_timers
from b24app.leads.lifecycle import get_lead
from b24app.leads.lifecycle import HistoryEntry
from b24app.leads.lifecycle import mark_deleted
from b24app.leads.lifecycle import parse_history
from b24app.leads.lifecycle import record_first_reply
from b24app.leads.lifecycle import record_snapshot
from b24app.leads.snapshot import LeadSnapshot
from b24app.leads.snapshot import normalise_lead
from b24app.leads.snapshot import parse_time
from b24app.leads.tag_writes import DEFAULT_LEAD_FIELD
from b24app.leads.tag_writes import tag_recorded
from b24app.settings import load_settings
from b24app.storage.models import PortalStatus
from b24app.storage.models import Stage
from b24app.storage.portals import get_portal

log = logging.getLogger(__name__)

HISTORY_SELECT = ["ID", "TYPE_ID", "OWNER_ID", "CREATED_TIME", "STATUS_ID", "STATUS_SEMANTIC_ID"]
# Activity TYPE_ID: 2 call, 4 e-mail; DIRECTION 2 = outgoing.
OUTGOING = "2"
CHAT_PROVIDERS = frozenset({"IMOPENLINES_SESSION", "CRM_SMS", "CRM_WHATSAPP", "CRM_TELEGRAM"})


UNKNOWN: Any = object()  # record_fetched(converted=…): not read yet, ask the CRM


def lead_commands(lead_id: int) -> dict[str, tuple[str, dict[str, Any]]]:
    """The ``batch`` commands that read one lead and its stage history (two commands, so
    25 leads fit in one request; see :mod:`b24app.leads.coalesce`)."""
    return item_commands(1, lead_id, "lead", "history", HISTORY_SELECT)


def fetch_lead(
    client: BitrixClient, lead_id: int, lead_field: str
) -> tuple[LeadSnapshot, list[HistoryEntry] | None] | None:
    """The lead and its stage history in one ``batch`` request; None if the lead is gone.

    The history is None when it could not be read (the caller then falls back on
    ``MOVED_TIME``).
    """
    return read_lead(client.batch(lead_commands(lead_id)), lead_id, lead_field)


def read_lead(
    answer: BatchResult, lead_id: int, lead_field: str
) -> tuple[LeadSnapshot, list[HistoryEntry] | None] | None:
    """The answers to :func:`lead_commands` → (snapshot, history) or None if gone."""
    read = read_item(answer, "lead", "history")
    if read is None:
        return None
    item, rows = read
    history: list[HistoryEntry] | None = None
    if rows is not None:
        history = [e for e in parse_history(rows) if e.lead_id == lead_id]
    return normalise_lead(item, lead_field), history


def process_lead(
    services: Services,
    member_id: str,
    lead_id: int,
    *,
    deleted: bool = False,
    auto_tag: bool = True,
) -> str:
    """Record the current state of one lead; returns what happened (for logs and tests):
    ``created``, ``changed``, ``unchanged``, ``stale``, ``deleted``, ``gone`` or
    ``no_portal``.

    ``deleted`` is set for ``ONCRMLEADDELETE`` (no fetch: the CRM would say "not found").
    """
    with services.db() as session:
        portal = get_portal(session, member_id)
        if portal is None or portal.status == PortalStatus.UNINSTALLED:
            return "no_portal"
        portal_id = portal.id
        registration = dict(portal.registration or {})
        crm_mode = portal.crm_mode or "classic"
        rules = load_settings(session, portal_id).get("ai_rules") or {}
    statuses: dict[str, str] = dict(registration.get("statuses") or {})
    lead_field = str(registration.get("lead_field") or DEFAULT_LEAD_FIELD)
    with logs.bind(member_id=member_id, lead_id=lead_id), lead_lock(services, portal_id, lead_id):
        fetched = None if deleted else fetch_lead(services.bitrix(member_id), lead_id, lead_field)
        recorded = record_fetched(
            services, member_id, portal_id, lead_id, fetched, statuses, rules, crm_mode,
            auto_tag=auto_tag,
        )  # fmt: skip
    after_recorded(services, member_id, portal_id, lead_id, recorded, crm_mode)
    if recorded.tag_channel is not None:
        tag_recorded(services, portal_id, lead_id, recorded.tag_channel, None)
    return recorded.outcome


@dataclass(frozen=True)
class Recorded:
    """What recording one fetched lead gave: the outcome (see :func:`process_lead`), the AI
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
    fetched: tuple[LeadSnapshot, list[HistoryEntry] | None] | None,
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
    classification = classify(snap, rules)
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
            session, portal_id, snap, history, statuses, classification, lead_channel(snap)
        )
        wants_tag = (
            auto_tag and lead.is_ai and lead.ai_tagged_at is None and not snap.ai_field_value
        )
        ai_channel = lead.ai_channel or "other"
    if outcome.lifecycle_changed:
        sync_timers(services, portal_id, lead_id)
    if outcome.created:
        result = "created"
    elif outcome.changed:
        log.info("lead changed: %s", ",".join(sorted(outcome.changed)))
        result = "changed"
    else:
        result = "stale" if outcome.stale else "unchanged"
    return Recorded(
        result,
        ai_channel if wants_tag else None,
        converted_into,
        first_sight,
        snap.status_semantic,
    )


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
    """Record an outgoing call/e-mail/chat activity on a lead as a reply; returns
    ``replied``, ``not_first``, ``not_a_reply``, ``not_a_lead``, ``gone`` or ``no_portal``."""
    with services.db() as session:
        portal = get_portal(session, member_id)
        if portal is None or portal.status == PortalStatus.UNINSTALLED:
            return "no_portal"
        portal_id = portal.id
    client = services.bitrix(member_id)
    try:
        activity = client.call("crm.activity.get", {"id": activity_id})
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
        lead_id = int(str(activity.get("OWNER_ID")))
    except ValueError:
        return "not_a_lead"
    at = parse_time(activity.get("CREATED")) or parse_time(activity.get("START_TIME"))
    if at is None:
        return "not_a_reply"
    if owner_type == "2":
        lead_id = deal_journey_key(services, member_id, lead_id)
    with logs.bind(member_id=member_id, lead_id=lead_id):
        with services.db() as session:
            known = get_lead(session, portal_id, lead_id) is not None
        if not known and lead_id > 0:
            process_lead(services, member_id, lead_id)
        with lead_lock(services, portal_id, lead_id), services.db() as session:
            before = get_lead(session, portal_id, lead_id)
            previous = before.first_reply_at if before is not None else None
            first = record_first_reply(session, portal_id, lead_id, at, kind)
            after = get_lead(session, portal_id, lead_id)
            moved = after is not None and after.first_reply_at != previous
        if first or moved:
            sync_timers(services, portal_id, lead_id)
            log.info("first reply recorded (%s)", kind)
            return "replied"
        return "not_first"
