"""End to end: a real ``b24app worker`` subprocess fires SLA timers against the emulator.

Policy minutes are integers, so these tests set ``B24APP_SLA_SECONDS_PER_MINUTE=1`` in this
process, which computes the due times — a "minute" lasts one second. The worker only reads
the rows. ``installed_portal`` comes before ``rq_worker`` in every signature (see the fixture).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from rq.registry import ScheduledJobRegistry
from sqlalchemy import func
from sqlalchemy import select

from b24app.context import Services
from b24app.settings import save_settings
from b24app.sla import engine
from b24app.storage.models import Portal
from b24app.storage.models import Timer
from b24app.storage.models import TimerState
from b24app.timers import engine as timer_engine
from b24app.timers.reconcile import reconcile_timers
from tests.plugins.worker import WorkerProcess
from tests.sla.conftest import make_lead
from tests.sla.conftest import update_lead
from tests.waiting import wait_for


@pytest.fixture
def sla_portal(installed_portal: Any, services: Services, monkeypatch: pytest.MonkeyPatch) -> int:
    """The installed emulator portal's id, with a 2-minute reminder and 5-minute escalation."""
    monkeypatch.setenv("B24APP_SLA_SECONDS_PER_MINUTE", "1")
    with services.db() as session:
        portal_id = session.scalar(
            select(Portal.id).where(Portal.member_id == installed_portal.member_id)
        )
        assert portal_id is not None
        save_settings(
            session, portal_id, {"sla": {"first_reply": {"minutes": 2, "escalate_minutes": 5}}}
        )
    return int(portal_id)


def notifications(emulator: Any, portal: Any) -> list[dict[str, Any]]:
    """The notifications Bitrix24 accepted (failed attempts are recorded too: left out)."""
    calls = emulator.calls(method="im.notify.system.add", portal=portal)
    return [c.params for c in calls if c.ok]


def timer_states(services: Services, lead_id: int) -> dict[str, str]:
    with services.db() as session:
        rows = session.execute(select(Timer.level, Timer.state).where(Timer.journey_key == lead_id))
        return {level: state for level, state in rows}


def new_chat_lead(installed_portal: Any, services: Services, portal_id: int) -> int:
    lead_id = int(
        installed_portal.add_lead(
            {"TITLE": "Чат", "SOURCE_ID": "OPENLINE", "ASSIGNED_BY_ID": 2}, events=False
        )
    )
    make_lead(services, portal_id, lead_id, channel="chat", assigned_by_id=2)
    return lead_id


def test_lead_left_alone_gets_reminder_then_escalation_once(
    emulator: Any,
    installed_portal: Any,
    services: Services,
    sla_portal: int,
    rq_worker: WorkerProcess,
) -> None:
    """Manager reminder, then the department head's escalation, each exactly once."""
    rq_worker.start()
    lead_id = new_chat_lead(installed_portal, services, sla_portal)
    engine.sync_lead_timers(services, sla_portal, lead_id)
    engine.sync_lead_timers(services, sla_portal, lead_id)  # idempotent
    wait_for(lambda: timer_states(services, lead_id).get("escalate") == TimerState.FIRED)
    assert reconcile_timers()["rescheduled"] == 0
    time.sleep(2)  # give any duplicate a chance to show up
    sent = notifications(emulator, installed_portal)
    assert [(str(n["USER_ID"]), n["TAG"]) for n in sent] == [
        ("2", f"b24app|sla|{lead_id}|first_reply|remind"),
        ("4", f"b24app|sla|{lead_id}|first_reply|escalate"),  # head of department 2
    ]
    assert f"/crm/lead/details/{lead_id}/]" in sent[0]["MESSAGE"]
    comments = [c for c in installed_portal.timeline_comments if c["ENTITY_ID"] == lead_id]
    assert len(comments) == 1


def test_lead_replied_before_the_reminder_gets_nothing(
    emulator: Any,
    installed_portal: Any,
    services: Services,
    sla_portal: int,
    rq_worker: WorkerProcess,
) -> None:
    """A reply at "minute 1" cancels both levels: no notification at all.

    The worker starts after the reply, so a slow machine cannot let the reminder fire first."""
    lead_id = new_chat_lead(installed_portal, services, sla_portal)
    replied_lead = new_chat_lead(installed_portal, services, sla_portal)
    engine.sync_lead_timers(services, sla_portal, lead_id)
    engine.sync_lead_timers(services, sla_portal, replied_lead)
    update_lead(
        services,
        sla_portal,
        replied_lead,
        first_reply_at=dt.datetime.now(dt.UTC).replace(tzinfo=None),
    )
    engine.sync_lead_timers(services, sla_portal, replied_lead)
    rq_worker.start()
    # The control lead's escalation proves the worker ran past both due times.
    wait_for(lambda: timer_states(services, lead_id).get("escalate") == TimerState.FIRED)
    tags = [n["TAG"] for n in notifications(emulator, installed_portal)]
    assert not [t for t in tags if f"|{replied_lead}|" in t]
    assert len(tags) == 2
    assert set(timer_states(services, replied_lead).values()) == {TimerState.CANCELLED}


