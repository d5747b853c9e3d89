"""Faults: REST errors for a period, a worker killed mid-job, Redis restarted empty, the
database unreachable — afterwards every lead has its one record and every due escalation
went out exactly once."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine
from sqlalchemy import select
from sqlalchemy import text

from b24app.config import Settings
from b24app.context import Services
from b24app.settings import save_settings
from b24app.sla import engine
from b24app.storage.migrate import upgrade
from b24app.storage.models import Journey
from b24app.storage.models import Timer
from b24app.storage.models import TimerState
from b24app.timers.reconcile import reconcile_timers
from devportal import DevPortal
from tests.conftest import RedisServer
from tests.plugins.worker import WorkerProcess
from tests.reliability.conftest import db_portal
from tests.reliability.conftest import duplicate_moves
from tests.reliability.conftest import lead_rows
from tests.reliability.conftest import wait_for
from tests.sla.conftest import make_lead

# (fault kind, error code the emulator answers) — each one for a period while leads arrive.
PERIOD_FAULTS = [
    ("query_limit", "QUERY_LIMIT_EXCEEDED", None),
    ("internal_error", "INTERNAL_SERVER_ERROR", None),
    ("expired_token", "expired_token", None),
    # A 429 on the whole method makes Bitrix24 block it for up to 10 minutes (the emulator
    # says so in ``operating_reset_at``); here it hits the lead read inside the batch.
    ("operation_time_limit", "OPERATION_TIME_LIMIT", "crm.item.get"),
]
PERIOD_S = 2.0
LEADS_PER_PERIOD = 3


def test_rest_errors_for_a_period_lose_no_lead(
    emulator: DevPortal, installed_portal: Any, services: Services, rq_worker: WorkerProcess
) -> None:
    """503/500/401/429 answers for a while: every lead recorded once, each move once."""
    rq_worker.start()
    portal = db_portal(services, installed_portal.member_id)
    qualified = portal.registration["statuses"]["qualified"]
    created: list[int] = []
    for kind, _code, method in PERIOD_FAULTS:
        # The period starts now and ends PERIOD_S after the app first ran into it.
        fault = emulator.inject_fault(kind, portal=installed_portal, method=method)
        for n in range(LEADS_PER_PERIOD):
            lead_id = installed_portal.add_lead(
                {"TITLE": f"{kind} {n}", "SOURCE_ID": "CALL", "ASSIGNED_BY_ID": 2}
            )
            installed_portal.update_lead(lead_id, {"STATUS_ID": qualified})
            created.append(int(lead_id))
        wait_for(lambda fault=fault: fault.hits > 0, what=f"{kind} reached by the app")
        time.sleep(PERIOD_S)
        fault.until = time.monotonic()
    for kind, code, _method in PERIOD_FAULTS:
        assert emulator.calls(error=code, portal=installed_portal), f"{kind} never answered"
    wait_for(
        lambda: set(created) <= set(lead_rows(services, portal.id)),
        timeout=60,
        what="every lead recorded",
    )
    wait_for(lambda: services.queue("events").count == 0, what="events queue empty")
    rows = lead_rows(services, portal.id)
    assert all(rows[lead_id] == 1 for lead_id in created)
    assert duplicate_moves(services) == []
    with services.db() as session:
        stages = session.execute(
            select(Journey.lead_id, Journey.stage).where(Journey.portal_id == portal.id)
        ).all()
    wait_for(
        lambda: all(s == "qualified" for _, s in _stages(services, portal.id, created)),
        timeout=40,
        what="every lead qualified",
    )
    assert len(stages) >= len(created)


def _stages(services: Services, portal_id: int, lead_ids: list[int]) -> list[tuple[int, str]]:
    with services.db() as session:
        return [
            (int(a), str(b))
            for a, b in session.execute(
                select(Journey.lead_id, Journey.stage).where(
                    Journey.portal_id == portal_id, Journey.lead_id.in_(lead_ids)
                )
            )
        ]


def test_worker_killed_mid_job_is_recovered(
    emulator: DevPortal, installed_portal: Any, services: Services, rq_worker: WorkerProcess
) -> None:
    """SIGKILL while a job waits on Bitrix24; a new worker picks the job up again and the lead
    ends with one record and its reply."""
    portal = db_portal(services, installed_portal.member_id)
    lead_id = int(installed_portal.add_lead({"SOURCE_ID": "CALL"}, events=False))
    hang = emulator.inject_fault(
        "hang", count=1, portal=installed_portal, method="crm.activity.get", hang_seconds=20
    )
    rq_worker.start()
    installed_portal.add_activity(lead_id, kind="call", direction="outgoing")
    wait_for(lambda: hang.hits == 1, what="the job is waiting on Bitrix24")
    started = services.queue("events").started_job_registry.get_job_ids(cleanup=False)
    assert len(started) == 1
    rq_worker.kill()
    assert lead_rows(services, portal.id) == {}
    rq_worker.start()  # recovers the dead worker's job (b24app.worker.recover_abandoned_jobs)
    wait_for(lambda: lead_rows(services, portal.id) == {lead_id: 1}, what="lead recorded")
    wait_for(
        lambda: _reply_kind(services, portal.id, lead_id) == "call",
        what="reply recorded",
    )
    queue = services.queue("events")
    assert queue.failed_job_registry.count == 0
    assert lead_rows(services, portal.id) == {lead_id: 1}


def _reply_kind(services: Services, portal_id: int, lead_id: int) -> str | None:
    with services.db() as session:
        return session.scalar(
            select(Journey.first_reply_kind).where(
                Journey.portal_id == portal_id, Journey.lead_id == lead_id
            )
        )


def test_redis_restarted_empty_loses_no_escalation(
    emulator: DevPortal,
    installed_portal: Any,
    services: Services,
    redis_server: RedisServer,
    rq_worker: WorkerProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pending timers' jobs vanish with Redis; reconciliation re-creates them and each level
    is sent exactly once."""
    monkeypatch.setenv("B24APP_SLA_SECONDS_PER_MINUTE", "1")
    rq_worker.env["B24APP_SLA_SECONDS_PER_MINUTE"] = "1"
    portal = db_portal(services, installed_portal.member_id)
    with services.db() as session:
        save_settings(
            session, portal.id, {"sla": {"first_reply": {"minutes": 2, "escalate_minutes": 4}}}
        )
    leads = []
    for _ in range(3):
        lead_id = int(installed_portal.add_lead({"SOURCE_ID": "OPENLINE"}, events=False))
        make_lead(services, portal.id, lead_id, channel="chat", assigned_by_id=2)
        engine.sync_lead_timers(services, portal.id, lead_id)
        leads.append(lead_id)
    assert _timer_count(services, TimerState.PENDING) == 6
    redis_server.restart_empty()
    assert services.redis.ping()
    assert services.queue("timers").scheduled_job_registry.count == 0  # the wake-ups are gone
    counts = reconcile_timers()
    assert counts["rescheduled"] == 6
    rq_worker.start()
    wait_for(lambda: _timer_count(services, TimerState.FIRED) == 6, what="every level fired")
    assert reconcile_timers()["rescheduled"] == 0
    time.sleep(1.5)  # a duplicate would show up now
    tags = sorted(
        c.params["TAG"]
        for c in emulator.calls(method="im.notify.system.add", portal=installed_portal)
    )
    expected = sorted(
        f"b24app|sla|{lead_id}|first_reply|{level}"
        for lead_id in leads
        for level in ("remind", "escalate")
    )
    assert tags == expected


