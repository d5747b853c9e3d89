"""Load burst: lead events fanned out over many portals, acknowledged and processed for real.

Starts a private redis-server, migrates a database (an SQLite file, or ``--database-url``),
serves ``b24app.wsgi:app`` with gunicorn (``--gunicorn`` workers), starts ``--rq-workers``
real ``b24app worker`` subprocesses and the Bitrix24 emulator (its leaky bucket at the
platform's 2 req/s, burst 50). Installs the app into ``--portals`` emulated portals through
the real installer, then creates ``--events`` leads spread over them with ``portal.add_lead``
— each one an ``ONCRMLEADADD`` the emulator delivers asynchronously (4 delivery threads, as
Bitrix24's queue server). Prints: events/s acknowledged, backlog drain time (until the events
queue is empty and every lead has its ``Journey`` row), loss, duplicate timers, REST limit hits.

    python bench/load_burst.py [--events 5000] [--portals 50] [--gunicorn 3] [--rq-workers 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import func
from sqlalchemy import select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from b24app import context  # noqa: E402
from b24app.config import Settings  # noqa: E402
from b24app.storage.migrate import upgrade  # noqa: E402
from b24app.storage.models import Journey  # noqa: E402
from b24app.storage.models import Portal  # noqa: E402
from b24app.storage.models import Timer  # noqa: E402
from devportal import DevPortal  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.conftest import RedisServer  # noqa: E402
from tests.plugins.worker import worker_env  # noqa: E402
from tests.plugins.worker import WorkerProcess  # noqa: E402

SOURCES = ("CALL", "WEBFORM", "OPENLINE", "1|TELEGRAM", "EMAIL")


@dataclass
class BurstResult:
    """What one burst measured."""

    events: int
    portals: int
    acknowledged: int
    non_200: int
    ack_seconds: float
    drain_seconds: float
    lead_rows: int
    duplicate_lead_rows: int
    timer_rows: int
    duplicate_timers: int
    limit_hits: int
    rest_requests: int

    @property
    def events_per_second(self) -> float:
        return self.acknowledged / self.ack_seconds if self.ack_seconds else 0.0

    def table(self) -> str:
        rows = [
            ("lead events / portals", f"{self.events} / {self.portals}"),
            ("acknowledged 200 (other answers)", f"{self.acknowledged} ({self.non_200})"),
            ("acknowledged events/s", f"{self.events_per_second:.0f}"),
            ("acknowledgement window (s)", f"{self.ack_seconds:.1f}"),
            ("backlog drain time (s)", f"{self.drain_seconds:.1f}"),
            ("Lead rows (lost)", f"{self.lead_rows} ({self.events - self.lead_rows})"),
            ("duplicate Lead rows", str(self.duplicate_lead_rows)),
            ("Timer rows (duplicates)", f"{self.timer_rows} ({self.duplicate_timers})"),
            ("REST HTTP requests", str(self.rest_requests)),
            ("QUERY_LIMIT_EXCEEDED answers", str(self.limit_hits)),
        ]
        width = max(len(k) for k, _ in rows) + 2
        lines = [f"{'metric':<{width}}{'value':>14}"]
        lines += [f"{k:<{width}}{v:>14}" for k, v in rows]
        return "\n".join(lines)


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise RuntimeError(f"timed out: {what}")


def run_burst(
    *,
    events: int,
    portals: int,
    gunicorn_workers: int = 3,
    rq_workers: int = 2,
    database_url: str | None = None,
    redis_server: RedisServer | None = None,
    drain_timeout: float = 1800.0,
) -> BurstResult:
    """Run one burst end to end and return its figures (everything started is stopped)."""
    own_redis = redis_server is None
    redis = redis_server or RedisServer()
    if own_redis:
        redis.start()
    workdir = Path(tempfile.mkdtemp(prefix="b24app-bench-burst-"))
    db_url = database_url or "sqlite:///" + str(workdir / "burst.sqlite")
    upgrade(db_url)
    port = free_port()
    settings = Settings(
        client_id="local.bench.app",
        client_secret="bench-client-secret-0123456789abcdef0123",
        public_url=f"http://127.0.0.1:{port}",
        database_url=db_url,
        redis_url=redis.url,
        secret_key="bench-secret-key-0123456789abcdef01234567",
        allow_insecure_endpoints=True,
        log_level="WARNING",
    )
    services = context.build_services(settings)
    emu = DevPortal(
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        app_base_url=settings.public_url,
        rate=2,
        burst=50,
        delivery_timeout=60.0,  # an answer slower than that is lost, as Bitrix24 would drop it
    )
    env = {**worker_env(settings), "B24APP_LOG_LEVEL": "WARNING"}
    gunicorn = subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), "--workers", str(gunicorn_workers),
         "--bind", f"127.0.0.1:{port}", "--log-level", "warning", "b24app.wsgi:app"],
        cwd=workdir, env=env,
    )  # fmt: skip
    workers = [WorkerProcess(settings, {"B24APP_LOG_LEVEL": "WARNING"}) for _ in range(rq_workers)]
    emu.start()
    try:
        _wait(lambda: _up(settings.public_url), 180, "gunicorn up")  # a loaded CI machine
        for worker in workers:
            worker.start()
        emu_portals = [emu.create_portal(f"p{i}") for i in range(portals)]
        for portal in emu_portals:
            result = portal.install()
            if result.installer is None or result.installer.status_code != 200:
                raise RuntimeError(f"install of {portal.slug} failed")
        _wait(lambda: _registered(services) == portals, 600, "every portal registered")
        _wait(lambda: _idle(services, emu), 600, "install jobs done")
        base_requests = emu.http_requests()
        base_deliveries = len(emu.deliveries(kind="event"))
        started = time.monotonic()
        start_epoch = time.time()
        for n in range(events):
            portal = emu_portals[n % portals]
            portal.add_lead(
                {"TITLE": f"Лид {n}", "SOURCE_ID": SOURCES[n % len(SOURCES)],
                 "ASSIGNED_BY_ID": 2 + n % 3}
            )  # fmt: skip
        emu.wait_idle(drain_timeout)
        delivered = emu.deliveries(kind="event")[base_deliveries:]
        lead_adds = [d for d in delivered if d.name == "ONCRMLEADADD"]
        ack_at = max(((d.sent_at or 0) + (d.duration or 0) for d in lead_adds), default=0.0)
        ack_seconds = max(0.001, ack_at - start_epoch)
        _wait(
            lambda: services.queue("events").count == 0 and _leads(services) >= events,
            drain_timeout,
            "backlog drained",
        )
        drain_seconds = time.monotonic() - started
        with services.db() as session:
            lead_rows = _leads(services)
            duplicate_leads = session.scalar(
                select(func.count()).select_from(
                    select(Journey.portal_id, Journey.lead_id)
                    .group_by(Journey.portal_id, Journey.lead_id)
                    .having(func.count() > 1)
                    .subquery()
                )
            )
            timer_rows = session.scalar(select(func.count()).select_from(Timer)) or 0
            duplicate_timers = session.scalar(
                select(func.count()).select_from(
                    select(Timer.portal_id, Timer.journey_key, Timer.policy, Timer.level)
                    .group_by(Timer.portal_id, Timer.journey_key, Timer.policy, Timer.level)
                    .having(func.count() > 1)
                    .subquery()
                )
            )
        return BurstResult(
            events=events,
            portals=portals,
            acknowledged=sum(1 for d in lead_adds if d.status == 200),
            non_200=sum(1 for d in lead_adds if d.status != 200),
            ack_seconds=ack_seconds,
            drain_seconds=drain_seconds,
            lead_rows=lead_rows,
            duplicate_lead_rows=int(duplicate_leads or 0),
            timer_rows=int(timer_rows),
            duplicate_timers=int(duplicate_timers or 0),
            limit_hits=len(emu.calls(error="QUERY_LIMIT_EXCEEDED")),
            rest_requests=emu.http_requests() - base_requests,
        )
    finally:
        for worker in workers:
            worker.kill()
        gunicorn.terminate()
        try:
            gunicorn.wait(10)
        except subprocess.TimeoutExpired:
            gunicorn.kill()
        emu.stop()
        services.dispose()
        if own_redis:
            redis.stop()


def _up(url: str) -> bool:
    try:
        requests.get(url + "/health", timeout=1)
    except requests.RequestException:
        return False
    return True


def _registered(services: context.Services) -> int:
    with services.db() as session:
        portals = session.scalars(select(Portal)).all()
        return sum(1 for p in portals if (p.registration or {}).get("statuses"))


def _idle(services: context.Services, emu: DevPortal) -> bool:
    emu.wait_idle(1)
    return all(
        services.queue(q).count == 0 and services.queue(q).started_job_registry.count == 0
        for q in ("events", "default", "bulk")
    )


def _leads(services: context.Services) -> int:
    with services.db() as session:
        return int(session.scalar(select(func.count()).select_from(Journey)) or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--portals", type=int, default=50)
    parser.add_argument("--gunicorn", type=int, default=3, help="gunicorn workers (2-4)")
    parser.add_argument("--rq-workers", type=int, default=2)
    parser.add_argument("--database-url", default=os.environ.get("B24APP_BENCH_DATABASE_URL"))
    args = parser.parse_args()
    result = run_burst(
        events=args.events,
        portals=args.portals,
        gunicorn_workers=args.gunicorn,
        rq_workers=args.rq_workers,
        database_url=args.database_url,
    )
    print()
    print(result.table())


if __name__ == "__main__":
    main()
