"""Helpers for consent tests: the portal's consent records, moving one timer to now, and
"the worker has nothing left to do" (to check that something did NOT happen)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from rq.registry import StartedJobRegistry
from sqlalchemy import select

from b24app.context import Services
from b24app.storage.models import ConsentRecord
from b24app.storage.models import Timer
from b24app.timers.engine import remove_job
from b24app.timers.engine import schedule_job
from tests.appointments.conftest import bookings_without_bookings_own_reminders  # noqa: F401
from tests.appointments.conftest import portal_id  # noqa: F401  (the fixture)
from tests.appointments.conftest import utc_now

QUEUES = ("assistant", "timers", "events", "default", "bulk")


def records(services: Services) -> list[ConsentRecord]:
    with services.db() as session:
        rows = list(session.scalars(select(ConsentRecord).order_by(ConsentRecord.id)))
        session.expunge_all()
        return rows


def timer(services: Services, timer_id: int) -> Timer:
    with services.db() as session:
        row = session.get(Timer, timer_id)
        assert row is not None
        session.expunge(row)
        return row


def due_now(services: Services, timer_id: int, in_seconds: float = 1.0) -> None:
    """Time is driven, not raced: timer ``timer_id`` becomes due ``in_seconds`` from now."""
    now = utc_now().replace(microsecond=0)
    with services.db() as session:
        row = session.get(Timer, timer_id)
        assert row is not None
        row.due_at = now + dt.timedelta(seconds=in_seconds)
        session.flush()
        session.expunge(row)
    remove_job(services, row.job_id)
    schedule_job(services, row, now)


def worker_idle(emulator: Any, services: Services) -> bool:
    """The emulator delivered its events and no queue holds or runs a job."""
    if not emulator.wait_idle(timeout=0.05):
        return False
    for name in QUEUES:
        queue = services.queue(name)
        if queue.count or StartedJobRegistry(queue=queue).count:
            return False
    return True
