"""Coalesced intake: the waiting events of one portal are fetched together (issue 14).

Bitrix24 events carry only an id, so each one costs a read. One at a time, an import of
5,000 leads costs 5,000 requests — 40 minutes of a portal's 2 req/s bucket. Here the event
job does not fetch: it adds ``(entity type, id)`` to the portal's *pending* set and then tries
to become the portal's *drainer*. The drainer (one per portal, a Redis lock) takes the
oldest pending items, as many as fit in 50 ``batch`` commands (a lead is two — the item and
its stage history — so 25 leads per request), reads them in ONE request, records each, and
repeats until nothing is pending. Follow-up writes (AI tags) go out batched too: collected
over rounds and written 50 per request (fields first, then comments) when 50 are waiting
or the drainer stops.

* **No added latency**: a single event on an idle portal makes its own job the drainer,
  which fetches at once — the same one request as before.
* **Bursts**: while the drainer waits for the bucket, events pile up and the next round
  takes 25 of them: 5,000 events cost about 5,000 / 25 requests plus the rounds that ran
  before the backlog built up.
* **Per-item semantics kept**: each item is fetched and recorded under its own lock (the one
  :func:`b24app.leads.intake.process` takes); a locked item waits for the next round.
  Each push bumps the item's counter; the drainer removes an item only if its counter did
  not move while it was being read, so an event that arrives during the fetch gets a fresh
  read afterwards (the later event always records the later state). Duplicates of a waiting
  item are one item. A lead the CRM no longer has is marked deleted, as before.
* **Crash safety**: items leave the pending set only after they are recorded. A drainer that
  dies leaves them there; its lock expires and the next event, or the cron sweep
  :func:`drain_waiting_portals` (every minute), starts a new drainer.
* **Fairness**: a drainer works for at most :data:`SLICE_SECONDS`, then queues a
  continuation job and frees its worker, so one portal's import does not hold a worker
  forever; all its REST calls are :data:`~b24app.bitrix.budget.Priority.BULK`, so robot
  answers and SLA reminders of the same portal go first in the bucket. Before each round
  the drainer asks the bucket how long a bulk read would wait; beyond
  :data:`YIELD_SECONDS` it frees its worker and schedules its continuation for when the
  slot is due (:func:`schedule_drain`); meanwhile event jobs only queue their items.

Entity types plug in with :func:`register`: a ``commands(id)`` function (the batch commands
that read one item, keyed by local names) and an ``apply(ctx, id, answer)`` function (record
one item from its answers, under its lock), plus an optional ``after(ctx, applied)`` for the
batched follow-up writes and an optional ``shared(ctx, ids)`` for commands read once per
round for all its items (simple CRM mode: the leads' conversions, one ``crm.deal.list``).
Leads and deals are registered below; a deal is locked as its journey (``-deal_id``) and a
converted lead's deal takes its lead's lock too, as :func:`~b24app.leads.intake.process`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from datetime import timedelta
from typing import Any

from redis.exceptions import LockError

from b24app import context
from b24app import logs
from b24app.bitrix.budget import bulk_rest
from b24app.bitrix.client import BatchResult
from b24app.bitrix.client import MAX_BATCH
from b24app.context import Services
from b24app.event_queue import FAILURE_TTL
from b24app.event_queue import QUEUE
from b24app.event_queue import retry
from b24app.leads.intake import apply_deal
from b24app.leads.intake import lead_fetched
from b24app.leads.intake import record_fetched
from b24app.leads.intake import Recorded
from b24app.leads.intake import UNKNOWN
from b24app.leads.items import lead_lock
from b24app.leads.items import lead_lock_key
from b24app.leads.kinds import Commands
from b24app.leads.kinds import DEAL
from b24app.leads.kinds import EntityKind
from b24app.leads.kinds import LEAD
from b24app.leads.pipelines import refresh_crm_mode
from b24app.leads.tag_writes import tag_ai_leads
from b24app.settings import load_settings
from b24app.storage.models import PortalStatus
from b24app.storage.portals import get_portal

log = logging.getLogger(__name__)

PENDING = "b24app:pending:"  # hash "<type>:<id>" → push counter
ORDER = "b24app:pending-order:"  # zset "<type>:<id>" → first push (FIFO)
FAILS = "b24app:pending-fails:"  # hash "<type>:<id>" → failed rounds
PORTALS = "b24app:pending-portals"  # set of member_ids with pending items
DRAINER = "b24app:lock:drain:"
SCHEDULED = "b24app:drain-scheduled:"  # a continuation is scheduled (TTL: its delay + 30 s)
PENDING_TTL = 2 * 86400
DRAINER_TTL = 120
ITEM_LOCK_TTL = 120  # as items.LOCK_TIMEOUT
SLICE_SECONDS = 20.0
# A drainer that would wait longer than this for its portal's bucket frees its worker and
# comes back when the slot is due. Shorter waits — one slot of a saturated bucket, 0.5 s at
# 2 req/s — are the drain's own pace and stay in the worker: a yield ends the drain's
# slice, which writes the AI tags collected so far (a yield every round would cost two
# tag requests per round; measured: 858 leads instead of 1,467 after 150 s at 0.8 req/s).
YIELD_SECONDS = 3.0
MAX_FAILS = 3
LOOKAHEAD = 100  # pending items looked at per round (locked ones are skipped)

# Compare-and-delete: remove each item whose counter is still the one read (ARGV pairs).
_REMOVE = """
local removed = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
    redis.call('ZREM', KEYS[2], ARGV[i])
    redis.call('HDEL', KEYS[3], ARGV[i])
    removed = removed + 1
  end