def _timer_count(services: Services, state: str) -> int:
    with services.db() as session:
        return len(session.scalars(select(Timer.id).where(Timer.state == state)).all())


# -- PostgreSQL unavailable ------------------------------------------------------------------


class TcpProxy:
    """A TCP proxy 127.0.0.1:<port> → PostgreSQL that can be cut (connections dropped,
    new ones refused) and restored."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.base_events.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self.writers.difference_update((writer, up_writer))

    async def _open(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for writer in list(self.writers):
            writer.transport.abort()
        self.writers.clear()

    def start(self) -> TcpProxy:
        self.thread.start()
        self.up()
        return self

    def up(self) -> None:
        asyncio.run_coroutine_threadsafe(self._open(), self.loop).result(5)

    def down(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self.loop).result(5)

    def stop(self) -> None:
        self.down()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def proxied(settings: Settings) -> Iterator[tuple[Settings, TcpProxy]]:
    """The session's PostgreSQL database reached through a :class:`TcpProxy`."""
    if os.environ.get("B24APP_TEST_DATABASE", "sqlite") != "postgresql":
        pytest.skip("needs PostgreSQL (B24APP_TEST_DATABASE=postgresql): SQLite is a file")
    proxy = TcpProxy(("127.0.0.1", 5432)).start()
    url = settings.database_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    assert url != settings.database_url
    yield settings.replace(database_url=url), proxy
    proxy.stop()