def test_redis_lost_mid_test_reconcile_restores_and_sends_once(
    emulator: Any,
    installed_portal: Any,
    services: Services,
    sla_portal: int,
    rq_worker: WorkerProcess,
    redis_server: Any,
) -> None:
    """Redis restarted empty mid-test: reconciliation restores every pending timer, each
    notification is still sent exactly once.

    Time is driven: the escalation and the second lead's timers are due in 10 "minutes", far
    past anything a slow machine could take before Redis goes; the outage then lasts past
    their due times (their rows' due times are moved into the past), as a long one would."""
    with services.db() as session:
        save_settings(
            session, sla_portal, {"sla": {"first_reply": {"minutes": 2, "escalate_minutes": 600}}}
        )
    rq_worker.start()
    lead_id = new_chat_lead(installed_portal, services, sla_portal)
    later_lead = new_chat_lead(installed_portal, services, sla_portal)
    engine.sync_lead_timers(services, sla_portal, lead_id)
    wait_for(lambda: timer_states(services, lead_id).get("remind") == TimerState.FIRED)
    # Both levels of this one are still pending when Redis goes.
    engine.start_timer(services, sla_portal, later_lead, "custom", minutes=600)
    rq_worker.kill()
    redis_server.restart_empty()
    assert services.redis.dbsize() == 0
    with services.db() as session:
        pending = session.scalars(select(Timer).where(Timer.state == TimerState.PENDING)).all()
        assert len(pending) == 3
        for timer in pending:
            timer.due_at = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=1)
    rq_worker.start()
    counts = reconcile_timers()
    # lead: the escalation only (its reminder stays fired); later_lead: both levels.
    assert counts["rescheduled"] == 3
    assert reconcile_timers()["rescheduled"] == 0
    wait_for(lambda: timer_states(services, lead_id).get("escalate") == TimerState.FIRED)
    wait_for(lambda: timer_states(services, later_lead).get("escalate") == TimerState.FIRED)
    assert reconcile_timers()["rescheduled"] == 0  # fired rows are never re-created
    tags = [n["TAG"] for n in notifications(emulator, installed_portal)]
    assert sorted(tags) == sorted(
        f"b24app|sla|{lead}|{policy}|{level}"
        for lead, policy in ((lead_id, "first_reply"), (later_lead, "custom"))
        for level in ("remind", "escalate")
    )


def test_uninstall_cancels_every_timer_of_the_portal(
    emulator: Any,
    installed_portal: Any,
    services: Services,
    sla_portal: int,
    rq_worker: WorkerProcess,
) -> None:
    """The portal's uninstall event cancels its timers: rows cancelled, jobs gone, nothing sent.

    The uninstall is handled by a worker on the ``default`` queue only, so no timer can fire
    while a slow machine processes it; a worker on every queue then runs past every due time."""
    leads = [new_chat_lead(installed_portal, services, sla_portal) for _ in range(3)]
    for lead_id in leads:
        engine.sync_lead_timers(services, sla_portal, lead_id)
    registry = ScheduledJobRegistry(queue=services.queue("timers"))
    timers_queue = services.queue("timers")

    def jobs() -> int:
        # scheduled, or already queued when a slow machine synced a timer past its due time
        return int(registry.count) + int(timers_queue.count)

    assert jobs() == 6  # no worker (so no scheduler) runs yet
    rq_worker.args = ("--queue", "default")
    rq_worker.start()
    installed_portal.uninstall(clean=False)
    assert emulator.wait_idle()

    def all_cancelled() -> bool:
        with services.db() as session:
            states = set(session.scalars(select(Timer.state)))
        return states == {TimerState.CANCELLED}

    wait_for(all_cancelled)
    # The rows are committed first and the scheduled jobs removed right after (a job that
    # still fires in between finds its row cancelled): wait for the removal, don't race it.
    wait_for(lambda: jobs() == 0)
    rq_worker.stop()
    rq_worker.args = ()
    rq_worker.start()
    with services.db() as session:
        last_due = session.scalar(select(func.max(Timer.due_at)))
    assert last_due is not None
    # Past every due time (plus the scheduler's poll): still no notification.
    wait_for(lambda: dt.datetime.now(dt.UTC).replace(tzinfo=None) > last_due)
    time.sleep(2)
    assert notifications(emulator, installed_portal) == []


def test_transient_send_failure_is_retried_and_sent_once(
    emulator: Any,
    installed_portal: Any,
    services: Services,
    sla_portal: int,
    rq_worker: WorkerProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 500 from Bitrix24 on the notification: the claim is released, RQ retries, one send.

    Time is driven, not raced: the retry comes after 1 s instead of production's 5 s (the
    retry policy travels with the job, which this process enqueues)."""
    monkeypatch.setattr(timer_engine, "RETRY_INTERVALS", (1, 1, 1))
    rq_worker.start()
    rq_worker.env["B24APP_REST_MAX_RETRIES"] = "0"  # the client gives up at once: RQ retries
    rq_worker.restart()  # a new process, with that environment
    emulator.inject_fault(
        "internal_error", count=1, portal=installed_portal, method="im.notify.system.add"
    )
    lead_id = new_chat_lead(installed_portal, services, sla_portal)
    engine.start_timer(services, sla_portal, lead_id, "custom", minutes=1)
    wait_for(lambda: timer_states(services, lead_id).get("remind") == TimerState.FIRED)
    failed = emulator.calls(
        method="im.notify.system.add", portal=installed_portal, error="INTERNAL_SERVER_ERROR"
    )
    assert len(failed) == 1
    tags = [n["TAG"] for n in notifications(emulator, installed_portal)]
    remind_tag = f"b24app|sla|{lead_id}|custom|remind"
    assert tags.count(remind_tag) == 1
    with services.db() as session:
        timer = session.scalar(
            select(Timer).where(Timer.journey_key == lead_id, Timer.level == "remind")
        )
        assert timer is not None and timer.fired_at is not None
        assert timer.payload["done"] == ["notify"]
