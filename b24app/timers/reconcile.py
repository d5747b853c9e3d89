"""Reconciliation: the database is the source of truth for timers, Redis only the wake-up.

:func:`reconcile_timers` runs every minute from cron (``b24app.schedule``, queue ``timers``).
For every ``pending`` timer it checks, one pipelined ``EXISTS`` per page of rows, that the RQ
job is still in Redis, and:

* job missing (Redis restarted without persistence, a job lost, a failed job expired after
  its retries) → scheduled again at its due time, or enqueued at once when already overdue;
* claim older than :data:`b24app.timers.fire.STALE_CLAIM` without ``fired_at`` (the worker died
  between claim and send) → its job is replaced and enqueued at once; the new job re-claims;
* job missing and the due time more than :data:`GIVE_UP_AFTER` ago → ``skipped``
  (``expired``): a notification days late helps nobody.

Nothing is sent twice: a re-created job for a timer that fired meanwhile finds it fired (or
claimed) and does nothing — see :mod:`b24app.timers.fire`.
"""

from __future__ import annotations

import datetime as dt

from rq.job import Job
from sqlalchemy import select
from sqlalchemy import update

from b24app import context
from b24app.context import Services
from b24app.storage.models import Timer
from b24app.storage.models import TimerState
from b24app.storage.models import utc_now
from b24app.timers.engine import remove_job
from b24app.timers.engine import schedule_job
from b24app.timers.fire import STALE_CLAIM

BATCH = 500
GIVE_UP_AFTER = dt.timedelta(days=2)


def reconcile_timers() -> dict[str, int]:
    """Cron job (every minute): restore missing timer jobs from the database.

    Returns counts: ``checked``, ``rescheduled`` (jobs re-created), ``overdue`` (of those,
    enqueued at once), ``stale_claims`` and ``expired``.
    """
    return reconcile(context.current())


def reconcile(services: Services, now: dt.datetime | None = None) -> dict[str, int]:
    """:func:`reconcile_timers` on explicit services and clock."""
    moment = now or utc_now()
    counts = {"checked": 0, "rescheduled": 0, "overdue": 0, "stale_claims": 0, "expired": 0}
    last_id = 0
    while True:  # pages of BATCH rows by id: memory stays flat with many timers
        with services.db() as session:
            rows = list(
                session.execute(
                    select(Timer.id, Timer.job_id, Timer.due_at, Timer.claimed_at)
                    .where(Timer.state == TimerState.PENDING, Timer.id > last_id)
                    .order_by(Timer.id)
                    .limit(BATCH)
                )
            )
        if not rows:
            return counts
        last_id = rows[-1].id
        # One round trip for the whole page: which jobs does Redis still have?
        with services.redis.pipeline(transaction=False) as pipe:
            for row in rows:
                pipe.exists(Job.key_for(row.job_id))
            present = pipe.execute()
        expired: list[int] = []
        for row, exists in zip(rows, present, strict=True):
            counts["checked"] += 1
            stale = row.claimed_at is not None and row.claimed_at < moment - STALE_CLAIM
            if exists and not stale:
                continue
            if not exists and row.due_at < moment - GIVE_UP_AFTER:
                expired.append(row.id)
                continue
            timer = Timer(id=row.id, job_id=row.job_id, due_at=row.due_at)
            if stale:
                # Fire again now: the job re-claims the stale claim and sends.
                timer.due_at = min(row.due_at, moment)
                remove_job(services, row.job_id)
                counts["stale_claims"] += 1
            if schedule_job(services, timer, moment):
                counts["rescheduled"] += 1
                if timer.due_at <= moment:
                    counts["overdue"] += 1
        if expired:
            with services.db() as session:
                session.execute(
                    update(Timer)
                    .where(Timer.id.in_(expired), Timer.state == TimerState.PENDING)
                    .values(state=TimerState.SKIPPED)
                    .execution_options(synchronize_session=False)
                )
            counts["expired"] += len(expired)
