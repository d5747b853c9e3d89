"""``running_demo``: ``b24app-demo`` (what ``./dev demo`` runs, with its 90 days of history)
started once per test session and shared by the tests that look at it.

A demo start costs ~30–60 s on the CI machine (the history is seeded, imported by the
install's backfill and its appointments replayed through the app): tests/test_demo.py and
tests/test_demo_browser.py read the same running demo. They carry
``pytest.mark.xdist_group("demo")`` and ``./dev test`` runs ``--dist loadgroup``, so under
``-n 2`` they land on one worker, one after the other, and the demo starts once. Neither
changes what the other checks: one reads the app's database and pages, the other opens the
dashboard.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import pytest
from _pytest.nodeid import NodeId

from devportal.ports import free_port
from tests.waiting import deadline_seconds

READY = "b24app demo is running"


@dataclass
class DemoRun:
    """A running demo: its ports, its work directory and what it printed."""

    port: int
    emulator_port: int
    workdir: Path
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    @property
    def app_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.emulator_port}"

    @property
    def printed(self) -> str:
        return "".join(self.lines)

    def ready(self) -> bool:
        return any(READY in line for line in self.lines)


def start_demo(workdir: Path, *args: str) -> DemoRun:
    """``python -m devportal.demo`` on free ports (as the tests start it); returns once it
    printed that it runs, or fails with what it printed."""
    port, emulator_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("B24APP_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "devportal.demo", "--port", str(port),
         "--emulator-port", str(emulator_port), "--workdir", str(workdir), *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        start_new_session=True,
    )  # fmt: skip
    run = DemoRun(port, emulator_port, workdir, proc)

    def read() -> None:
        assert run.proc.stdout is not None
        for line in run.proc.stdout:
            run.lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + deadline_seconds(300)
    while time.monotonic() < deadline and run.proc.poll() is None and not run.ready():
        time.sleep(0.2)
    if not run.ready():
        stop_demo(run)
        raise AssertionError(f"the demo did not start:\n{run.printed[-2000:]}")
    time.sleep(0.5)  # the rest of the summary is printed in the same write
    return run


def stop_demo(run: DemoRun) -> None:
    """SIGTERM to the demo's process group (its worker, cron and redis-server with it)."""
    try:
        os.killpg(run.proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        run.proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(run.proc.pid, signal.SIGKILL)
        run.proc.wait()


@pytest.fixture(scope="session")
def running_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    """The default demo (classic CRM, seeded), once per test session."""
    run = start_demo(tmp_path_factory.mktemp("demo"))
    yield run
    stop_demo(run)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``--dist loadgroup`` on pytest 9: pytest-xdist 3.8 marks a grouped test by setting
    ``item._nodeid`` to ``<id>@<group>``, which pytest 9 no longer reads (a node's id is its
    ``_id``), so no test was grouped. Done here as xdist means it; without xdist, or once
    xdist's own suffix shows in the id, nothing to do."""
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        groups = {
            str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
            for mark in item.iter_markers("xdist_group")
        }
        if groups and "@" not in item.nodeid and hasattr(item, "_id"):
            item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(sorted(groups))}")
