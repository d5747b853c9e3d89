"""Token safety: processes refreshing one portal at once never lose the refresh token; a
revoked grant parks the portal (``reauth_required``) instead of looping."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from select import select as wait_readable
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy import select

from b24app.bitrix.errors import AuthRevoked
from b24app.bitrix.errors import PortalUnavailable
from b24app.config import Settings
from b24app.context import Services
from b24app.storage.models import Journey
from b24app.storage.models import PortalStatus
from b24app.storage.models import RestLog
from devportal import DevPortal
from tests.plugins.worker import worker_env
from tests.reliability.conftest import db_portal

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 2
CALLS = 4
ROUNDS = 3


@pytest.fixture
def oauth_requests(emulator: DevPortal, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every request that reached the emulator's OAuth token endpoint (grant types)."""
    seen: list[str] = []
    original = emulator._ep_token

    def counting(request: Any) -> Any:
        seen.append(str(request.values.get("grant_type") or ""))
        return original(request)

    monkeypatch.setattr(emulator, "_ep_token", counting)
    return seen


class Callers:
    """``PROCESSES`` token_caller processes, started once; :meth:`run_round` starts a round in
    all of them at once and waits for each to answer it (their errors go to ``log``)."""

    def __init__(self, settings: Settings, member_id: str, log: Path) -> None:
        self.log = log.open("w")
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-m", "tests.reliability.token_caller", member_id, str(CALLS)],
                cwd=ROOT,
                env=worker_env(settings),
                text=True,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.log,
            )  # fmt: skip
            for _ in range(PROCESSES)
        ]
        self._answers("ready")  # every process has built its services

    def run_round(self) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        self._answers("done")

    def _answers(self, expected: str) -> None:
        for proc in self.procs:
            assert proc.stdout is not None
            ready, _, _ = wait_readable([proc.stdout], [], [], 60)
            line = proc.stdout.readline().strip() if ready else "(no answer in 60 s)"
            assert line == expected, f"{line}: {self.log.name}"

    def close(self) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.close()
        for proc in self.procs:
            assert proc.wait(timeout=60) == 0, self.log.name
        self.log.close()


@pytest.fixture
def callers(settings: Settings, installed_portal: Any, tmp_path: Path) -> Iterator[Callers]:
    callers = Callers(settings, installed_portal.member_id, tmp_path / "callers.log")
    try:
        yield callers
    finally:
        for proc in callers.procs:
            if proc.poll() is None:
                proc.kill()
        callers.log.close()


def test_concurrent_refresh_in_two_processes_keeps_the_token(
    emulator: DevPortal,
    installed_portal: Any,
    services: Services,
    oauth_requests: list[str],
    callers: Callers,
) -> None:
    """Each expiry: two processes call at once, both succeed, ONE refresh reaches the OAuth
    server; after every round the stored pair still refreshes."""
    before = emulator.token_refreshes(installed_portal)
    for round_no in range(1, ROUNDS + 1):
        assert installed_portal.expire_tokens() > 0
        callers.run_round()
        assert emulator.token_refreshes(installed_portal) - before == round_no
        assert oauth_requests.count("refresh_token") == round_no
        assert db_portal(services, installed_portal.member_id).status == PortalStatus.ACTIVE
    callers.close()
    # The pair left in the database is the live one: another expiry refreshes from here.
    installed_portal.expire_tokens()
    assert services.bitrix(installed_portal.member_id).call("user.current")["ID"]
    assert emulator.token_refreshes(installed_portal) - before == ROUNDS + 1


def test_revoked_grant_parks_the_portal_without_looping(
    emulator: DevPortal,
    installed_portal: Any,
    services: Services,
    oauth_requests: list[str],
    run_jobs: Callable[..., None],
) -> None:
    """invalid_grant → reauth_required in the DB; later calls and queued jobs make no HTTP
    request at all and ask the OAuth server no more."""
    member_id = installed_portal.member_id
    installed_portal.revoke_grant()
    installed_portal.expire_tokens()
    client = services.bitrix(member_id)
    with pytest.raises(AuthRevoked):
        client.call("user.current")
    portal = db_portal(services, member_id)
    assert portal.status == PortalStatus.REAUTH_REQUIRED
    assert oauth_requests.count("refresh_token") == 1

    http_before = emulator.http_requests(installed_portal)
    for _ in range(3):
        with pytest.raises(PortalUnavailable):
            services.bitrix(member_id).call("crm.lead.list")
    # An event still arrives (the portal is authentic) and its job runs: it does nothing.
    lead_id = installed_portal.add_lead({"TITLE": "Стрижка", "SOURCE_ID": "CALL"})
    assert emulator.wait_idle()
    run_jobs("events")
    assert emulator.http_requests(installed_portal) == http_before
    assert oauth_requests.count("refresh_token") == 1
    with services.db() as session:
        assert session.scalar(select(func.count()).select_from(Journey).where(
            Journey.portal_id == portal.id, Journey.lead_id == lead_id)) == 0  # fmt: skip
        oauth_rows = session.scalar(
            select(func.count())
            .select_from(RestLog)
            .where(RestLog.member_id == member_id, RestLog.method == "oauth.token")
        )
    assert oauth_rows == 1
    # At most RQ's bounded Retry of the job is left (each run is the same no-HTTP refusal).
    queue = services.queue("events")
    parked = queue.scheduled_job_registry.get_job_ids() + queue.failed_job_registry.get_job_ids()
    for job in queue.job_class.fetch_many(parked, connection=services.redis):
        assert job is not None and (job.retries_left or 0) <= 3
