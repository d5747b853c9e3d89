"""Reconciliation: the database is the source of truth for timers, Redis only the wake-up.

:func:`reconcile_timers` runs every minute from cron (``b24app.schedule``). It re-creates the
RQ job of every pending timer whose job is missing (Redis restarted without persistence, a job
lost), enqueues overdue ones at once, and re-enqueues timers whose claim went stale (a worker
died between claim and send). Sending stays at most once: ``fire_timer`` claims the row.
"""

from __future__ import annotations

from rq.job import Job
from sqlalchemy import select

from b24app import context
from b24app.sla.engine import remove_job
from b24app.sla.engine import schedule_job
from b24app.sla.jobs import STALE_CLAIM
from b24app.storage.models import Timer
from b24app.storage.models import TimerState
from b24app.storage.models import utc_now

BATCH = 500


def reconcile_timers() -> dict[str, int]:
    """Cron job: restore missing timer jobs; returns counts (checked, rescheduled, overdue,
    stale_claims)."""
    services = context.current()
    now = utc_now()
    counts = {"checked": 0, "rescheduled": 0, "overdue": 0, "stale_claims": 0}
    last_id = 0
    while True:  # pages of BATCH rows by id
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
        for row, exists in zip(rows, present, strict=True):
            counts["checked"] += 1
            stale = row.claimed_at is not None and row.claimed_at < now - STALE_CLAIM
            if exists and not stale:
                continue
            timer = Timer(id=row.id, job_id=row.job_id, due_at=row.due_at)
            if stale:
                # Fire again now: the job re-claims the stale claim and sends.
                timer.due_at = min(row.due_at, now)
                remove_job(services, row.job_id)
                counts["stale_claims"] += 1
            if schedule_job(services, timer, now):
                counts["rescheduled"] += 1
                if timer.due_at <= now:
                    counts["overdue"] += 1