end
return removed
"""


@dataclass(frozen=True)
class PortalCtx:
    """What an ``apply`` needs about the portal, read once per drain."""

    services: Services
    member_id: str
    portal_id: int
    registration: dict[str, Any]
    settings: dict[str, Any]
    crm_mode: str = "classic"
    # The item lock keys this round holds (set per round): a deal whose lead is in the same
    # round must not wait for the lead's lock — the round itself holds it.
    held: frozenset[str] = frozenset()
    # ("deal", id)/("lead", id) recorded so far by this drain (set for the follow-ups): a
    # deal recorded already need not be queued again for its converted lead.
    recorded: frozenset[tuple[str, int]] = frozenset()


@dataclass(frozen=True)
class Applied:
    """One recorded item: its outcome (for logs/tests) and what to write afterwards."""

    entity_id: int
    outcome: str
    follow_up: Any = None
    kind: str = ""


@dataclass(frozen=True)
class Coalesced:
    """How a drain records the items of one entity kind (read as the kind says)."""

    kind: EntityKind
    apply: Callable[[PortalCtx, int, BatchResult], Applied]
    after: Callable[[PortalCtx, list[Applied]], None] | None = None
    # Commands read once per round for all its items of this kind (their answers are added
    # to every item's BatchResult under their local names); must give the same number of
    # commands for any non-empty id list.
    shared: Callable[[PortalCtx, list[int]], Commands] | None = None

    @property
    def name(self) -> str:
        return self.kind.name

    def commands(self, entity_id: int) -> Commands:
        return self.kind.commands(entity_id)

    def lock_key(self, portal_id: int, entity_id: int) -> str:
        """The item's Redis lock: its journey's (a deal's is -deal_id, as in intake)."""
        return lead_lock_key(portal_id, self.kind.key(entity_id))


ENTITIES: dict[str, Coalesced] = {}


def register(entity: Coalesced) -> None:
    if not entity.name.isalpha():
        raise ValueError("entity kind names are letters only")
    ENTITIES[entity.name] = entity


@dataclass
class _Item:
    member: str
    counter: str
    entity: Coalesced
    entity_id: int
    lock: Any
    prefix: str
    answer: BatchResult = field(default_factory=BatchResult)


# -- pending set ----------------------------------------------------------------------------


def push(services: Services, member_id: str, kind: str, entity_id: int) -> None:
    """Add one item to the portal's pending set (a duplicate bumps its counter)."""
    member = f"{kind}:{int(entity_id)}"
    pipe = services.redis.pipeline()
    pipe.hincrby(PENDING + member_id, member, 1)
    pipe.zadd(ORDER + member_id, {member: time.time()}, nx=True)
    pipe.expire(PENDING + member_id, PENDING_TTL)
    pipe.expire(ORDER + member_id, PENDING_TTL)
    pipe.sadd(PORTALS, member_id)
    pipe.execute()


def pending_count(services: Services, member_id: str) -> int:
    return int(services.redis.hlen(PENDING + member_id))


def _clear(services: Services, member_id: str) -> None:
    services.redis.delete(PENDING + member_id, ORDER + member_id, FAILS + member_id)
    services.redis.srem(PORTALS, member_id)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# -- one round: ≤ 50 commands, one request --------------------------------------------------


def _split(answer: BatchResult, prefix: str) -> BatchResult:
    def part(section: dict[str, Any]) -> dict[str, Any]:
        return {k[len(prefix) :]: v for k, v in section.items() if k.startswith(prefix)}

    return BatchResult(
        results=part(answer.results),
        errors=part(answer.errors),
        totals=part(answer.totals),
        next=part(answer.next),
    )


def _merge(shared: BatchResult, own: BatchResult) -> BatchResult:
    return BatchResult(
        results={**shared.results, **own.results},
        errors={**shared.errors, **own.errors},
        totals={**shared.totals, **own.totals},
        next={**shared.next, **own.next},
    )


def _pick(ctx: PortalCtx) -> list[_Item]:
    """The oldest pending items that fit in one batch and whose lock is free (taken)."""
    redis = ctx.services.redis
    members = [_text(m) for m in redis.zrange(ORDER + ctx.member_id, 0, LOOKAHEAD - 1)]
    if not members:
        return []
    counters = redis.hmget(PENDING + ctx.member_id, members)
    picked: list[_Item] = []
    used = 0
    kinds: set[str] = set()
    for member, counter in zip(members, counters, strict=True):
        kind, _, raw_id = member.partition(":")
        entity = ENTITIES.get(kind)
        if counter is None or entity is None or not raw_id.isdigit():
            redis.zrem(ORDER + ctx.member_id, member)  # stale or unknown: drop
            if counter is not None:
                redis.hdel(PENDING + ctx.member_id, member)
            continue
        entity_id = int(raw_id)
        size = len(entity.commands(entity_id))
        if kind not in kinds and entity.shared is not None:
            size += len(entity.shared(ctx, [entity_id]))
        if used + size > MAX_BATCH:
            break
        lock = redis.lock(entity.lock_key(ctx.portal_id, entity_id), timeout=ITEM_LOCK_TTL)
        if not lock.acquire(blocking=False):
            continue  # another worker holds this item; the next round takes it
        picked.append(_Item(member, _text(counter), entity, entity_id, lock, f"{kind}{raw_id}_"))
        used += size
        kinds.add(kind)
    return picked


def run_round(ctx: PortalCtx) -> list[Applied]:
    """Fetch and record one batch of pending items; returns what was recorded."""
    items = _pick(ctx)
    if not items:
        return []
    applied: dict[str, list[Applied]] = {}
    done: list[_Item] = []
    redis = ctx.services.redis
    ctx = replace(ctx, held=frozenset(_text(item.lock.name) for item in items))
    try:
        commands: Commands = {}
        for item in items:
            for name, command in item.entity.commands(item.entity_id).items():
                commands[item.prefix + name] = command
        by_kind: dict[str, list[_Item]] = {}
        for item in items:
            by_kind.setdefault(item.entity.name, []).append(item)
        for kind, group in by_kind.items():
            shared = group[0].entity.shared
            if shared is not None:  # "lead_…": no item prefix ("lead<id>_") starts so
                for name, command in shared(ctx, [i.entity_id for i in group]).items():
                    commands[f"{kind}_{name}"] = command
        answer = ctx.services.bitrix(ctx.member_id).batch(commands)
        shared_answers = {kind: _split(answer, f"{kind}_") for kind in by_kind}
        for item in items:
            with logs.bind(member_id=ctx.member_id, **{f"{item.entity.name}_id": item.entity_id}):
                own = _merge(shared_answers[item.entity.name], _split(answer, item.prefix))
                try:
                    result = item.entity.apply(ctx, item.entity_id, own)
                except Exception:
                    fails = int(redis.hincrby(FAILS + ctx.member_id, item.member, 1))
                    log.exception("could not record %s (round %d)", item.member, fails)
                    if fails >= MAX_FAILS:
                        done.append(item)  # give up on a poison item
                    continue
            done.append(item)
            applied.setdefault(item.entity.name, []).append(replace(result, kind=item.entity.name))
        if done:
            args: list[str] = []
            for item in done:
                args += [item.member, item.counter]
            redis.eval(
                _REMOVE,
                3,
                PENDING + ctx.member_id,
                ORDER + ctx.member_id,
                FAILS + ctx.member_id,
                *args,
            )
    finally:
        for item in items:
            try:
                item.lock.release()
            except LockError:
                pass
    return [a for results in applied.values() for a in results]


def _seen(ctx: PortalCtx, recorded: list[Applied]) -> PortalCtx:
    return replace(ctx, recorded=frozenset((a.kind, a.entity_id) for a in recorded))


def _follow_up(ctx: PortalCtx, applied: list[Applied]) -> None:
    """Run the entity types' batched follow-up writes (AI tags) for ``applied``."""
    by_kind: dict[str, list[Applied]] = {}
    for item in applied:
        by_kind.setdefault(item.kind, []).append(item)
    for name, results in by_kind.items():
        after = ENTITIES[name].after
        if after is not None:
            after(ctx, results)


# -- the drainer ----------------------------------------------------------------------------


def _portal_ctx(services: Services, member_id: str) -> PortalCtx | None:
    with services.db() as session:
        portal = get_portal(session, member_id)
        if portal is None or portal.status == PortalStatus.UNINSTALLED:
            return None
        return PortalCtx(
            services,
            member_id,
            portal.id,
            dict(portal.registration or {}),
            dict(load_settings(session, portal.id)),
            portal.crm_mode or "classic",
        )


def drain(
    services: Services, member_id: str, *, slice_seconds: float = SLICE_SECONDS
) -> list[Applied] | None:
    """Become the portal's drainer and record pending items until none are left (or the
    slice is used up: then a continuation job is queued). None if another drainer runs."""
    redis = services.redis
    recorded: list[Applied] = []
    started = time.monotonic()
    while True:
        lock = redis.lock(DRAINER + member_id, timeout=DRAINER_TTL)
        if not lock.acquire(blocking=False):
            return recorded or None
        try:
            ctx = _portal_ctx(services, member_id)
            if ctx is None:
                _clear(services, member_id)
                return recorded
            idle = 0
            slice_over = False
            resume_in = 0.0
            writes: list[Applied] = []  # follow-ups, written 50 at a time (or at the end)
            with bulk_rest():
                client = services.bitrix(member_id)
                try:
                    while pending_count(services, member_id):
                        wait = client.slot_wait()
                        if wait > YIELD_SECONDS:
                            resume_in = wait  # the bucket is busy: do not hold a worker
                            break
                        got = run_round(ctx)
                        recorded += got
                        writes += [a for a in got if a.follow_up]
                        if len(writes) >= MAX_BATCH:
                            _follow_up(_seen(ctx, recorded), writes)
                            writes = []
                        lock.extend(DRAINER_TTL, replace_ttl=True)
                        if time.monotonic() - started > slice_seconds:
                            slice_over = True
                            break
                        if not got:  # only items locked by other workers are left
                            idle += 1
                            time.sleep(min(0.05 * idle, 0.5))
                finally:
                    _follow_up(_seen(ctx, recorded), writes)
        finally:
            try:
                lock.release()
            except LockError:
                pass
        if resume_in:
            # Events keep piling up meanwhile, so the next round is full all the same.
            schedule_drain(services, member_id, resume_in)
            return recorded
        if slice_over:
            # Queued only now that the lock is free: a continuation that started while we
            # still held it would have found the portal "being drained" and quit.
            enqueue_drain(services, member_id)
            return recorded
        # An item pushed after our last look but before the release found the lock taken:
        # look again now that it is free (the pusher or we will drain it).
        if not pending_count(services, member_id):
            redis.srem(PORTALS, member_id)
            if pending_count(services, member_id):
                redis.sadd(PORTALS, member_id)
                continue
            return recorded


def submit(services: Services, member_id: str, kind: str, entity_id: int) -> str:
    """Event job entry: queue one item and drain if nobody else is draining.

    Returns ``no_portal``, ``queued`` (another drainer will read it) or ``drained``.
    """
    with services.db() as session:
        portal = get_portal(session, member_id)
        if portal is None or portal.status == PortalStatus.UNINSTALLED:
            return "no_portal"
    push(services, member_id, kind, entity_id)
    if services.redis.exists(SCHEDULED + member_id):
        return "queued"  # the scheduled continuation reads it (pushed before this look)
    return "queued" if drain(services, member_id) is None else "drained"


def drain_job(member_id: str) -> int:
    """RQ job (``events``): continue draining a portal; returns the items recorded."""
    services = context.current()
    services.redis.delete(SCHEDULED + member_id)
    return len(drain(services, member_id) or [])


def enqueue_drain(services: Services, member_id: str) -> None:
    services.queue(QUEUE).enqueue(
        drain_job, member_id, result_ttl=0, failure_ttl=FAILURE_TTL, retry=retry()
    )


def schedule_drain(services: Services, member_id: str, delay: float) -> bool:
    """Continue draining in ``delay`` seconds (at the front of the queue: the delay was the
    other portals' turn); False when a continuation is scheduled already. Event jobs only
    queue their item meanwhile."""
    ttl_ms = int((delay + 30) * 1000)  # a lost job: the cron sweep takes over after this
    if not services.redis.set(SCHEDULED + member_id, "1", nx=True, px=ttl_ms):
        return False
    services.queue(QUEUE).enqueue_in(
        timedelta(seconds=delay), drain_job, member_id,
        result_ttl=0, failure_ttl=FAILURE_TTL, retry=retry(), at_front=True,
    )  # fmt: skip
    return True


def drain_waiting_portals() -> int:
    """Cron (every minute): start a drainer for every portal with pending items and none
    running (its drainer died, or its last continuation was lost); returns how many."""
    services = context.current()
    started = 0
    for raw in services.redis.smembers(PORTALS):
        member_id = _text(raw)
        if not pending_count(services, member_id):
            services.redis.srem(PORTALS, member_id)
        elif not services.redis.exists(DRAINER + member_id, SCHEDULED + member_id):
            enqueue_drain(services, member_id)
            started += 1
    return started


# -- leads ----------------------------------------------------------------------------------


def _apply_lead(ctx: PortalCtx, lead_id: int, answer: BatchResult) -> Applied:
    statuses: dict[str, str] = dict(ctx.registration.get("statuses") or {})
    rules = ctx.settings.get("ai_rules") or {}
    fetched = lead_fetched(LEAD.read(answer, lead_id, LEAD.field(ctx.registration)))
    recorded = record_fetched(
        ctx.services, ctx.member_id, ctx.portal_id, lead_id, fetched, statuses, rules,
        ctx.crm_mode, converted=_converted(answer, lead_id),
    )  # fmt: skip
    follow_up = recorded if recorded.has_follow_up(ctx.crm_mode) else None
    return Applied(lead_id, recorded.outcome, follow_up)


def _lead_shared(ctx: PortalCtx, lead_ids: list[int]) -> Commands:
    """Simple CRM mode converts every lead at once, so every lead read needs its deal
    (``record_fetched``'s converted-deal check): one ``crm.deal.list`` by ``@LEAD_ID`` for
    all the round's leads instead of one request per lead. In classic mode a conversion is
    a manager's click, rare in a burst: the rare converted lead asks on its own."""
    if ctx.crm_mode != "simple" or not lead_ids:
        return {}
    return {
        "deals": (
            "crm.deal.list",
            {
                "filter": {"@LEAD_ID": sorted(set(lead_ids))},
                "select": ["ID", "LEAD_ID"],
                "order": {"ID": "ASC"},
            },
        )
    }


def _converted(answer: BatchResult, lead_id: int) -> Any:
    """The lead's deal from the round's shared ``crm.deal.list`` (None: not converted), or
    :data:`~b24app.leads.intake.UNKNOWN` (not asked, failed, or more than one page: the
    lead then asks alone)."""
    if "deals" not in answer.results or "deals" in answer.errors or answer.next.get("deals"):
        return UNKNOWN
    rows = answer.results["deals"]
    if isinstance(rows, dict):
        rows = list(rows.values())
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, dict) and str(row.get("LEAD_ID")) == str(lead_id):
            try:
                return int(str(row.get("ID")))
            except ValueError:
                continue
    return None


