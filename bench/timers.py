"""SLA timer benchmark: Redis memory per pending timer and firing lateness.

1. Starts ``--pending`` (10,000) pending SLA timers (5,000 leads × remind/escalate, due in a
   day) through :func:`b24app.sla.engine.start_timer` and reports the Redis ``used_memory``
   delta per timer.
2. With those still pending, runs ``--workers`` real ``b24app worker`` subprocesses (RQ's
   scheduler included) and measures lateness = the moment the ``im.notify.system.add`` call
   reached the emulator − the timer's due time, p50/p99/max, for two loads:
   * **spread**: ``--timers`` reminders due over ``--moments`` whole seconds (e.g. 300 over
     20 s = 15 per second, several due at the same second);
   * **burst**: ``--burst`` reminders all due at the same second (drain throughput).

Targets: p99 < 2 s, < 2 KB per timer. The client-side REST rate limit (Bitrix24's ~2 req/s
per portal) is lifted: with it, a burst on one portal is paced by the platform, not by us.
The database is PostgreSQL (127.0.0.1:5432, a throw-away database) when reachable, as in
production; ``--database sqlite`` for a file.

    python bench/timers.py [--pending 10000] [--timers 300] [--moments 20] [--burst 200]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from b24app import context  # noqa: E402
from b24app.config import Settings  # noqa: E402
from b24app.sla import engine  # noqa: E402
from b24app.storage.migrate import upgrade  # noqa: E402
from b24app.storage.models import Journey  # noqa: E402
from b24app.storage.models import Portal  # noqa: E402
from b24app.storage.models import utc_now  # noqa: E402
from devportal import DevPortal  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.conftest import RedisServer  # noqa: E402
from tests.plugins.worker import WorkerProcess  # noqa: E402

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def database(kind: str) -> tuple[str, Callable[[], None]]:
    """A fresh migrated database URL and a cleanup callable (PostgreSQL when reachable)."""
    if kind == "postgresql":
        try:
            admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
            name = f"b24app_bench_{uuid.uuid4().hex[:8]}"
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            url = POSTGRES.rsplit("/", 1)[0] + "/" + name

            def drop() -> None:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()

            upgrade(url)
            return url, drop
        except OperationalError:
            print("PostgreSQL unreachable: using SQLite")
    url = "sqlite:///" + str(Path(tempfile.mkdtemp(prefix="b24app-bench-")) / "bench.sqlite")
    upgrade(url)
    return url, lambda: None


def batch_shape(call: Any) -> str:
    """A call's method; a ``batch`` named by its command ids without digits:
    ``batch[chat,read]`` (a chat look-up), ``batch[chat_history]`` (a chat read back)."""
    cmd = call.params.get("cmd") if isinstance(call.params, dict) else None
    if call.method != "batch" or not isinstance(cmd, dict):
        return str(call.method)
    return "batch[" + ",".join(sorted({k.rstrip("0123456789") for k in cmd})) + "]"


def requests_by_method(emu: Any, since: float) -> str:
    """Where the REST requests since ``since`` (``time.time()``) went: HTTP requests by method
    (a ``batch`` once) and, in brackets, the commands inside the batches."""
    top: Counter[str] = Counter()
    inner: Counter[str] = Counter()
    for call in emu.calls():
        if call.time >= since:
            (inner if call.in_batch else top)[batch_shape(call)] += 1
    parts = [f"{m} {n}" for m, n in top.most_common()]
    parts.append("(in batches: " + ", ".join(f"{m} {n}" for m, n in inner.most_common()) + ")")
    return ", ".join(parts)


def percentiles(values: list[float]) -> tuple[float, float, float]:
    """p50, p99, max (nan when empty)."""
    if not values:
        return float("nan"), float("nan"), float("nan")
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered), p99, ordered[-1]


def lateness_run(
    services: Any,
    emu: DevPortal,
    portal: Any,
    portal_id: int,
    lead_ids: range,
    moments: int,
    lead_in: int,
) -> list[float]:
    """Reminders of ``lead_ids`` due over ``moments`` whole seconds from ``lead_in`` s on;
    returns each notification's lateness (emulator arrival − due time), in seconds."""
    now = utc_now()
    with services.db() as session:
        for lead_id in lead_ids:
            session.add(
                Journey(
                    portal_id=portal_id,
                    lead_id=lead_id,
                    channel="chat",
                    assigned_by_id=2,
                    created_at=now,
                )
            )
    # A policy "minute" is one second here (test hook, see b24app.sla.engine); the
    # escalation level falls due long after the measurement.
    dues: dict[int, float] = {}
    for index, lead_id in enumerate(lead_ids):
        minutes = lead_in + index % moments
        due = engine.start_timer(
            services, portal_id, lead_id, "first_reply", minutes=minutes, now=now
        )
        dues[lead_id] = due.replace(tzinfo=dt.UTC).timestamp()
    assert min(dues.values()) > time.time(), "timers scheduled too slowly: raise lead_in"
    expected = {f"b24app|sla|{lead_id}|first_reply|remind" for lead_id in lead_ids}
    deadline = max(dues.values()) + 60
    arrivals: dict[str, float] = {}
    while time.time() < deadline and len(arrivals) < len(expected):
        for call in emu.calls(method="im.notify.system.add", portal=portal):
            tag = str(call.params.get("TAG"))
            if call.ok and tag in expected:
                arrivals.setdefault(tag, call.time)
        time.sleep(0.25)
    return [at - dues[int(tag.split("|")[2])] for tag, at in arrivals.items()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pending", type=int, default=10_000)
    parser.add_argument("--timers", type=int, default=300)
    parser.add_argument("--moments", type=int, default=20)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    args = parser.parse_args()

    redis_server = RedisServer()
    redis_server.start()
    database_url, drop_database = database(args.database)
    settings = Settings(
        client_id="local.bench.app",
        client_secret="bench-client-secret-0123456789abcdef0123",
        public_url=f"http://127.0.0.1:{free_port()}",
        database_url=database_url,
        redis_url=redis_server.url,
        secret_key="bench-secret-key-0123456789abcdef01234567",
        allow_insecure_endpoints=True,
        # Bitrix24 allows ~2 requests/s per portal, so a burst on ONE portal is paced by the
        # platform, not by us; lifted here to measure the engine (scheduler → worker → REST).
        rest_rate=10_000.0,
        rest_burst=10_000,
    )
    services = context.build_services(settings)
    context.set_current(services)
    emu = DevPortal(
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        app_base_url=settings.public_url,
    )
    emu.start()
    workers: list[WorkerProcess] = []
    try:
        portal = emu.create_portal("bench", rate=10_000, burst=10_000)
        portal.prepare_install(api_only=True)  # the app is installed: its tokens are valid
        tokens = portal.tokens_for(1)
        with services.db() as session:
            row = Portal(
                member_id=portal.member_id,
                domain=portal.domain,
                client_endpoint=portal.client_endpoint,
                server_endpoint=portal.server_endpoint,
                access_token=tokens.access_token,
                refresh_token=tokens.refresh_token,
                token_expires_at=dt.datetime.fromtimestamp(tokens.expires_at, dt.UTC).replace(
                    tzinfo=None
                ),
                installer_user_id=1,
            )
            session.add(row)
            session.flush()
            portal_id = row.id

        # 1. memory per pending timer
        services.redis.flushdb()
        before = int(services.redis.info("memory")["used_memory"])
        leads = args.pending // 2
        t0 = time.perf_counter()
        for lead_id in range(1, leads + 1):
            engine.start_timer(services, portal_id, lead_id, "first_reply", minutes=24 * 60)
        start_rate = leads * 2 / (time.perf_counter() - t0)
        after = int(services.redis.info("memory")["used_memory"])
        per_timer = (after - before) / (leads * 2)

        # 2. lateness with those 10,000 still pending
        os.environ["B24APP_SLA_SECONDS_PER_MINUTE"] = "1"
        env = {"B24APP_REST_RATE": "10000", "B24APP_REST_BURST": "10000"}
        for _ in range(args.workers):
            workers.append(WorkerProcess(settings, env).start())
        spread_ids = range(1_000_000, 1_000_000 + args.timers)
        spread = lateness_run(services, emu, portal, portal_id, spread_ids, args.moments, lead_in=8)
        burst_ids = range(2_000_000, 2_000_000 + args.burst)
        burst = lateness_run(services, emu, portal, portal_id, burst_ids, 1, lead_in=8)
        drain = max(burst) if burst else float("nan")

        s50, s99, smax = percentiles(spread)
        b50, b99, _ = percentiles(burst)
        rate = args.timers / args.moments
        print()
        print(f"database: {database_url.split(':', 1)[0]}, workers: {args.workers}")
        print(f"{'metric':<52}{'value':>12}{'target':>10}")
        print(f"{'pending timers':<52}{leads * 2:>12}")
        print(f"{'start_timer rate (timers/s)':<52}{start_rate:>12.0f}")
        print(f"{'Redis bytes per pending timer':<52}{per_timer:>12.0f}{'< 2048':>10}")
        label = f"spread: {args.timers} over {args.moments} s ({rate:.0f}/s), delivered"
        print(f"{label:<52}{len(spread):>12}{args.timers:>10}")
        print(f"{'spread lateness p50 (s)':<52}{s50:>12.3f}")
        print(f"{'spread lateness p99 (s)':<52}{s99:>12.3f}{'< 2':>10}")
        print(f"{'spread lateness max (s)':<52}{smax:>12.3f}")
        label = f"burst: {args.burst} due at one second, delivered"
        print(f"{label:<52}{len(burst):>12}{args.burst:>10}")
        print(f"{'burst lateness p50 (s)':<52}{b50:>12.3f}")
        print(f"{'burst lateness p99 (s)':<52}{b99:>12.3f}")
        print(f"{'burst drained in (s after due)':<52}{drain:>12.3f}")
        if burst and drain > 0:
            print(f"{'burst throughput (notifications/s)':<52}{len(burst) / drain:>12.0f}")
    finally:
        for worker in workers:
            worker.stop()
        emu.stop()
        services.dispose()
        redis_server.stop()
        drop_database()


if __name__ == "__main__":
    main()
