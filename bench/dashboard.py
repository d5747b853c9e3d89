"""Dashboard server time for a portal with 100,000 journeys over three years.

Seeds a SQLite file (and PostgreSQL when reachable: a private database created and dropped
here) with 100,000 leads over ``--days`` (1,095: three years), ~150,000 stage changes,
~30,000 timers and campaign costs, plus a second portal's 20,000 leads; builds the daily
roll-up (``b24app.kpi.rollup.refresh_portal``, timed), then times ``--runs`` runs of

* ``metrics``: :func:`b24app.kpi.rollup.compute_dashboard` (what the page calls: the roll-up
  for periods of 32 days or more, the per-lead SQL below that);
* ``view``: ``POST /app/dashboard`` with the session token ``t`` in the body through the Flask
  test client (the follow-up path, whole request including rendering),

for the last 30 days, 90 days, the year and three years, and prints p50/p95 per backend.
Target: p95 ≤ 150 ms. The roll-up's stored part is cached per process (keyed by the build):
``--no-cache`` measures every request as the first one after a build.

    python bench/dashboard.py [--leads 100000] [--days 1095] [--runs 50] [--no-postgres]
                              [--no-cache]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy import insert
from sqlalchemy import text

from b24app import context
from b24app import create_app
from b24app.config import Settings
from b24app.kpi import metrics
from b24app.kpi import rollup
from b24app.placements import trust
from b24app.settings import DEFAULTS
from b24app.storage.models import Base
from b24app.storage.models import CampaignCost
from b24app.storage.models import DirectoryEntry
from b24app.storage.models import Journey
from b24app.storage.models import JourneyStageChange
from b24app.storage.models import Portal
from b24app.storage.models import Timer
from b24app.storage.models import utc_now

PG_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SOURCES = ["WEB", "CALL", "TELEGRAM", "WHATSAPP", "INSTAGRAM", "AVITO", "WEBFORM", "EMAIL"]
CAMPAIGNS = ["", "", "spring_sale", "vk_target", "yandex_direct", "insta_stories", "avito_promo"]
CHANNELS = ["chat", "call", "webform", "email", "other"]


def seed(url: str, n_leads: int, other_leads: int = 20_000, days: int = 365) -> int:
    """Create the schema and the data set; returns the big portal's id."""
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    rng = random.Random(42)
    now = utc_now()
    with engine.begin() as conn:
        ids = []
        for i in range(2):
            result = conn.execute(
                insert(Portal).values(
                    member_id=f"bench-{i}-{uuid.uuid4().hex[:8]}", domain=f"bench{i}.bitrix24.ru",
                    client_endpoint=f"https://bench{i}.bitrix24.ru/rest/",
                    server_endpoint="https://oauth.bitrix.info/rest/", registration={},
                    created_at=now, updated_at=now, token_version=0, status="active", scopes="",
                    plan="P", lang="ru", app_version="1",
                )
            )  # fmt: skip
            ids.append(result.inserted_primary_key[0])
    for portal_id, count in ((ids[0], n_leads), (ids[1], other_leads)):
        leads: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        timers: list[dict[str, Any]] = []
        for lead_id in range(1, count + 1):
            created = now - dt.timedelta(seconds=rng.randint(0, days * 86400))
            replied = rng.random() < 0.9
            reply = created + dt.timedelta(seconds=int(rng.lognormvariate(4.5, 1.2)))
            booked = rng.random() < 0.3
            confirmed = booked and rng.random() < 0.8
            no_show = confirmed and rng.random() < 0.12
            came = confirmed and not no_show
            leads.append(
                {
                    "portal_id": portal_id, "lead_id": lead_id, "created_at": created,
                    "status_id": "NEW", "stage": "new", "assigned_by_id": rng.randint(1, 12),
                    "source_id": rng.choice(SOURCES), "utm_campaign": rng.choice(CAMPAIGNS),
                    "utm_source": "", "utm_medium": "", "utm_content": "", "utm_term": "",
                    "channel": rng.choice(CHANNELS), "is_ai": rng.random() < 0.35,
                    "ai_channel": "", "currency_id": "RUB",
                    "first_reply_at": reply if replied else None,
                    "booking_at": created + dt.timedelta(days=2) if booked else None,
                    "confirmed_at": created + dt.timedelta(hours=5) if confirmed else None,
                    "came_at": created + dt.timedelta(days=2) if came else None,
                    "no_show_at": created + dt.timedelta(days=2) if no_show else None,
                    "opportunity": Decimal(rng.randint(8, 60) * 100) if came else None,
                    "deleted_at": created if rng.random() < 0.01 else None,
                    "updated_at": now - dt.timedelta(hours=1),
                }
            )  # fmt: skip
            changes.append(
                {"portal_id": portal_id, "lead_id": lead_id, "status_id": "NEW", "stage": "new",
                 "changed_at": created, "origin": "event"}
            )  # fmt: skip
            if confirmed:
                changes.append(
                    {"portal_id": portal_id, "lead_id": lead_id, "status_id": "CONF",
                     "stage": "confirmed", "changed_at": created + dt.timedelta(hours=5),
                     "origin": "event"}
                )  # fmt: skip
            if not replied or rng.random() < 0.2:
                for level in ("remind", "escalate") if rng.random() < 0.4 else ("remind",):
                    timers.append(
                        {"portal_id": portal_id, "lead_id": lead_id, "policy": "first_reply",
                         "level": level, "due_at": created + dt.timedelta(minutes=3),
                         "started_at": created, "state": "fired",
                         "job_id": f"sla:{portal_id}:{lead_id}:{level}", "payload": {},
                         "fired_at": created + dt.timedelta(minutes=3)}
                    )  # fmt: skip
        with engine.begin() as conn:
            for table, rows in ((Journey, leads), (JourneyStageChange, changes), (Timer, timers)):
                for start in range(0, len(rows), 5000):
                    conn.execute(insert(table), rows[start : start + 5000])
    with engine.begin() as conn:
        month = now.date().replace(day=1)
        for _ in range(days // 30 + 2):
            for campaign in CAMPAIGNS[2:]:
                conn.execute(
                    insert(CampaignCost).values(
                        portal_id=ids[0], utm_campaign=campaign, month=month.strftime("%Y-%m"),
                        cost=Decimal(rng.randint(20, 200) * 1000),
                    )
                )  # fmt: skip
            month = (month - dt.timedelta(days=1)).replace(day=1)
        conn.execute(text("ANALYZE"))  # planner statistics, as a live database would have
    engine.dispose()
    return int(ids[0])


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, float]:
    fn()  # warm-up: connection pool, template compilation, caches
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, int(round(0.95 * (len(samples) - 1))))]
    return statistics.median(samples), p95


