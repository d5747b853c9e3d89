"""Recurring jobs, run by ``b24app cron`` (RQ's CronScheduler) onto the RQ queues.

Every recurring job is idempotent, so a second cron process during a deploy does no harm:
reconciliation re-creates only missing timers and jobs, reports are unique per period and
recipient, a finished backfill asks the portal nothing, the REST-log purge deletes by age.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rq.cron import CronScheduler

from b24app.context import Services


def recurring_jobs(services: Services) -> list[tuple[Callable[..., Any], str, int, dict[str, Any]]]:
    """(job, queue, every seconds, kwargs) for each recurring job."""
    from b24app.appointments.reinvite import arm_reinvitations
    from b24app.assistant.jobs import release_overdue_holds
    from b24app.assistant.outbox import flush_waiting_portals
    from b24app.directory import refresh_stale_directories
    from b24app.handlers.jobs import resume_unfinished_backfills
    from b24app.kpi.reports import send_due_reports
    from b24app.kpi.rollup import refresh_rollups
    from b24app.leads.coalesce import drain_waiting_portals
    from b24app.leads.pipelines import refresh_all_crm_modes
    from b24app.plans import refresh_stale_plans
    from b24app.restlog import purge_rest_log
    from b24app.robots.jobs import requeue_lost_calls
    from b24app.timers.reconcile import reconcile_timers

    return [
        (reconcile_timers, "timers", 60, {}),
        (requeue_lost_calls, "events", 60, {}),
        (send_due_reports, "default", 300, {}),
        (resume_unfinished_backfills, "bulk", 15 * 60, {}),
        (purge_rest_log, "bulk", 6 * 3600, {"days": services.settings.rest_log_days}),
        (refresh_stale_directories, "default", 3600, {}),
        (refresh_rollups, "bulk", 300, {}),
        (refresh_all_crm_modes, "default", 24 * 3600, {}),
        (refresh_stale_plans, "bulk", 3600, {}),
        (drain_waiting_portals, "events", 60, {}),
        (flush_waiting_portals, "assistant", 60, {}),
        (release_overdue_holds, "timers", 60, {}),
        (arm_reinvitations, "timers", 300, {}),
    ]


def make_cron(services: Services) -> CronScheduler:
    """A CronScheduler with the app's recurring jobs registered."""
    cron = CronScheduler(connection=services.redis, logging_level="WARNING", name="b24app-cron")
    for job, queue, every, kwargs in recurring_jobs(services):
        cron.register(
            job,
            queue_name=services.settings.queue_prefix + queue,
            interval=every,
            kwargs=kwargs,
            result_ttl=300,
            failure_ttl=86400,
        )
    return cron