def test_database_outage_answers_503_and_loses_nothing(
    emulator: DevPortal,
    installed_portal: Any,
    services: Services,
    proxied: tuple[Settings, TcpProxy],
) -> None:
    """PostgreSQL unreachable for ~3 s while events arrive: answers are 200 or 503 (never
    500); Bitrix24 does not re-send, so 503-refused deliveries are replayed by the test as a
    portal's retry would be; afterwards every acknowledged lead is recorded once."""
    from b24app import create_app
    from b24app.context import build_services
    from tests.plugins.live import LiveServer

    proxied_settings, proxy = proxied
    upgrade(proxied_settings.database_url)  # reachable through the proxy
    app_services = build_services(proxied_settings)
    app = create_app({"TESTING": True, "B24APP_SERVICES": app_services}, settings=proxied_settings)
    from tests.conftest import free_port

    server = LiveServer(app, free_port()).start()
    worker = WorkerProcess(proxied_settings).start()
    portal = db_portal(services, installed_portal.member_id)
    try:
        emulator.delivery.mode = "drop"  # this test posts the events itself, to see answers
        lead_ids = [
            int(installed_portal.add_lead({"TITLE": f"db {n}", "SOURCE_ID": "CALL"}))
            for n in range(12)
        ]
        forms = [_event_form(installed_portal, lead_id, n) for n, lead_id in enumerate(lead_ids)]

        def post(form: dict[str, str]) -> int:
            return requests.post(f"{server.url}/handlers/events", data=form, timeout=30).status_code

        statuses: dict[int, int] = {}
        with ThreadPoolExecutor(4) as pool:
            for n, form in enumerate(forms[:4]):
                statuses[n] = post(form)
            proxy.down()
            outage = list(pool.map(post, forms[4:8]))
            statuses.update(dict(zip(range(4, 8), outage, strict=True)))
            time.sleep(3)
            proxy.up()
            for n, form in enumerate(forms[8:], start=8):
                statuses[n] = post(form)
        assert set(statuses.values()) <= {200, 503}, statuses
        assert 503 in outage, outage
        for n, status in statuses.items():  # a portal's retry of each refused delivery
            if status == 503:
                wait_for(lambda n=n: post(forms[n]) == 200, what="accepted after the outage")
        wait_for(
            lambda: set(lead_ids) <= set(lead_rows(services, portal.id)),
            timeout=60,
            what="every lead recorded",
        )
        assert all(n == 1 for n in lead_rows(services, portal.id).values())
        assert duplicate_moves(services) == []
    finally:
        worker.kill()
        server.stop()
        app_services.dispose()
        with create_engine(proxied_settings.database_url).connect() as conn:
            conn.execute(text("SELECT 1"))


def _event_form(emu_portal: Any, lead_id: int, n: int) -> dict[str, str]:
    return {
        "event": "ONCRMLEADADD",
        "event_handler_id": "1",
        "data[FIELDS][ID]": str(lead_id),
        "ts": str(int(time.time()) + n),
        "auth[domain]": emu_portal.domain,
        "auth[client_endpoint]": emu_portal.client_endpoint,
        "auth[server_endpoint]": emu_portal.server_endpoint,
        "auth[member_id]": emu_portal.member_id,
        "auth[application_token]": emu_portal.application_token,
    }
