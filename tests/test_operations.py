"""Operations: what /metrics shows after real work, and what the logs never contain."""

from __future__ import annotations

import io
import logging

import requests

from b24app import logs
from b24app.robots import definitions as d


def _metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 if absent)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_count_events_rest_calls_and_timers(
    emulator, installed_portal, live_app, run_jobs, services
) -> None:
    """After an install and a chat lead: events in, REST calls for the portal, pending timers."""
    installed_portal.add_lead({"TITLE": "Чат", "SOURCE_ID": "1|OPENLINE", "ASSIGNED_BY_ID": 2})
    assert emulator.wait_idle()
    run_jobs()
    text = requests.get(services.settings.public_url + "/metrics", timeout=10,
                        headers={"Authorization": f"Bearer {services.settings.metrics_token}"}).text  # fmt: skip
    assert _metric(text, "b24app_events_total", event="ONCRMLEADADD") >= 1
    assert _metric(text, "b24app_rest_calls_total", outcome="ok") >= 3
    assert "member_id" not in text and installed_portal.member_id not in text
    assert _metric(text, "b24app_timers_pending") >= 2  # first reply: remind + escalate


def test_failed_jobs_are_counted(services, run_jobs) -> None:
    """A job that raises is counted by name in b24app_jobs_failed_total."""
    from b24app import metrics

    before = metrics.JOBS_FAILED.labels("process_event")._value.get()
    services.queue("events").enqueue("b24app.handlers.jobs.process_event", "nobody", "BAD", 1, 0)
    run_jobs("events")
    assert metrics.JOBS_FAILED.labels("process_event")._value.get() == before + 1


def test_no_secret_or_client_data_in_logs(emulator, live_app, portal, run_jobs, services) -> None:
    """Install, events and a robot with DEBUG logs captured: no token, secret or client PII."""
    stream = io.StringIO()
    handler = logs.make_handler(stream)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        portal.install()
        run_jobs()
        lead = portal.add_lead({"TITLE": "Запись", "NAME": "Анастасия", "LAST_NAME": "Петрова",
                                "PHONE": [{"VALUE": "+79161234567", "VALUE_TYPE": "MOBILE"}],
                                "SOURCE_ID": "2|TELEGRAM", "ASSIGNED_BY_ID": 2})  # fmt: skip
        assert emulator.wait_idle()
        run_jobs()
        token = portal.run_robot(d.QUALIFY, lead, {"goal": "маникюр", "desired_time": "завтра",
                                                   "contact": "+79161234567"})  # fmt: skip
        assert emulator.wait_idle()
        run_jobs()
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    output = stream.getvalue()
    assert "install" in output  # the capture did see the app's logs
    secrets = {portal.application_token, services.settings.client_secret, token}
    secrets |= {p.access_token for p in emulator.tokens._by_access.values()}
    secrets |= {p.refresh_token for p in emulator.tokens._by_refresh.values()}
    leaked = [s for s in secrets if s and s in output]
    assert leaked == []
    for personal in ("Анастасия", "Петрова", "+79161234567", "9161234567"):
        assert personal not in output