def _after_leads(ctx: PortalCtx, applied: list[Applied]) -> None:
    """Outside the leads' locks: conversions into deals, then the AI tags in batches.

    A converted lead's deal is queued here like a deal event (read in the drain's next
    round, 25 per request) instead of read at once, unless this drain recorded it already;
    the CRM mode is re-read at most once per call."""
    channels: dict[int, str] = {}
    recheck = False
    for item in applied:
        recorded = item.follow_up
        if not isinstance(recorded, Recorded):
            continue
        if recorded.converted_into is not None:
            # Converted on arrival while we think "classic": the admin may have switched.
            recheck = recheck or (recorded.first_sight and ctx.crm_mode != "simple")
            if ("deal", recorded.converted_into) not in ctx.recorded:
                push(ctx.services, ctx.member_id, "deal", recorded.converted_into)
            # The journey lives on the deal now: the deal's record tags it there.
            continue
        if recorded.rechecks_mode(ctx.crm_mode):
            recheck = True
        if recorded.tag_channel is not None:
            channels[item.entity_id] = recorded.tag_channel
    if recheck:
        refresh_crm_mode(ctx.services, ctx.member_id)
    if channels:
        tag_ai_leads(ctx.services, ctx.portal_id, channels)


register(Coalesced(LEAD, _apply_lead, _after_leads, _lead_shared))


