"""``b24app demo`` (what ``./dev demo`` runs) starts everything and ``/health`` answers."""

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
        [sys.executable, "-m", "b24app.cli", "demo", "--port", str(port),
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
            wait_for(lambda: count("SELECT count(*) FROM timers WHERE state = 'pending'") >= 3,
                     what="the demo's history seeded")  # fmt: skip
            assert count("SELECT count(*) FROM kpi_daily_state") == 1
            assert count("SELECT count(*) FROM leads") >= 1500
            assert count("SELECT count(*) FROM leads WHERE came_at IS NOT NULL") > 300
            assert count("SELECT count(*) FROM leads WHERE no_show_at IS NOT NULL") > 50
            assert count("SELECT count(*) FROM timers WHERE level = 'escalate'") > 10
            assert count("SELECT count(*) FROM campaign_costs") == 8
            assert count("SELECT count(*) FROM portal_directory WHERE kind = 'user'") >= 6
        finally:
            engine.dispose()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
