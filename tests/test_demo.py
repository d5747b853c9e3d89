"""``b24app demo`` (what ``./dev demo`` runs) starts everything and ``/health`` answers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import requests

from tests.conftest import free_port
from tests.waiting import deadline_seconds


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
                health = requests.get(f"http://127.0.0.1:{port}/health", timeout=2)
                if health.status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.3)
        assert health is not None and health.status_code == 200
        assert health.json()["schema"]["current"] is True
        page = requests.get(f"http://127.0.0.1:{emu_port}/", timeout=5)
        assert "salon" in page.text
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
