"""Reconciliation on the real private Redis: the database rows re-create lost timer jobs."""

from __future__ import annotations

import datetime as dt

from rq.registry import ScheduledJobRegistry

from b24app.context import Services
from b24app.sla import engine
from b24app.storage.models import TimerState
from b24app.storage.models import utc_now
from b24app.timers.reconcile import GIVE_UP_AFTER
from b24app.timers.reconcile import reconcile
from tests.sla.conftest import make_portal
from tests.sla.conftest import timer_row


def test_lost_jobs_come_back_at_their_due_time_and_overdue_ones_at_once(
    services: Services,
) -> None:
    """Redis emptied: future timers are re-scheduled with the same score, overdue ones queued
    now; fired and cancelled timers stay as they are; a second pass changes nothing."""
    portal_id = make_portal(services)
    now = utc_now()
    engine.start_timer(services, portal_id, 1, "first_reply", now=now)  # due in 3 / 30 min
    engine.start_timer(services, portal_id, 2, "callback", now=now - dt.timedelta(minutes=20))
    engine.start_timer(services, portal_id, 3, "callback", now=now)
    engine.stop_timers(services, portal_id, 3)
    registry = ScheduledJobRegistry(queue=services.queue("timers"))
    before = {
        job_id: services.redis.zscore(registry.key, job_id) for job_id in registry.get_job_ids()
    }
    services.redis.flushdb()

    counts = reconcile(services, now)

    assert counts == {
        "checked": 4,
        "rescheduled": 4,
        "overdue": 1,  # lead 2's reminder (due 5 minutes ago)
        "stale_claims": 0,
        "expired": 0,
    }
    after = {
        job_id: services.redis.zscore(registry.key, job_id) for job_id in registry.get_job_ids()
    }
    overdue = timer_row(services, 2, "remind").job_id
    assert services.queue("timers").get_job_ids() == [overdue]
    assert after == {k: v for k, v in before.items() if k != overdue}
    assert reconcile(services, now)["rescheduled"] == 0


def test_timers_lost_for_longer_than_the_give_up_delay_are_skipped(services: Services) -> None:
    """A pending timer whose job is gone and which was due days ago is skipped, not sent."""
    portal_id = make_portal(services)
    long_ago = utc_now() - GIVE_UP_AFTER - dt.timedelta(hours=1)
    engine.start_timer(services, portal_id, 5, "callback", now=long_ago)
    services.redis.flushdb()
    counts = reconcile(services)
    assert counts["expired"] == 2 and counts["rescheduled"] == 0
    assert timer_row(services, 5, "remind").state == TimerState.SKIPPED
    assert services.redis.dbsize() == 0
