"""Outcome questions and appointment KPIs benchmark.

1. **Redis per armed question**: ``--appointments`` (2,000) coming appointments armed with
   :func:`b24app.appointments.question.arm_question` (two timers each: the master's question
   and the administrator's); Redis ``used_memory`` delta per pending question.
2. **KPIs**: ``--history`` (20,000) past appointments of one portal over 365 days with
   journeys, sources, masters, outcomes and reminders; the time of
   :func:`b24app.kpi.appointments.appointment_kpis` for 30, 90 and 365 days (median of 5
   runs; target ≤ 150 ms for 90 days, the dashboard's budget in docs/kpi.md).

The database is PostgreSQL (127.0.0.1:5432, a throw-away database) when reachable, else
SQLite.

    python bench/outcome.py [--appointments 2000] [--history 20000] [--database sqlite]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from b24app import context  # noqa: E402
from b24app.appointments.question import arm_question  # noqa: E402
from b24app.config import Settings  # noqa: E402
from b24app.kpi.appointments import appointment_kpis  # noqa: E402
from b24app.storage.models import Appointment  # noqa: E402
from b24app.storage.models import Journey  # noqa: E402
from b24app.storage.models import Portal  # noqa: E402
from b24app.storage.models import utc_now  # noqa: E402
from bench.timers import database  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.conftest import RedisServer  # noqa: E402


def add_appointments(services: Any, portal_id: int, starts: list[dt.datetime],
                     rng: random.Random, first_deal: int = 1) -> list[int]:  # fmt: skip
    ids = []
    with services.db() as session:
        for n, starts_at in enumerate(starts, start=first_deal):
            journey = Journey(portal_id=portal_id, deal_id=n, entity_type="deal", channel="chat",
                           assigned_by_id=rng.choice((2, 3, 4)), created_at=starts_at,
                           source_id=rng.choice(("WEB", "CALL", "1|TELEGRAMBOT", "")))  # fmt: skip
            session.add(journey)
            session.flush()
            past = starts_at < utc_now()
            appt = Appointment(
                portal_id=portal_id, journey_id=journey.id, deal_id=n, starts_at=starts_at,
                created_at=starts_at - dt.timedelta(days=rng.randint(0, 14)),
                reminded_via=rng.choice(("chat", "workflow", None)),
                confirmed_at=starts_at if rng.random() < 0.6 else None,
                outcome=rng.choice(("came", "came", "came", "no_show", None)) if past else None,
            )  # fmt: skip
            session.add(appt)
            session.flush()
            ids.append(appt.id)
    return ids


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--appointments", type=int, default=2_000)
    parser.add_argument("--history", type=int, default=20_000)
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    args = parser.parse_args()
    redis_server = RedisServer()
    redis_server.start()
    url, drop = database(args.database)
    settings = Settings(
        client_id="local.bench.app", client_secret=secrets.token_urlsafe(48),
        public_url=f"http://127.0.0.1:{free_port()}", database_url=url,
        redis_url=redis_server.url, secret_key=secrets.token_urlsafe(48),
        allow_insecure_endpoints=True,
    )  # fmt: skip
    services = context.build_services(settings)
    context.set_current(services)
    rng = random.Random(23)
    try:
        with services.db() as session:
            portal = Portal(member_id="bench", domain="bench.bitrix24.ru", installer_user_id=1,
                            client_endpoint="https://bench.bitrix24.ru/rest/",
                            server_endpoint="https://oauth.bitrix.info/rest/")  # fmt: skip
            session.add(portal)
            session.flush()
            portal_id = portal.id
        now = utc_now().replace(microsecond=0)
        coming = [now + dt.timedelta(minutes=rng.randint(60, 48 * 60))
                  for _ in range(args.appointments)]  # fmt: skip
        ids = add_appointments(services, portal_id, coming, rng)
        services.redis.flushdb()
        before = int(services.redis.info("memory")["used_memory"])
        pending = sum(arm_question(services, i, now) for i in ids)
        after = int(services.redis.info("memory")["used_memory"])
        print(f"questions armed: {pending} pending for {len(ids)} appointments; "
              f"{(after - before) / max(pending, 1):.0f} B of Redis per pending question")  # fmt: skip

        past = [now - dt.timedelta(minutes=rng.randint(60, 365 * 24 * 60))
                for _ in range(args.history)]  # fmt: skip
        add_appointments(services, portal_id, past, rng, first_deal=len(ids) + 1)
        for days in (30, 90, 365):
            runs = []
            for _ in range(5):
                started = time.perf_counter()
                with services.db() as session:
                    appointment_kpis(session, portal_id, now - dt.timedelta(days=days), now,
                                     "Europe/Moscow")  # fmt: skip
                runs.append((time.perf_counter() - started) * 1000)
            print(f"appointment_kpis {days:>3} days: median {statistics.median(runs):.0f} ms "
                  f"({args.history * days // 365} appointments)")  # fmt: skip
    finally:
        services.engine.dispose()
        drop()
        redis_server.stop()


if __name__ == "__main__":
    main()
