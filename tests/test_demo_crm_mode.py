"""``./dev demo --crm-mode simple``: the emulated portal runs without leads, the app reads the
mode at install and follows the seeded clients on their deals."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

from tests.conftest import free_port
from tests.waiting import deadline_seconds


def test_demo_in_simple_mode(tmp_path) -> None:  # type: ignore[no-untyped-def]
    port, emu_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("B24APP_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "devportal.demo", "--port", str(port),
         "--emulator-port", str(emu_port), "--workdir", str(tmp_path), "--crm-mode", "simple"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        start_new_session=True,
    )  # fmt: skip
    db = tmp_path / "b24app.sqlite"

    def state() -> tuple[str | None, int]:
        try:
            with sqlite3.connect(db) as conn:
                mode = conn.execute("SELECT crm_mode FROM portals").fetchone()
                deals = conn.execute(
                    "SELECT count(*) FROM journeys WHERE deal_id IS NOT NULL AND came_at IS NOT NULL"
                ).fetchone()
            return (mode[0] if mode else None), int(deals[0])
        except sqlite3.Error:
            return None, 0

    try:
        deadline = time.monotonic() + deadline_seconds(180)
        while time.monotonic() < deadline and proc.poll() is None:
            if state() == ("simple", 1):
                break
            time.sleep(0.5)
        assert state() == ("simple", 1)  # the AI chat client's deal was won: one visit
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
    assert "CRM mode:          simple" in out
