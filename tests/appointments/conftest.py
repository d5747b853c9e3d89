"""Helpers for appointment tests: the installed portal's id, a journey row, timers, attempts."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from b24app.context import Services
from b24app.storage.models import Appointment
from b24app.storage.models import Journey
from b24app.storage.models import Portal
from b24app.storage.models import ReminderAttempt
from b24app.storage.models import Timer


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@pytest.fixture(autouse=True)
def bookings_without_bookings_own_reminders(request: pytest.FixtureRequest) -> None:
    """These tests are about the app's own reminders: the emulated portal's Booking sends no
    confirmation request and no reminder of its own (Bitrix24's defaults are on, and where
    they are the app sends no copy: ``test_coexist.py``). Only for tests with a portal."""
    if "portal" not in request.fixturenames:
        return
    booking = request.getfixturevalue("portal").booking
    for type_id in booking.types.types:
        booking.types.switch(
            type_id, isConfirmationNotificationOn=False, isReminderNotificationOn=False
        )


@pytest.fixture
def portal_id(installed_portal: Any, services: Services) -> int:
    with services.db() as session:
        found = session.scalar(
            select(Portal.id).where(Portal.member_id == installed_portal.member_id)
        )
        assert found is not None
        return int(found)


def make_journey(services: Services, portal_id: int, *, deal_id: int, contact_id: int | None = None,
                 lead_id: int | None = None, assigned_by_id: int = 2) -> int:  # fmt: skip
    with services.db() as session:
        row = Journey(
            portal_id=portal_id, lead_id=lead_id, deal_id=deal_id, contact_id=contact_id,
            entity_type="deal" if lead_id is None else "lead", channel="chat",
            assigned_by_id=assigned_by_id, created_at=utc_now(),
        )  # fmt: skip
        session.add(row)
        session.flush()
        return int(row.id)


def appointments(services: Services) -> list[Appointment]:
    with services.db() as session:
        rows = list(session.scalars(select(Appointment).order_by(Appointment.id)))
        session.expunge_all()
        return rows


def appointment_timers(services: Services) -> list[Timer]:
    with services.db() as session:
        rows = list(
            session.scalars(
                select(Timer).where(Timer.policy == "appointment").order_by(Timer.due_at)
            )
        )
        session.expunge_all()
        return rows


def attempts(services: Services) -> list[tuple[str, bool, str]]:
    with services.db() as session:
        return [
            (a.channel, a.ok, a.error)
            for a in session.scalars(select(ReminderAttempt).order_by(ReminderAttempt.id))
        ]


def journey(services: Services, journey_id: int) -> Journey:
    with services.db() as session:
        row = session.get(Journey, journey_id)
        assert row is not None
        session.expunge(row)
        return row


def drive_reminders(
    services: Services, portal_id: int, *, first_in: float = 1.0, spacing: float | None = None
) -> list[Timer]:
    """Time is driven, not raced: the portal's reminders not yet due move so the earliest is due
    ``first_in`` seconds from now, the gaps between them kept, their RQ jobs with them.
    ``spacing`` (seconds) puts them that far apart instead, in the same order: for a test that
    needs them all sent but not the real gaps (an hour's gap is a minute of waiting).

    Tests book far ahead (a slow machine may take long to record a booking, and a reminder
    already past is skipped, never sent late), check the due times, then call this.
    Returns the moved timers (detached), earliest first."""
    from b24app.storage.models import TimerState
    from b24app.timers.engine import remove_job
    from b24app.timers.engine import schedule_job

    now = utc_now().replace(microsecond=0)
    with services.db() as session:
        pending = list(
            session.scalars(
                select(Timer)
                .where(
                    Timer.portal_id == portal_id,
                    Timer.policy == "appointment",
                    Timer.state == TimerState.PENDING,
                    Timer.due_at > now,  # one already due may be firing: not ours to move
                )
                .order_by(Timer.due_at)
            )
        )
        assert pending, "no pending reminder to drive"
        first = now + dt.timedelta(seconds=first_in)
        shift = pending[0].due_at - first
        for n, timer in enumerate(pending):
            timer.due_at = (
                timer.due_at - shift
                if spacing is None
                else first + dt.timedelta(seconds=n * spacing)
            )
        session.flush()
        session.expunge_all()
    for timer in pending:  # after the commit: the job reads the row
        remove_job(services, timer.job_id)
        schedule_job(services, timer, now)
    return pending


def run_scheduled(services: Services, run_jobs: Any) -> None:
    """Run now the jobs scheduled on the ``events`` queue (the reads of a chat while a reply
    is awaited, ``replies.watch_reminder``), then drain: in-process tests have no scheduler."""
    from rq.registry import ScheduledJobRegistry

    queue = services.queue("events")
    registry = ScheduledJobRegistry(queue=queue)
    for job_id in registry.get_job_ids():
        job = queue.fetch_job(job_id)
        if job is not None:
            registry.remove(job)
            queue.enqueue_job(job)
    run_jobs()
