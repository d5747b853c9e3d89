"""SLA engine on the real private Redis: timers as DB rows + RQ scheduled jobs."""

from __future__ import annotations

import datetime as dt

from rq.job import Job
from rq.registry import ScheduledJobRegistry

from b24app.context import Services
from b24app.settings import save_settings
from b24app.sla import engine
from b24app.storage.models import TimerState
from b24app.timers.engine import cancel_portal_timers
from tests.sla.conftest import make_lead
from tests.sla.conftest import make_portal
from tests.sla.conftest import NOW
from tests.sla.conftest import scheduled_ids
from tests.sla.conftest import timers
from tests.sla.conftest import update_lead


def test_duplicate_start_schedules_once(services: Services) -> None:
    """Starting the same policy twice leaves one row and one scheduled job per level."""
    portal_id = make_portal(services)
    first = engine.start_timer(services, portal_id, 7, "first_reply", now=NOW)
    second = engine.start_timer(services, portal_id, 7, "first_reply", now=NOW)
    assert first == second == NOW + dt.timedelta(minutes=3)
    rows = timers(services, portal_id=portal_id)
    assert [(t.level, t.due_at) for t in rows] == [
        ("remind", NOW + dt.timedelta(minutes=3)),
        ("escalate", NOW + dt.timedelta(minutes=30)),
    ]
    ids = scheduled_ids(services)
    assert sorted(ids) == sorted(
        [f"sla-{portal_id}-7-first_reply-remind", f"sla-{portal_id}-7-first_reply-escalate"]
    )
    job = Job.fetch(ids[0], connection=services.redis)
    assert job.func_name == "b24app.timers.fire.fire_timer"


def test_stop_cancels_rows_and_removes_jobs(services: Services) -> None:
    """stop_timers marks rows cancelled and deletes the jobs; a restart revives them."""
    portal_id = make_portal(services)
    engine.start_timer(services, portal_id, 7, "callback", now=NOW)
    assert engine.stop_timers(services, portal_id, 7) == 2
    assert scheduled_ids(services) == []
    assert not Job.exists(f"sla-{portal_id}-7-callback-remind", connection=services.redis)
    assert {t.state for t in timers(services)} == {TimerState.CANCELLED}
    assert engine.stop_timers(services, portal_id, 7) == 0
    engine.start_timer(services, portal_id, 7, "callback", minutes=5, now=NOW)
    assert {t.state for t in timers(services)} == {TimerState.PENDING}
    assert len(scheduled_ids(services)) == 2


def test_uninstall_cancels_every_timer_of_the_portal_only(services: Services) -> None:
    """cancel_portal_timers cancels all of one portal's timers and leaves another's."""
    portal_id = make_portal(services)
    other = make_portal(services, "other-member")
    for lead_id in (1, 2, 3):
        engine.start_timer(services, portal_id, lead_id, "first_reply", now=NOW)
    engine.start_timer(services, other, 1, "first_reply", now=NOW)
    assert cancel_portal_timers(services, portal_id) == 6
    assert sorted(scheduled_ids(services)) == [
        f"sla-{other}-1-first_reply-escalate",
        f"sla-{other}-1-first_reply-remind",
    ]
    assert {t.state for t in timers(services, portal_id=portal_id)} == {TimerState.CANCELLED}


