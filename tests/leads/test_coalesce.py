"""The coalesced intake (issue 14) through the emulator and the in-process RQ job runner:
waiting lead events of a portal are read 25 per request, AI tags are written in batches,
duplicates are one read, deleted leads are marked, a later event gets a later read, and a
single event on an idle portal is read at once by its own job.

A busy drainer is modelled by holding the portal's drainer lock while the event jobs run
(each job then only queues its lead), which is what happens when one worker is draining
while the others take the events; no test depends on timing."""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy import select

from b24app.context import Services
from b24app.leads import coalesce
from b24app.leads.items import lead_lock_key
from b24app.storage.models import Journey
from b24app.storage.models import Stage
from devportal import DevPortal
from devportal import Portal as EmuPortal
from tests.leads.test_deal_intake import journey
from tests.leads.test_intake import comments
from tests.leads.test_intake import db_portal
from tests.leads.test_intake import lead_row


def lead_reads(emulator: DevPortal, portal: EmuPortal) -> list[int]:
    """How many leads each lead-reading ``batch`` request carried."""
    sizes = []
    for call in emulator.calls("batch", portal):
        cmd = call.params.get("cmd") or {}
        reads = [c for c in cmd.values() if str(c).startswith("crm.item.get")]
        if reads:
            sizes.append(len(reads))
    return sizes


def drain_all(services: Services, member_id: str) -> list[coalesce.Applied] | None:
    """Drain with no time slice: the test expects everything pending recorded in this call
    (under load the default slice may end it early and leave a continuation job)."""
    return coalesce.drain(services, member_id, slice_seconds=math.inf)


@pytest.fixture
def busy_drainer(services: Services) -> Callable[[EmuPortal], Any]:
    """Hold a portal's drainer lock (another worker is draining) for the ``with`` block."""

    def hold(portal: EmuPortal) -> Any:
        return services.redis.lock(coalesce.DRAINER + portal.member_id, timeout=600)

    return hold


def queue_events(emulator: DevPortal, run_jobs: Callable[..., None], lock: Any) -> None:
    """Deliver the emulator's events and run the event jobs while another drainer runs."""
    assert emulator.wait_idle()
    with lock:
        run_jobs("events")


def test_a_burst_is_read_25_leads_per_request(
    emulator, installed_portal, services, run_jobs, busy_drainer
) -> None:  # type: ignore[no-untyped-def]
    """60 new leads (every 3rd a Telegram AI-lead) waiting: 3 reading requests (25+25+10),
    all 60 recorded, the 20 AI-leads tagged with one batch of fields and one of comments."""
    portal = db_portal(services, installed_portal)
    before_batches = len(emulator.calls("batch", installed_portal))
    ids = [
        installed_portal.add_lead(
            {"TITLE": f"L{i}", "SOURCE_ID": "2|TELEGRAM" if i % 3 == 0 else "CALL"}
        )
        for i in range(60)
    ]
    queue_events(emulator, run_jobs, busy_drainer(installed_portal))
    assert coalesce.pending_count(services, installed_portal.member_id) == 60
    recorded = drain_all(services, installed_portal.member_id)
    assert recorded is not None and len(recorded) == 60
    assert sorted(lead_reads(emulator, installed_portal)) == [10, 25, 25]
    for i, lead_id in enumerate(ids):
        row = lead_row(services, portal.id, lead_id)
        assert row.is_ai == (i % 3 == 0)
        assert (row.ai_tagged_at is not None) == (i % 3 == 0)
        assert len(comments(installed_portal, lead_id)) == (1 if i % 3 == 0 else 0)
    updates = [c for c in emulator.calls("crm.item.update", installed_portal, in_batch=True)]
    assert len(updates) == 20
    new_batches = emulator.calls("batch", installed_portal)[before_batches:]
    assert len(new_batches) == 3 + 2  # 3 reads, 1 batch of fields, 1 of comments
    # The tags' own ONCRMLEADUPDATE events come back and write nothing.
    assert emulator.wait_idle()
    run_jobs("events")
    assert len(emulator.calls("crm.item.update", installed_portal, in_batch=True)) == 20
    assert coalesce.pending_count(services, installed_portal.member_id) == 0


