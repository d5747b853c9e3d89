"""``b24app-demo`` (what ``./dev demo`` runs) starts everything and ``/health`` answers."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

import pytest
import requests
from sqlalchemy import create_engine
from sqlalchemy import Engine
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy.orm import Session

from b24app.appointments.reinvite_kpi import reinvite_conversion
from b24app.storage.models import Portal
from tests.plugins.demo import DemoRun
from tests.waiting import deadline_seconds
from tests.waiting import wait_for

# one demo run for this file and tests/test_demo_browser.py (tests/plugins/demo.py)
pytestmark = pytest.mark.xdist_group("demo")


def test_demo_starts_installs_and_answers_health(running_demo: DemoRun) -> None:
    """The demo installs the app into the emulated salon portal and serves /health."""
    health = requests.get(f"{running_demo.app_url}/health", timeout=deadline_seconds())
    assert health.status_code == 200
    # "ok" needs the schema at head (the details need the metrics token)
    assert health.json() == {"status": "ok"}
    page = requests.get(f"{running_demo.emulator_url}/", timeout=5)
    assert "salon" in page.text
    # The salon's 90 days went through the install's backfill into the app's store.
    engine = create_engine(f"sqlite:///{running_demo.workdir / 'b24app.sqlite'}")

    def count(sql: str) -> int:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar() or 0)

    try:
        # The last step of the seeding: the live leads' SLA timers.
        live = "SELECT count(*) FROM timers WHERE state = 'pending' AND policy = 'first_reply'"
        wait_for(lambda: count(live) >= 3, what="the demo's history seeded")
        assert count("SELECT count(*) FROM kpi_daily_state") == 1
        assert count("SELECT count(*) FROM journeys") >= 1500
        assert count("SELECT count(*) FROM journeys WHERE came_at IS NOT NULL") > 300
        assert count("SELECT count(*) FROM journeys WHERE no_show_at IS NOT NULL") > 50
        assert count("SELECT count(*) FROM timers WHERE level = 'escalate'") > 10
        assert count("SELECT count(*) FROM campaign_costs") == 8
        assert count("SELECT count(*) FROM portal_directory WHERE kind = 'user'") >= 6
        # The appointments of the 90 days came through the date-field route, were reminded
        # by each channel (and fell through some), and clients answered in their chats.
        assert count("SELECT count(*) FROM appointments WHERE journey_id IS NOT NULL") > 400
        for channel in ("chat", "workflow", "todo"):
            sql = f"SELECT count(*) FROM reminder_attempts WHERE channel = '{channel}' AND ok"
            assert count(sql) > 50, channel
        assert count("SELECT count(*) FROM reminder_attempts WHERE NOT ok") > 50
        assert count("SELECT count(*) FROM appointments WHERE confirmed_at IS NOT NULL") > 50
        assert count("SELECT count(*) FROM appointments WHERE status = 'reschedule'") > 0
        assert count("SELECT count(*) FROM appointments WHERE reminded_via IS NULL") > 50
        # The chat sends' delivery checks ran in the replay: each state shows, and a send the
        # messenger refused fell through to the SMS workflow.
        for state in ("delivered", "read", "failed"):
            sql = f"SELECT count(*) FROM reminder_attempts WHERE channel = 'chat' AND state = '{state}'"
            assert count(sql) > 5, state
        late = "SELECT count(*) FROM reminder_attempts WHERE channel = 'chat' AND ok AND state = 'failed'"
        assert count(late) > 5
        # Clients moved and cancelled visits in their chats; freed times were refilled from the
        # waitlist, and those visits came.
        assert count("SELECT count(*) FROM appointments WHERE moved_at IS NOT NULL") > 3
        assert count("SELECT count(*) FROM appointments WHERE status = 'cancelled'") > 3
        assert count("SELECT count(*) FROM slot_refills") > 1
        came = (
            "SELECT count(*) FROM slot_refills r JOIN appointments a ON a.booking_id = r.booking_id"
            " WHERE a.outcome = 'came'"
        )
        assert count(came) > 0
        # No-shows' outcomes recorded, and re-invitations sent to those who agreed to offers
        assert count("SELECT count(*) FROM appointments WHERE outcome = 'no_show'") > 20
        fired = "SELECT count(*) FROM timers WHERE policy = 'reinvite' AND state = 'fired'"
        assert count(fired) > 0
        _reinvited_clients_booked_again(engine)
        _silent_client_reminded_by_workflow(running_demo, count)
    finally:
        engine.dispose()


def _reinvited_clients_booked_again(engine: Engine) -> None:
    """Some re-invited clients answered and the salon's admin booked them again: the
    dashboard's conversion (b24app/appointments/reinvite_kpi.py) over the 90 days."""
    with Session(engine) as session:
        portal_id = session.scalar(select(Portal.id))
        assert portal_id is not None
        end = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(days=1)
        got = reinvite_conversion(session, portal_id, end - dt.timedelta(days=92), end)
    assert got["sent"] >= 2, got
    assert 0 < got["booked"] < got["sent"], got


def _silent_client_reminded_by_workflow(run: DemoRun, count: Callable[[str], int]) -> None:
    """The WhatsApp client silent for 3 days: the worker tried her chat, found the 24 h window
    closed without sending, and started the salon's SMS workflow instead."""
    found = re.search(r"window closed: lead (\d+)", run.printed)
    assert found, run.printed
    lead = int(found.group(1))
    attempts = (
        "SELECT count(*) FROM reminder_attempts r JOIN appointments a ON a.id = r.appointment_id"
        f" WHERE a.lead_id = {lead} AND a.booking_id IS NOT NULL"
    )
    assert (
        count(f"{attempts} AND r.channel = 'chat' AND NOT r.ok AND r.error = 'window_closed'") == 1
    )
    assert count(f"{attempts} AND r.channel = 'workflow' AND r.ok") == 1
    assert count(f"{attempts} AND r.channel = 'todo'") == 0
    assert "chat (window_closed) → workflow (ok)" in run.printed, run.printed
