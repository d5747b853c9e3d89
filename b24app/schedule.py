"""Recurring jobs, run by ``b24app cron`` (RQ's CronScheduler) onto the RQ queues.

Every recurring job is idempotent, so a second cron process during a deploy does no harm:
reconciliation re-creates only missing timers, reports are unique per period and recipient,
the REST-log purge deletes by age.
"""

from __future__ import annotations

from rq.cron import CronScheduler

from b24app.context import Services

RECONCILE_EVERY_S = 60
REPORTS_EVERY_S = 300
PURGE_EVERY_S = 6 * 3600


def make_cron(services: Services) -> CronScheduler:
    """A CronScheduler with the app's recurring jobs registered."""
    from b24app.bitrix.restlog import purge_rest_log
    from b24app.kpi.reports import send_due_reports
    from b24app.robots.jobs import requeue_lost_calls
    from b24app.sla.reconcile import reconcile_timers

    prefix = services.settings.queue_prefix
    cron = CronScheduler(connection=services.redis, logging_level="WARNING", name="b24app-cron")
    cron.register(
        reconcile_timers,
        queue_name=prefix + "timers",
        interval=RECONCILE_EVERY_S,
        result_ttl=300,
        failure_ttl=86400,
    )
    cron.register(
        send_due_reports,
        queue_name=prefix + "default",
        interval=REPORTS_EVERY_S,
        result_ttl=300,
        failure_ttl=86400,
    )
    cron.register(
        purge_rest_log,
        queue_name=prefix + "bulk",
        interval=PURGE_EVERY_S,
        kwargs={"days": services.settings.rest_log_days},
        result_ttl=300,
        failure_ttl=86400,
    )
    return cron