def test_single_event_on_an_idle_portal_is_read_by_its_own_job(
    emulator, installed_portal, services, run_jobs
) -> None:  # type: ignore[no-untyped-def]
    """Nothing else waiting: the event's job drains at once, one request for one lead."""
    portal = db_portal(services, installed_portal)
    lead_id = installed_portal.add_lead({"TITLE": "Один", "SOURCE_ID": "CALL"})
    assert emulator.wait_idle()
    run_jobs("events")
    assert lead_reads(emulator, installed_portal) == [1]
    assert lead_row(services, portal.id, lead_id).stage == Stage.NEW
    assert coalesce.pending_count(services, installed_portal.member_id) == 0


def test_duplicates_are_one_read_and_deleted_leads_are_marked(
    emulator, installed_portal, services, run_jobs, busy_drainer
) -> None:  # type: ignore[no-untyped-def]
    """A lead updated three times while waiting is read once; a lead deleted in the CRM
    before the read is marked deleted (its delete event too)."""
    portal = db_portal(services, installed_portal)
    kept = installed_portal.add_lead({"TITLE": "kept", "SOURCE_ID": "CALL"})
    gone = installed_portal.add_lead({"TITLE": "gone", "SOURCE_ID": "CALL"})
    run_jobs("events") if emulator.wait_idle() else None
    lead_row(services, portal.id, gone)
    emulator.delivery.duplicate = True
    for n in range(3):
        installed_portal.update_lead(kept, {"COMMENTS": f"update {n}"})
    installed_portal.update_lead(gone, {"COMMENTS": "last words"})
    before = len(lead_reads(emulator, installed_portal))
    queue_events(emulator, run_jobs, busy_drainer(installed_portal))
    installed_portal.delete_lead(gone)  # its delete event needs no read: processed directly
    assert coalesce.pending_count(services, installed_portal.member_id) == 2
    assert drain_all(services, installed_portal.member_id) is not None
    assert lead_reads(emulator, installed_portal)[before:] == [2]
    assert lead_row(services, portal.id, gone).deleted_at is not None
    assert lead_row(services, portal.id, kept).deleted_at is None
    assert emulator.wait_idle()
    run_jobs("events")
    assert lead_row(services, portal.id, gone).deleted_at is not None