def test_sync_follows_the_lead_lifecycle(services: Services) -> None:
    """Chat lead → first_reply; replied → cancelled; qualified → confirmation in working time."""
    portal_id = make_portal(services)
    make_lead(services, portal_id, 11, created_at=NOW)
    engine.sync_lead_timers(services, portal_id, 11, now=NOW)
    engine.sync_lead_timers(services, portal_id, 11, now=NOW)
    assert [(t.policy, t.level) for t in timers(services)] == [
        ("first_reply", "remind"),
        ("first_reply", "escalate"),
    ]
    replied = NOW + dt.timedelta(minutes=2)
    update_lead(services, portal_id, 11, first_reply_at=replied)
    engine.sync_lead_timers(services, portal_id, 11, now=replied)
    assert {t.state for t in timers(services)} == {TimerState.CANCELLED}
    assert scheduled_ids(services) == []
    # Qualified on Friday 20:55 Moscow: confirmation is due in working time (Sat 10:10).
    qualified = dt.datetime(2030, 5, 24, 17, 55)
    update_lead(services, portal_id, 11, stage="qualified", qualified_at=qualified)
    engine.sync_lead_timers(services, portal_id, 11, now=qualified)
    rows = timers(services, policy="confirmation")
    assert [(t.level, t.due_at) for t in rows] == [
        ("remind", dt.datetime(2030, 5, 25, 7, 10)),
        ("escalate", dt.datetime(2030, 5, 25, 7, 25)),
    ]
    update_lead(services, portal_id, 11, confirmed_at=qualified, stage="confirmed")
    engine.sync_lead_timers(services, portal_id, 11, now=qualified)
    assert {t.state for t in timers(services, policy="confirmation")} == {TimerState.CANCELLED}


def test_call_lead_gets_callback_and_deleted_lead_none(services: Services) -> None:
    """A call lead is under the callback policy; a deleted one under none."""
    portal_id = make_portal(services)
    make_lead(services, portal_id, 21, channel="call", created_at=NOW)
    make_lead(services, portal_id, 22, channel="call", created_at=NOW, deleted_at=NOW)
    engine.sync_lead_timers(services, portal_id, 21, now=NOW)
    engine.sync_lead_timers(services, portal_id, 22, now=NOW)
    assert {(t.journey_key, t.policy) for t in timers(services)} == {(21, "callback")}


def test_working_hours_timer_rolls_over_holidays_and_weekend_in_db_and_redis(
    services: Services,
) -> None:
    """Confirmation started Wed 7 May 2025 20:55 Moscow (close 21:00; 8-9 May are holidays,
    the weekend closed) with 15 working minutes is due Mon 12 May 09:10 — row and RQ score."""
    portal_id = make_portal(services)
    with services.db() as session:
        save_settings(
            session,
            portal_id,
            {
                "working_hours": {"sat": None, "sun": None},
                "sla": {"confirmation": {"minutes": 15, "escalate_minutes": 30}},
            },
        )
    started = dt.datetime(2025, 5, 7, 17, 55)  # 20:55 in Moscow (UTC+3, no DST)
    due = engine.start_timer(
        # A sub-second start: the due time is rounded up to the whole second RQ scores by.
        services,
        portal_id,
        41,
        "confirmation",
        now=started - dt.timedelta(microseconds=1),
    )
    expected = dt.datetime(2025, 5, 12, 6, 10)  # 09:10 Moscow
    assert due == expected
    rows = {t.level: t for t in timers(services, journey_key=41)}
    assert rows["remind"].due_at == expected
    assert rows["escalate"].due_at == expected + dt.timedelta(minutes=15)
    registry = ScheduledJobRegistry(queue=services.queue("timers"))
    score = services.redis.zscore(registry.key, rows["remind"].job_id)
    assert score == expected.replace(tzinfo=dt.UTC).timestamp()


def test_booking_without_qualification_starts_confirmation_from_now(services: Services) -> None:
    """An old lead that just got a booking time: the confirmation clock starts now, not at
    the lead's creation (which would make it overdue at once); a later sync keeps the start."""
    portal_id = make_portal(services)
    make_lead(
        services,
        portal_id,
        51,
        created_at=NOW - dt.timedelta(days=2),
        first_reply_at=NOW - dt.timedelta(days=2),
        booking_at=NOW + dt.timedelta(days=1),
    )
    engine.sync_lead_timers(services, portal_id, 51, now=NOW)
    engine.sync_lead_timers(services, portal_id, 51, now=NOW + dt.timedelta(minutes=5))
    rows = timers(services, journey_key=51)
    assert [(t.policy, t.level, t.due_at) for t in rows] == [
        ("confirmation", "remind", NOW + dt.timedelta(minutes=15)),
        ("confirmation", "escalate", NOW + dt.timedelta(minutes=30)),
    ]
