"""``b24app-demo`` (what ``./dev demo`` runs) starts everything and ``/health`` answers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import requests
from sqlalchemy import create_engine
from sqlalchemy import text

from tests.conftest import free_port
from tests.waiting import deadline_seconds
from tests.waiting import wait_for


def test_demo_starts_installs_and_answers_health(tmp_path) -> None:
    """The demo installs the app into the emulated salon portal and serves /health."""
    port, emu_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("B24APP_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "devportal.demo", "--port", str(port),
         "--emulator-port", str(emu_port), "--workdir", str(tmp_path)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + deadline_seconds(180)
        health = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = requests.get(f"http://127.0.0.1:{port}/health", timeout=10)
                if health.status_code == 200:
                    break
            except requests.RequestException:  # not up yet, or busy starting: ask again
                time.sleep(0.3)
        assert health is not None and health.status_code == 200
        # "ok" needs the schema at head (the details need the metrics token)
        assert health.json() == {"status": "ok"}
        page = requests.get(f"http://127.0.0.1:{emu_port}/", timeout=5)
        assert "salon" in page.text
        # The salon's 90 days went through the install's backfill into the app's store.
        engine = create_engine(f"sqlite:///{tmp_path / 'b24app.sqlite'}")

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
        finally:
            engine.dispose()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