def test_an_event_during_the_read_gets_a_fresh_read(
    emulator, installed_portal, services, run_jobs, busy_drainer, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The lead moves to Qualified while the drainer is reading it (and its event is
    queued): the item stays pending and the next round records the later state."""
    portal = db_portal(services, installed_portal)
    statuses = portal.registration["statuses"]
    lead_id = installed_portal.add_lead({"TITLE": "moving", "SOURCE_ID": "CALL"})
    queue_events(emulator, run_jobs, busy_drainer(installed_portal))
    real_apply = coalesce.ENTITIES["lead"].apply
    calls = []

    def apply_and_move(ctx, entity_id, answer):  # type: ignore[no-untyped-def]
        calls.append(entity_id)
        if len(calls) == 1:  # the CRM changes after our read; its event is pushed
            installed_portal.update_lead(lead_id, {"STATUS_ID": statuses["qualified"]},
                                         events=False)  # fmt: skip
            coalesce.push(services, installed_portal.member_id, "lead", lead_id)
        return real_apply(ctx, entity_id, answer)

    entity = coalesce.ENTITIES["lead"]
    monkeypatch.setitem(
        coalesce.ENTITIES, "lead", dataclasses.replace(entity, apply=apply_and_move, shared=None)
    )
    drain_all(services, installed_portal.member_id)
    assert calls == [lead_id, lead_id]
    assert lead_row(services, portal.id, lead_id).stage == Stage.QUALIFIED


def test_a_locked_lead_waits_and_an_orphaned_queue_is_swept(
    emulator, installed_portal, services, run_jobs, busy_drainer
) -> None:  # type: ignore[no-untyped-def]
    """A lead another worker holds is left for a later round; items left with no drainer
    (the drainer died) are picked up by the cron sweep's drain job."""
    portal = db_portal(services, installed_portal)
    a = installed_portal.add_lead({"TITLE": "a", "SOURCE_ID": "CALL"})
    b = installed_portal.add_lead({"TITLE": "b", "SOURCE_ID": "CALL"})
    queue_events(emulator, run_jobs, busy_drainer(installed_portal))
    held = services.redis.lock(lead_lock_key(portal.id, b), timeout=600)
    assert held.acquire(blocking=False)
    try:
        coalesce.drain(services, installed_portal.member_id, slice_seconds=0.3)
    finally:
        held.release()
    lead_row(services, portal.id, a)
    assert coalesce.pending_count(services, installed_portal.member_id) == 1
    services.queue("events").empty()  # the continuation job "was lost"
    assert coalesce.drain_waiting_portals() == 1
    run_jobs("events")
    lead_row(services, portal.id, b)
    assert coalesce.pending_count(services, installed_portal.member_id) == 0
    assert coalesce.drain_waiting_portals() == 0


def test_without_coalescing_each_event_is_read_alone(
    emulator, installed_portal, services, run_jobs, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """``rest_coalesce=False`` (the bench's "before"): one request per event."""
    monkeypatch.setattr(services, "settings", services.settings.replace(rest_coalesce=False))
    portal = db_portal(services, installed_portal)
    ids = [installed_portal.add_lead({"TITLE": f"x{i}", "SOURCE_ID": "CALL"}) for i in range(5)]
    assert emulator.wait_idle()
    run_jobs("events")
    assert lead_reads(emulator, installed_portal) == [1] * 5
    for lead_id in ids:
        lead_row(services, portal.id, lead_id)


def test_a_burst_of_deal_events_is_read_25_deals_per_request(
    emulator, installed_portal, services, run_jobs, busy_drainer
) -> None:  # type: ignore[no-untyped-def]
    """100 new deals (every 4th from a Telegram bot), each updated once (200 ONCRMDEAL*
    events) while a drainer is busy: every deal recorded on its own journey with at most
    200 / 20 reading requests, through the emulator's 2 req/s / 50 limiter (no limit errors);
    the 25 AI deals tagged on the deal with one batch of fields and one of comments."""
    portal = db_portal(services, installed_portal)
    before = len(lead_reads(emulator, installed_portal))
    before_batches = len(emulator.calls("batch", installed_portal))
    ids = [
        installed_portal.add_deal(
            {"TITLE": f"D{i}", "SOURCE_ID": "2|TELEGRAM" if i % 4 == 0 else "CALL"}
        )
        for i in range(100)
    ]
    for deal_id in ids:
        installed_portal.update_deal(deal_id, {"STAGE_ID": "PREPARATION"})
    queue_events(emulator, run_jobs, busy_drainer(installed_portal))
    deliveries = emulator.deliveries(kind="event", portal=installed_portal)
    assert sum(1 for d in deliveries if d.name.startswith("ONCRMDEAL")) >= 200
    assert coalesce.pending_count(services, installed_portal.member_id) == 100
    recorded = drain_all(services, installed_portal.member_id)
    assert recorded is not None and {a.kind for a in recorded} == {"deal"}
    reads = lead_reads(emulator, installed_portal)[before:]
    assert sum(reads) == 100 and len(reads) <= 200 // 20, reads
    for i, deal_id in enumerate(ids):
        row = journey(services, portal.id, deal_id=deal_id)
        assert row.lead_id is None and row.deal_stage_id == "PREPARATION"
        assert (row.ai_tagged_at is not None) == (i % 4 == 0)
        notes = [c for c in comments(installed_portal, deal_id) if c["ENTITY_TYPE"] == "deal"]
        assert len(notes) == (1 if i % 4 == 0 else 0)
    updates = emulator.calls("crm.item.update", installed_portal, in_batch=True)
    assert len(updates) == 25
    assert not emulator.calls("crm.item.update", installed_portal, in_batch=False)
    new_batches = emulator.calls("batch", installed_portal)[before_batches:]
    assert len(new_batches) == len(reads) + 2  # the reads, 1 batch of fields, 1 of comments
    assert not emulator.calls(portal=installed_portal, error="QUERY_LIMIT_EXCEEDED")
    assert coalesce.pending_count(services, installed_portal.member_id) == 0


def test_a_single_deal_event_is_read_at_once(
    emulator, installed_portal, services, run_jobs
) -> None:  # type: ignore[no-untyped-def]
    portal = db_portal(services, installed_portal)
    before = len(lead_reads(emulator, installed_portal))
    deal_id = installed_portal.add_deal({"TITLE": "Одна", "SOURCE_ID": "CALL"})
    assert emulator.wait_idle()
    run_jobs("events")
    assert lead_reads(emulator, installed_portal)[before:] == [1]
    assert journey(services, portal.id, deal_id=deal_id).entity_type == "deal"
    assert coalesce.pending_count(services, installed_portal.member_id) == 0


def test_a_converted_lead_and_its_deal_in_one_round(
    emulator, installed_portal, services, run_jobs, busy_drainer, monkeypatch, caplog
) -> None:  # type: ignore[no-untyped-def]
    """The lead's update and its new deal wait together: one round reads both; the deal
    needs its lead's lock, which the round itself holds (no wait: a wait would time out,
    here after 1 s, and fail the round), and the journey is one."""
    from b24app.leads import items

    monkeypatch.setattr(items, "LOCK_TIMEOUT", 1)
    portal = db_portal(services, installed_portal)
    lead_id = installed_portal.add_lead({"TITLE": "Клиент", "SOURCE_ID": "CALL"})
    assert emulator.wait_idle()
    run_jobs("events")
    deal_id = installed_portal.convert_lead(lead_id, by_user=2)
    queue_events(emulator, run_jobs, busy_drainer(installed_portal))
    assert coalesce.pending_count(services, installed_portal.member_id) == 2
    before = len(lead_reads(emulator, installed_portal))
    drain_all(services, installed_portal.member_id)
    assert lead_reads(emulator, installed_portal)[before:] == [2]  # lead + deal, one request
    assert not [r for r in caplog.records if "could not record" in r.getMessage()]
    row = journey(services, portal.id, lead_id=lead_id)
    assert row.deal_id == deal_id
    with services.db() as session:
        assert (
            session.scalar(
                select(func.count()).select_from(Journey).where(Journey.portal_id == portal.id)
            )
            == 1
        )


def test_a_deal_waits_for_its_leads_lock_held_elsewhere(
    emulator, installed_portal, services, run_jobs, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """A converted lead's deal is recorded under its lead's lock (the per-journey lock, as
    intake.process does): while another worker holds the lead, the record waits for it and
    then runs under the drainer's own hold of that lock."""
    portal = db_portal(services, installed_portal)
    lead_id = installed_portal.add_lead({"TITLE": "Клиент", "SOURCE_ID": "CALL"})
    assert emulator.wait_idle()
    run_jobs("events")
    deal_id = installed_portal.convert_lead(lead_id, by_user=2)
    assert emulator.wait_idle()
    services.queue("events").empty()  # only the deal is pending
    coalesce.push(services, installed_portal.member_id, "deal", deal_id)
    key = lead_lock_key(portal.id, lead_id)
    other = services.redis.lock(key, timeout=600, thread_local=False)
    assert other.acquire(blocking=False)
    token = other.local.token
    holders: list[bytes | None] = []
    real = coalesce.apply_deal

    def apply_deal(*args, **kwargs):  # type: ignore[no-untyped-def]
        holders.append(services.redis.get(key))
        return real(*args, **kwargs)

    monkeypatch.setattr(coalesce, "apply_deal", apply_deal)
    release = threading.Timer(0.3, other.release)  # the other worker finishes
    release.start()
    try:
        drain_all(services, installed_portal.member_id)
    finally:
        release.join()
    [holder] = holders
    assert holder is not None and holder != token
    assert journey(services, portal.id, lead_id=lead_id).deal_id == deal_id


def test_a_simple_mode_burst_costs_no_request_per_lead(
    emulator, live_app, portal, services, run_jobs, busy_drainer
) -> None:  # type: ignore[no-untyped-def]
    """Simple CRM mode converts every lead at once: 100 leads are 300 events (lead add, its
    move to CONVERTED, the deal's add). The conversions are looked up with one
    ``crm.deal.list`` per round inside the reading batch, and the deals are read in batches
    too: every request of the drain together stays under 300 / 20, with one journey per
    client, each on its deal."""
    portal.set_crm_mode("simple")
    portal.install()
    run_jobs()
    stored = db_portal(services, portal)
    assert stored.crm_mode == "simple"
    ids = [portal.add_lead({"TITLE": f"S{i}", "SOURCE_ID": "CALL"}) for i in range(100)]
    queue_events(emulator, run_jobs, busy_drainer(portal))
    events = emulator.deliveries(kind="event", portal=portal)
    assert sum(1 for d in events if d.name.startswith(("ONCRMLEAD", "ONCRMDEAL"))) >= 300
    before = emulator.http_requests(portal)
    before_calls = len(emulator.calls(portal=portal))
    drain_all(services, portal.member_id)
    used = emulator.http_requests(portal) - before
    calls = emulator.calls(portal=portal)[before_calls:]
    assert used <= 300 // 20, [c.method for c in calls if not c.in_batch]
    assert not [c for c in calls if c.method == "crm.deal.list" and not c.in_batch]
    assert not [c for c in calls if c.error == "QUERY_LIMIT_EXCEEDED"]
    with services.db() as session:
        rows = session.scalars(select(Journey).where(Journey.portal_id == stored.id)).all()
        by_lead = {r.lead_id: r.deal_id for r in rows}
    assert len(rows) == 100
    assert all(by_lead[i] == portal.deal_of_lead(i) for i in ids)
    assert coalesce.pending_count(services, portal.member_id) == 0


def test_a_drainer_facing_a_busy_bucket_frees_its_worker(
    emulator, installed_portal, services, run_jobs, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The portal's bucket is full for bulk reads (another drain, an integration): the event
    job that becomes the drainer does not wait in its worker — it schedules a continuation
    for when a slot is due; the later events' jobs only queue their leads; the continuation
    reads them all in one request."""
    portal = db_portal(services, installed_portal)
    member = installed_portal.member_id
    # a slow refill: the full bucket's wait is minutes, so a stalled machine cannot let it
    # drain below YIELD_SECONDS before the drainer looks
    monkeypatch.setattr(services, "settings", services.settings.replace(rest_rate=0.05))
    bucket = services.bitrix(member).bucket
    monkeypatch.setattr(coalesce, "YIELD_SECONDS", 1.0)  # a full bucket: ≥ 1 s for bulk
    ids = [installed_portal.add_lead({"TITLE": f"b{i}", "SOURCE_ID": "CALL"}) for i in range(5)]
    assert emulator.wait_idle()
    before = len(lead_reads(emulator, installed_portal))
    bucket.fill()
    run_jobs("events")
    assert lead_reads(emulator, installed_portal)[before:] == []
    assert coalesce.pending_count(services, member) == 5
    assert services.redis.exists(coalesce.SCHEDULED + member)
    scheduled = services.queue("events").scheduled_job_registry.get_job_ids()
    assert len(scheduled) == 1
    job = services.queue("events").fetch_job(scheduled[0])
    assert job is not None and job.func_name.endswith("drain_job")
    assert coalesce.drain_waiting_portals() == 0  # the sweep leaves a scheduled portal alone
    bucket.reset()  # the slot is due: the continuation runs
    assert coalesce.drain_job(member) == 5
    assert lead_reads(emulator, installed_portal)[before:] == [5]
    assert not services.redis.exists(coalesce.SCHEDULED + member)
    for lead_id in ids:
        lead_row(services, portal.id, lead_id)
