"""How long migration ``hj_journeys`` (``leads`` -> ``journeys``, keys -> ``journey_key``)
takes on a store made by the previous release.

Builds a database at ``wt21_rollup_indexes`` with ``--journeys`` journeys (half started on a
lead, half on a deal), two stage moves and two timers each, a robot call per ten and an
appointment per five, written by raw SQL as that release stored them; then times
``upgrade`` to the head and ``downgrade`` back, and checks the row counts survived. SQLite (a
temp file) always; PostgreSQL (127.0.0.1:5432, a throw-away database) when reachable.

    python bench/journey_migration.py [--journeys 50000] [--database sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alembic import command  # noqa: E402

from b24app.storage.migrate import alembic_config  # noqa: E402
from b24app.storage.migrate import upgrade  # noqa: E402

PREVIOUS = "wt21_rollup_indexes"
T = dt.datetime(2026, 11, 2, 9, 30)
POSTGRES = os.environ.get(
    "B24APP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
TABLES = {"old": ("leads", "lead_stage_changes"), "new": ("journeys", "journey_stage_changes")}


def fill(url: str, n: int) -> None:
    """The previous release's rows (see the module docstring)."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO portals (id, member_id, domain, client_endpoint, server_endpoint, scopes,"
            " status, plan, lang, app_version, token_version, registration, created_at,"
            " updated_at, crm_mode) VALUES (1, 'm1', 'a.bitrix24.ru', 'https://a/rest/',"
            " 'https://o/rest/', 'crm', 'active', 'std', 'ru', '1', 1, '{}', :t, :t, 'classic')"
        ), {"t": T})  # fmt: skip
        journeys, moves, timers, calls, appts = [], [], [], [], []
        for i in range(1, n + 1):
            lead = i if i % 2 else None
            key = i if lead else -i
            journeys.append({"id": i, "lead": lead, "deal": None if lead else i,
                             "kind": "lead" if lead else "deal", "t": T})  # fmt: skip
            for k, status in enumerate(("NEW", "IN_PROCESS")):
                moves.append(
                    {"id": 2 * i + k, "key": key, "s": status, "t": T + dt.timedelta(minutes=k)}
                )
            for k, level in enumerate(("remind", "escalate")):
                timers.append({"id": 2 * i + k, "key": key, "level": level, "t": T,
                               "job": f"sla-1-{key}-first_reply-{level}"})  # fmt: skip
            if i % 10 == 0:
                calls.append({"id": i, "key": key, "h": f"h{i}", "t": T})
            if i % 5 == 0:
                appts.append({"id": i, "j": i, "lead": lead, "t": T})
        conn.execute(text(
            "INSERT INTO leads (id, portal_id, lead_id, deal_id, entity_type, status_id, stage,"
            " source_id, utm_source, utm_medium, utm_campaign, utm_content, utm_term, channel,"
            " is_ai, ai_channel, currency_id, created_at, updated_at, deal_stage_id) VALUES (:id,"
            " 1, :lead, :deal, :kind, '', 'new', '', '', '', '', '', '', 'other', false, '', '',"
            " :t, :t, '')"
        ), journeys)  # fmt: skip
        conn.execute(text(
            "INSERT INTO lead_stage_changes (id, portal_id, lead_id, status_id, stage, changed_at,"
            " origin) VALUES (:id, 1, :key, :s, 'new', :t, 'event')"
        ), moves)  # fmt: skip
        conn.execute(text(
            "INSERT INTO timers (id, portal_id, lead_id, policy, level, due_at, started_at, state,"
            " job_id, payload) VALUES (:id, 1, :key, 'first_reply', :level, :t, :t, 'fired',"
            " :job, '{}')"
        ), timers)  # fmt: skip
        conn.execute(text(
            "INSERT INTO robot_calls (id, portal_id, token_hash, code, lead_id, state,"
            " return_values, log_message, created_at) VALUES (:id, 1, :h, 'q', :key, 'sent',"
            " '{}', '', :t)"
        ), calls)  # fmt: skip
        conn.execute(text(
            "INSERT INTO appointments (id, portal_id, journey_id, lead_id, source, service,"
            " starts_at, status, created_at, updated_at) VALUES (:id, 1, :j, :lead, 'robot', '',"
            " :t, 'scheduled', :t, :t)"
        ), appts)  # fmt: skip
    engine.dispose()


def counts(url: str, names: tuple[str, str]) -> tuple[int, ...]:
    engine = create_engine(url)
    with engine.connect() as conn:
        found = tuple(
            int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
            for table in (*names, "timers", "robot_calls")
        ) + (int(conn.execute(text(
            "SELECT count(*) FROM appointments WHERE journey_id IS NOT NULL")).scalar_one()),)  # fmt: skip
    engine.dispose()
    return found


def measure(label: str, url: str, n: int) -> None:
    upgrade(url, PREVIOUS)
    fill(url, n)
    before = counts(url, TABLES["old"])
    started = time.perf_counter()
    upgrade(url)
    up = time.perf_counter() - started
    after = counts(url, TABLES["new"])
    started = time.perf_counter()
    command.downgrade(alembic_config(url), PREVIOUS)
    down = time.perf_counter() - started
    back = counts(url, TABLES["old"])
    same = "rows kept" if before == after == back else f"ROWS DIFFER {before} {after} {back}"
    print(f"{label}: {n:,} journeys, {sum(before):,} rows: upgrade {up:.2f} s, "
          f"downgrade {down:.2f} s; {same}; load {os.getloadavg()[0]:.1f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--journeys", type=int, default=50_000)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    if args.database in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            measure("SQLite", f"sqlite:///{tmp}/previous.sqlite", args.journeys)
    if args.database in ("postgresql", "both"):
        admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
        name = f"b24app_bench_{uuid.uuid4().hex[:8]}"
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        except OperationalError:
            print("PostgreSQL: not reachable, skipped")
            return
        try:
            measure("PostgreSQL", POSTGRES.rsplit("/", 1)[0] + "/" + name, args.journeys)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
