"""The cron table: every recurring job is importable and lands on a configured queue."""

from __future__ import annotations

from b24app.schedule import make_cron


def test_every_recurring_job_is_registered_on_a_known_queue(services) -> None:
    """reconciliation, lost robot calls, reports, backfill resume, the REST-log purge, the
    daily re-read of each portal's CRM mode, the daily plan refresh and the sweep of coalesced
    events left without a drainer, of assistant answers left without a sender and of
    pre-bookings whose release job Redis lost, and the sweep arming re-invitations."""
    cron = make_cron(services)
    names = {job.func.__name__: job for job in cron.get_jobs()}
    assert set(names) == {
        "reconcile_timers", "requeue_lost_calls", "send_due_reports",
        "resume_unfinished_backfills", "purge_rest_log", "refresh_stale_directories",
        "refresh_rollups", "refresh_all_crm_modes", "refresh_stale_plans",
        "drain_waiting_portals", "flush_waiting_portals", "release_overdue_holds",
        "arm_reinvitations",
    }  # fmt: skip
    assert {job.queue_name for job in cron.get_jobs()} <= set(services.settings.queue_names)
    assert names["reconcile_timers"].interval == 60
    assert names["refresh_all_crm_modes"].interval == 24 * 3600
    assert names["purge_rest_log"].kwargs == {"days": services.settings.rest_log_days}
