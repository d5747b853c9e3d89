"""The event jobs run on a real RQ worker: a lead deletion marks the record and cancels the
lead's timers; a job for an event it does not handle fails loudly."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from b24app.context import Services
from b24app.handlers.jobs import enqueue_backfill
from b24app.handlers.jobs import enqueue_event
from b24app.handlers.jobs import event_job_id
from b24app.handlers.jobs import process_event
from b24app.handlers.jobs import resume_unfinished_backfills
from b24app.leads.lifecycle import get_lead
from b24app.storage.models import BackfillState
from b24app.storage.models import Journey
from b24app.storage.models import Timer
from b24app.storage.models import TimerState
from b24app.storage.portals import InstallAuth
from b24app.storage.portals import upsert_install

MEMBER_ID = "jobs-test-portal"
T0 = dt.datetime(2025, 4, 1, 9, 0)


@pytest.fixture
def recorded_lead(services: Services) -> int:
    """A stored portal with lead 77 recorded and one pending SLA timer on it."""
    with services.db() as session:
        portal = upsert_install(session, InstallAuth(member_id=MEMBER_ID))
        session.flush()
        session.add(Journey(portal_id=portal.id, lead_id=77, created_at=T0, channel="call"))
        session.add(
            Timer(
                portal_id=portal.id,
                journey_key=77,
                policy="first_reply",
                level="remind",
                due_at=T0 + dt.timedelta(minutes=15),
                job_id="timer-jobs-test-77",
            )
        )
        return portal.id


def test_lead_delete_job_marks_the_lead_and_cancels_its_timers(
    services: Services, recorded_lead: int, run_jobs: Callable[..., None]
) -> None:
    """ONCRMLEADDELETE through RQ: deleted_at set, the pending timer cancelled; again: gone."""
    queue = services.queue("events")
    first = queue.enqueue(process_event, MEMBER_ID, "ONCRMLEADDELETE", 77, 0)
    run_jobs("events")
    first.refresh()
    assert first.get_status() == "finished" and first.return_value() == "deleted"
    with services.db() as session:
        lead = get_lead(session, recorded_lead, 77)
        assert lead is not None and lead.deleted_at is not None
        timer = session.query(Timer).filter_by(portal_id=recorded_lead, journey_key=77).one()
        assert timer.state == TimerState.CANCELLED
    again = queue.enqueue(process_event, MEMBER_ID, "ONCRMLEADDELETE", 77, 0)
    run_jobs("events")
    again.refresh()
    assert again.return_value() == "gone"


def test_events_of_an_unknown_portal_are_dropped(services: Services) -> None:
    """A job for a portal the app does not know (uninstalled meanwhile) writes nothing."""
    assert process_event("no-such-portal", "ONCRMLEADUPDATE", 5, 0) == "no_portal"
    assert process_event("no-such-portal", "ONCRMACTIVITYADD", 5, 0) == "no_portal"


def test_a_job_for_a_foreign_event_raises(services: Services) -> None:
    """process_event refuses an event that is not about a lead (RQ records the failure)."""
    with pytest.raises(ValueError):
        process_event(MEMBER_ID, "ONCRMCONTACTADD", 5, 0)


def test_job_id_is_deterministic_and_rq_safe() -> None:
    """Same delivery → same id; characters RQ refuses are replaced."""
    a = event_job_id("ab.cd:1", "ONCRMLEADADD", 7, 100)
    assert a == event_job_id("ab.cd:1", "ONCRMLEADADD", 7, 100) == "evt-ab_cd_1-ONCRMLEADADD-7-100"
    assert a != event_job_id("ab.cd:1", "ONCRMLEADADD", 7, 101)


def test_event_is_enqueued_once(services: Services) -> None:
    """A second enqueue of the same delivery is refused while the first waits."""
    assert enqueue_event(services, "m1", "ONCRMLEADADD", 7, 100) is True
    assert enqueue_event(services, "m1", "ONCRMLEADADD", 7, 100) is False
    assert services.queue("events").count == 1


def test_event_jobs_retry_after_5_30_120_s_unless_a_test_scales_them(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The product's intervals by default; ``B24APP_RETRY_SECONDS_SCALE`` read when queued,
    never below a second (a retry stays scheduled)."""
    queue = services.queue("events")
    monkeypatch.delenv("B24APP_RETRY_SECONDS_SCALE", raising=False)
    enqueue_event(services, "m1", "ONCRMLEADADD", 7, 100)
    monkeypatch.setenv("B24APP_RETRY_SECONDS_SCALE", "0.1")
    enqueue_event(services, "m1", "ONCRMLEADADD", 8, 100)
    jobs = [queue.fetch_job(event_job_id("m1", "ONCRMLEADADD", n, 100)) for n in (7, 8)]
    assert [(j.retries_left, j.retry_intervals) for j in jobs if j is not None] == [
        (3, [5, 30, 120]), (3, [1, 3, 12]),
    ]  # fmt: skip


def test_unfinished_backfills_are_queued_again(services: Services) -> None:
    """Only portals whose backfill stopped before "done" get a bulk job, once."""
    with services.db() as session:
        stopped = upsert_install(session, InstallAuth(member_id="stopped"))
        done = upsert_install(session, InstallAuth(member_id="done"))
        session.add(BackfillState(portal_id=stopped.id, phase="leads", last_lead_id=500))
        session.add(BackfillState(portal_id=done.id, phase="done"))
    assert resume_unfinished_backfills() == 1
    assert resume_unfinished_backfills() == 0
    assert [j.args for j in services.queue("bulk").get_jobs()] == [("stopped",)]
    assert enqueue_backfill(services, "stopped") is False


def test_a_method_blocked_for_minutes_defers_the_event(services, monkeypatch) -> None:
    """OPERATION_TIME_LIMIT beyond the client's wait: the event comes back later, not failed."""
    from rq.registry import ScheduledJobRegistry

    from b24app.bitrix.errors import RateLimited
    from b24app.handlers import jobs as handler_jobs
    from b24app.leads import intake

    def blocked(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise RateLimited("OPERATION_TIME_LIMIT", "Method is blocked", 429, retry_after=420)

    monkeypatch.setattr(intake, "process", blocked)
    from b24app.leads import coalesce

    monkeypatch.setattr(coalesce, "submit", blocked)
    assert handler_jobs.process_event("m" * 32, "ONCRMLEADADD", 5, 1) == "deferred"
    scheduled = ScheduledJobRegistry(queue=services.queue("events"))
    assert len(scheduled.get_job_ids()) == 1
    job = services.queue("events").fetch_job(scheduled.get_job_ids()[0])
    assert job.args == ("m" * 32, "ONCRMLEADADD", 5, 1)