# -- deals ----------------------------------------------------------------------------------


def _apply_deal(ctx: PortalCtx, deal_id: int, answer: BatchResult) -> Applied:
    """Record one deal, under its lock (taken by the round) and — for a converted lead's
    deal — its lead's lock too, as :func:`~b24app.leads.intake.process` does, so
    the lead's job and the deal's never both start the journey. When the lead is in the same
    round, the round holds that lock already."""
    fetched = DEAL.read(answer, deal_id, DEAL.field(ctx.registration))
    lead_id = fetched[0].lead_id if fetched is not None else None
    tags: dict[int, str] = {}  # written for the whole round by _after_deals
    if lead_id is None or lead_lock_key(ctx.portal_id, lead_id) in ctx.held:
        outcome = apply_deal(ctx.services, ctx.member_id, deal_id, fetched, tags=tags)
        return Applied(deal_id, outcome, follow_up=tags)
    # Lock order deal → lead, the same as intake.process's; nothing holds a lead and waits
    # for a deal, so this wait cannot close a cycle.
    with lead_lock(ctx.services, ctx.portal_id, lead_id):
        outcome = apply_deal(ctx.services, ctx.member_id, deal_id, fetched, tags=tags)
        return Applied(deal_id, outcome, follow_up=tags)


def _after_deals(ctx: PortalCtx, applied: list[Applied]) -> None:
    """Outside the deals' locks: the round's AI tags in batches, as for leads."""
    channels: dict[int, str] = {}
    for item in applied:
        if isinstance(item.follow_up, dict):
            channels.update(item.follow_up)
    if channels:
        tag_ai_leads(ctx.services, ctx.portal_id, channels)


register(Coalesced(DEAL, _apply_deal, _after_deals))