def run_backend(name: str, url: str, n_leads: int, runs: int, days: int = 1095) -> None:
    started = time.perf_counter()
    portal_id = seed(url, n_leads, days=days)
    print(
        f"[{name}] seeded {n_leads:,} leads over {days} days in {time.perf_counter() - started:.1f} s"
    )
    settings = Settings(
        database_url=url,
        secret_key="bench-secret-key-0123456789abcdef01234567",
        client_secret="bench-client-secret-0123456789abcdef0123",
        redis_url="redis://127.0.0.1:1/0",
    )
    services = context.build_services(settings)
    app = create_app({"TESTING": True, "B24APP_SERVICES": services}, settings=settings)
    client = app.test_client()
    with services.db() as session:
        portal = session.get(Portal, portal_id)
        assert portal is not None
        viewer = trust.Viewer(portal.id, portal.member_id, portal.domain, 1, True, "ru")
    token = trust.issue_token(settings.secret_key, viewer)
    with services.db() as session:  # the portal's names, as the refresh job leaves them
        for m in range(1, 13):
            session.add(
                DirectoryEntry(portal_id=portal_id, kind="user", code=str(m), name=f"Сотрудник {m}")
            )
        for code in SOURCES:
            session.add(DirectoryEntry(portal_id=portal_id, kind="source", code=code, name=code))
    tz = DEFAULTS["time_zone"]
    started = time.perf_counter()
    with services.db() as session:
        rows = rollup.refresh_portal(session, portal_id, DEFAULTS)
    print(f"[{name}] roll-up built: {rows:,} rows in {time.perf_counter() - started:.1f} s")
    if name == "postgresql":  # the visibility map autovacuum keeps (index-only scans)
        with services.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(
                text("VACUUM kpi_daily, kpi_daily_reply")
            )
    today = metrics.local_today(tz)
    three_years = {"period": "custom", "from": (today - dt.timedelta(days=1094)).isoformat(),
                   "to": today.isoformat()}  # fmt: skip
    for preset in ("30d", "90d", "365d", "3y"):
        query = three_years if preset == "3y" else {"period": preset}
        period = metrics.period_for(
            None if preset == "3y" else preset, tz,
            date_from=dt.date.fromisoformat(three_years["from"]) if preset == "3y" else None,
            date_to=today if preset == "3y" else None,
        )  # fmt: skip

        def compute(period: metrics.Period = period) -> None:
            with services.db() as session:
                rollup.compute_dashboard(session, portal_id, period, DEFAULTS)

        def view(query: dict[str, str] = query) -> None:
            response = client.post("/app/dashboard", data={"t": token, **query})
            assert response.status_code == 200, response.status_code

        with services.db() as session:
            leads = metrics.summary_counts(session, portal_id, period, 3).leads
        for label, fn in (("metrics", compute), ("view", view)):
            p50, p95 = timed(fn, runs)
            flag = "ok" if p95 <= 150 else "OVER TARGET"
            print(
                f"[{name}] {label:7s} {preset:>4s} ({leads:,} leads in period): "
                f"p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  [{flag}]"
            )
    services.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--days", type=int, default=1095)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-cache", action="store_true", help="the roll-up's cache off")
    args = parser.parse_args()
    if args.no_cache:
        rollup._STORED_CACHE_SIZE = 0  # every entry is evicted as soon as it is stored
    with tempfile.TemporaryDirectory(prefix="b24app-bench-") as tmp:
        run_backend(
            "sqlite",
            "sqlite:///" + str(Path(tmp) / "bench.sqlite"),
            args.leads,
            args.runs,
            args.days,
        )
    if args.no_postgres:
        return
    name = f"b24app_bench_{uuid.uuid4().hex[:10]}"
    try:
        admin = create_engine(PG_BASE, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # PostgreSQL not reachable: SQLite figures only
        print(f"[postgresql] skipped: {type(exc).__name__}")
        return
    try:
        run_backend(
            "postgresql", PG_BASE.rsplit("/", 1)[0] + "/" + name, args.leads, args.runs, args.days
        )
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
