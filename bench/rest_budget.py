"""REST budget under bulk load (issue 14): an import on a portal while SLA timers and robot
calls of the same portal come due, on the emulator with its limiter on.

Starts a private redis-server, an SQLite database (or ``--database-url``), gunicorn
(``--gunicorn`` workers), ``--rq-workers`` real ``b24app worker`` processes and the emulator.

``--scenario import`` (default): each of ``--portals`` portals receives ``5000 × scale``
``ONCRMLEADADD`` events spread over 30 s (web-form leads, every 10th an AI-lead by
``UTM_SOURCE=ai_bot``, so tags are written too) while ``100 × scale`` SLA reminders and
``20 × scale`` robot calls (``Lead KPI snapshot``: one ``bizproc.event.send`` each) come due
over the first 120 s (the import's drain). The portal's bucket is ``2 × bucket_scale`` req/s, ``50 × bucket_scale``
deep (on both sides: the emulator and the app's settings): with ``--bucket-scale`` equal to
``--scale`` every count and the budget shrink together, so times (drain, lateness) stay
comparable to the full-size run. Prints the requests used against the floor (5000 × scale /
25 reads), the import's drain time, SLA send lateness and robot answer time p50/p99, and the
limit errors.

``--scenario shared80``: 80 new leads at once into a portal whose bucket another integration
already filled to 40/50 (real 2 req/s / 50): requests, limit errors, drain time.

``--before`` runs the app with coalescing, priorities and the adaptive bucket off
(``B24APP_REST_COALESCE=0``, ``B24APP_REST_PRIORITIES=0``, ``B24APP_REST_ADAPTIVE=0``): the
previous behaviour. ``--max-seconds`` bounds the wait; an
unfinished drain is reported as such, with the import's progress.

    python bench/rest_budget.py [--scale 0.4 --bucket-scale 0.4] [--before] [--portals 1]
    python bench/rest_budget.py --scenario shared80 [--before]
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlalchemy import select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from b24app import context  # noqa: E402
from b24app.config import Settings  # noqa: E402
from b24app.robots.definitions import KPI_SNAPSHOT  # noqa: E402
from b24app.sla import engine  # noqa: E402
from b24app.storage.migrate import upgrade  # noqa: E402
from b24app.storage.models import Journey  # noqa: E402
from b24app.storage.models import Portal  # noqa: E402
from b24app.storage.models import Timer  # noqa: E402
from b24app.storage.portals import get_portal  # noqa: E402
from b24app.timers.engine import cancel_where  # noqa: E402
from bench.load_burst import _up  # noqa: E402
from bench.load_burst import _wait  # noqa: E402
from devportal import DevPortal  # noqa: E402
from devportal import Portal as EmuPortal  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.conftest import RedisServer  # noqa: E402
from tests.plugins.worker import worker_env  # noqa: E402
from tests.plugins.worker import WorkerProcess  # noqa: E402

SLA_LEAD_BASE = 9_000_000
IMPORT_WINDOW = 30.0
DUE_WINDOW = 120.0


def percentiles(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


@dataclass
class Figures:
    label: str
    rows: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, name: str, value: Any, target: str = "") -> None:
        if isinstance(value, float):  # sub-second times need the second decimal
            text = f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"
        else:
            text = str(value)
        self.rows.append((name, text, target))

    def table(self) -> str:
        width = max(len(r[0]) for r in self.rows) + 2
        lines = [self.label, f"{'metric':<{width}}{'value':>14}{'target':>14}"]
        lines += [f"{n:<{width}}{v:>14}{t:>14}" for n, v, t in self.rows]
        return "\n".join(lines)


class Stack:
    """Redis, database, gunicorn, RQ workers and the emulator for one run."""

    def __init__(self, args: argparse.Namespace, rate: float, burst: int) -> None:
        self.redis = RedisServer()
        self.redis.start()
        workdir = Path(tempfile.mkdtemp(prefix="b24app-bench-budget-"))
        db_url = args.database_url or "sqlite:///" + str(workdir / "budget.sqlite")
        upgrade(db_url)
        port = free_port()
        self.settings = Settings(
            client_id="local.bench.app",
            client_secret="bench-client-secret-0123456789abcdef0123",
            public_url=f"http://127.0.0.1:{port}",
            database_url=db_url,
            redis_url=self.redis.url,
            secret_key="bench-secret-key-0123456789abcdef01234567",
            allow_insecure_endpoints=True,
            log_level="WARNING",
            rest_rate=rate,
            rest_burst=burst,
            rest_coalesce=not args.before,
            rest_priorities=not args.before,
            rest_adaptive=not args.before,
        )
        os.environ["B24APP_SLA_SECONDS_PER_MINUTE"] = "1"  # a policy minute is 1 s here
        self.services = context.build_services(self.settings)
        context.set_current(self.services)
        self.emu = DevPortal(
            client_id=self.settings.client_id,
            client_secret=self.settings.client_secret,
            app_base_url=self.settings.public_url,
            rate=rate,
            burst=burst,
        )
        extra = {
            "B24APP_LOG_LEVEL": "WARNING",
            "B24APP_REST_RATE": str(rate),
            "B24APP_REST_BURST": str(burst),
            "B24APP_REST_COALESCE": "0" if args.before else "1",
            "B24APP_REST_PRIORITIES": "0" if args.before else "1",
            "B24APP_REST_ADAPTIVE": "0" if args.before else "1",
        }
        env = worker_env(self.settings, extra)
        exe = str(Path(sys.executable).with_name("gunicorn"))
        self.gunicorn = subprocess.Popen(
            [exe, "--workers", str(args.gunicorn), "--bind", f"127.0.0.1:{port}",
             "--log-level", "warning", "b24app.wsgi:app"],
            cwd=workdir, env=env,
        )  # fmt: skip
        self.workers = [WorkerProcess(self.settings, extra) for _ in range(args.rq_workers)]
        self.emu.start()
        _wait(lambda: _up(self.settings.public_url), 60, "gunicorn up")
        for worker in self.workers:
            worker.start()

    def install(self, n: int) -> list[EmuPortal]:
        portals = [self.emu.create_portal(f"p{i}") for i in range(n)]
        for portal in portals:
            result = portal.install()
            if result.installer is None or result.installer.status_code != 200:
                raise RuntimeError(f"install of {portal.slug} failed")
        _wait(lambda: self._registered() == n, 900, "every portal registered")
        _wait(self._idle, 900, "install jobs done")
        return portals

    def _registered(self) -> int:
        with self.services.db() as session:
            rows = session.scalars(select(Portal)).all()
            return sum(1 for p in rows if (p.registration or {}).get("statuses"))

    def _idle(self) -> bool:
        self.emu.wait_idle(1)
        return all(
            self.services.queue(q).count == 0
            and self.services.queue(q).started_job_registry.count == 0
            for q in ("events", "default", "bulk")
        )

    def portal_id(self, portal: EmuPortal) -> int:
        with self.services.db() as session:
            row = get_portal(session, portal.member_id)
            assert row is not None
            return row.id

    def lead_rows(self, portal_ids: list[int], below: int = SLA_LEAD_BASE) -> int:
        with self.services.db() as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(Journey)
                    .where(Journey.portal_id.in_(portal_ids), Journey.lead_id < below)
                )
                or 0
            )

    def progress(self, portals: list[EmuPortal], ids: list[int], elapsed: float) -> None:
        from b24app.leads import coalesce

        redis = self.services.redis
        print(
            f"{elapsed:6.1f}s events queue {self.services.queue('events').count}, "
            f"timers queue {self.services.queue('timers').count}, pending "
            f"{sum(coalesce.pending_count(self.services, p.member_id) for p in portals)}, "
            f"drainers {sum(redis.exists(coalesce.DRAINER + p.member_id) for p in portals)}, "
            f"recorded {self.lead_rows(ids)}, requests {self.emu.http_requests()}",
            flush=True,
        )

    def stop(self) -> None:
        for worker in self.workers:
            worker.kill()
        self.gunicorn.terminate()
        try:
            self.gunicorn.wait(10)
        except subprocess.TimeoutExpired:
            self.gunicorn.kill()
        self.emu.stop()
        self.services.dispose()
        self.redis.stop()


def _sla_timers(stack: Stack, portal: EmuPortal, count: int, t0: float) -> dict[str, float]:
    """``count`` first-reply SLA timers whose reminder falls due over the next 60 s; returns
    the expected notification TAG → due time."""
    services = stack.services
    portal_id = stack.portal_id(portal)
    now = dt.datetime.fromtimestamp(t0, dt.UTC).replace(tzinfo=None)
    ids = [SLA_LEAD_BASE + i for i in range(count)]
    with services.db() as session:
        for lead_id in ids:
            session.add(
                Journey(portal_id=portal_id, lead_id=lead_id, channel="chat", assigned_by_id=2,
                     created_at=now)
            )  # fmt: skip
    dues: dict[str, float] = {}
    for i, lead_id in enumerate(ids):
        seconds = 3 + int(DUE_WINDOW * i / max(1, count))
        due = engine.start_timer(
            services, portal_id, lead_id, "first_reply", minutes=seconds, now=now
        )
        dues[f"b24app|sla|{lead_id}|first_reply|remind"] = due.replace(tzinfo=dt.UTC).timestamp()
    # One reminder per timer: the escalation level (30 "minutes" = 30 s here) is not part
    # of the scenario.
    cancel_where(
        services,
        Timer.portal_id == portal_id,
        Timer.journey_key.in_(ids),
        Timer.level == "escalate",
    )
    return dues


def run_import(args: argparse.Namespace) -> Figures:
    scale, bscale = args.scale, args.bucket_scale
    rate, burst = 2.0 * bscale, max(2, round(50 * bscale))
    events = round(5000 * scale)
    timers = max(1, round(100 * scale))
    robots = max(1, round(20 * scale))
    stack = Stack(args, rate, burst)
    try:
        portals = stack.install(args.portals)
        ids = [stack.portal_id(p) for p in portals]
        base = {p.slug: stack.emu.http_requests(p) for p in portals}
        base_calls = len(stack.emu.calls())
        t0 = time.time() + 2
        dues: dict[str, dict[str, float]] = {
            p.slug: _sla_timers(stack, p, timers, t0) for p in portals
        }
        robot_due = [t0 + 2 + DUE_WINDOW * i / robots for i in range(robots)]
        robot_calls: dict[str, float] = {}
        sla_lead = SLA_LEAD_BASE
        while time.time() < t0:
            time.sleep(0.01)
        started = time.monotonic()
        shown = started
        sent = 0
        total = events * len(portals)
        # The import: events spread over 30 s, robots interleaved at their due times.
        while sent < total or robot_due:
            now = time.time()
            while robot_due and robot_due[0] <= now:
                for portal in portals:
                    token = portal.run_robot(KPI_SNAPSHOT, sla_lead)
                    robot_calls[token] = time.time()
                robot_due.pop(0)
            target = min(total, int((now - t0) / IMPORT_WINDOW * total) + 1)
            while sent < target:
                portal = portals[sent % len(portals)]
                n = sent // len(portals)
                fields = {"TITLE": f"Импорт {n}", "SOURCE_ID": "WEBFORM", "ASSIGNED_BY_ID": 2}
                if n % 10 == 0:
                    fields["UTM_SOURCE"] = "ai_bot"
                portal.add_lead(fields)
                sent += 1
            if args.verbose and time.monotonic() - shown > 10:
                shown = time.monotonic()
                stack.progress(portals, ids, shown - started)
            time.sleep(0.01)
        deadline = started + args.max_seconds
        drained = None
        while time.monotonic() < deadline:
            if stack.lead_rows(ids) >= total:
                drained = time.monotonic() - started
                break
            if args.verbose and time.monotonic() - shown > 10:
                shown = time.monotonic()
                stack.progress(portals, ids, shown - started)
            time.sleep(0.5)
        # Let the due SLA reminders and robot answers finish (they are not the import).
        last_due = max(max(d.values()) for d in dues.values())
        while time.time() < min(last_due + 30, t0 + args.max_seconds + 30):
            got = sum(
                1
                for c in stack.emu.calls("im.notify.system.add")
                if c.ok and any(str(c.params.get("TAG")) in d for d in dues.values())
            )
            answered = sum(1 for p in portals for t in robot_calls if t in p.robot_results)
            if got >= timers * len(portals) and answered >= len(robot_calls):
                break
            time.sleep(0.5)
        recorded = stack.lead_rows(ids)
        calls = stack.emu.calls()[base_calls:]
        lateness = []
        for call in calls:
            if call.method == "im.notify.system.add" and call.ok:
                tag = str(call.params.get("TAG"))
                for d in dues.values():
                    if tag in d:
                        lateness.append(call.time - d.pop(tag))
        answer_times = [
            c.time - robot_calls[str(c.params.get("EVENT_TOKEN"))]
            for c in calls
            if c.method == "bizproc.event.send" and c.ok
            and str(c.params.get("EVENT_TOKEN")) in robot_calls
        ]  # fmt: skip
        delivered = {
            str(d.form.get("event_token")): d.sent_at
            for d in stack.emu.deliveries(kind="robot")
            if d.sent_at is not None
        }
        app_times = [
            c.time - delivered[str(c.params.get("EVENT_TOKEN"))]
            for c in calls
            if c.method == "bizproc.event.send" and c.ok
            and str(c.params.get("EVENT_TOKEN")) in delivered
        ]  # fmt: skip
        reads = sum(
            1
            for c in calls
            if c.method == "batch"
            and any(str(v).startswith("crm.item.get") for v in (c.params.get("cmd") or {}).values())
        )
        used = sum(stack.emu.http_requests(p) - base[p.slug] for p in portals)
        limit_errors = sum(
            1 for c in calls if c.error in ("QUERY_LIMIT_EXCEEDED", "OPERATION_TIME_LIMIT")
        )
        mode = "before (no coalescing, priorities, adaptive bucket)" if args.before else "after"
        fig = Figures(
            f"import: {args.portals} portal(s) × {events} ONCRMLEADADD in {IMPORT_WINDOW:.0f} s, "
            f"{timers} SLA + {robots} robot calls due per portal; bucket {rate:g} req/s / {burst} "
            f"(scale {scale:g}, bucket scale {bscale:g}); {mode}"
        )
        floor = math.ceil(events / 25)
        fig.add("leads recorded / sent", f"{recorded}/{total}")
        fig.add("lead-reading requests (all portals)", reads, f"≤ {total // 20}")
        fig.add("physical floor (reads, per portal)", floor)
        fig.add("REST requests used per portal (all)", round(used / len(portals)))
        floor_s = max(0.0, (floor - burst) / rate)
        fig.add("import drain time (s)", drained if drained is not None else f"> {args.max_seconds:.0f}",
                f"floor ≈ {max(IMPORT_WINDOW, floor_s):.0f}")  # fmt: skip
        if drained is None:
            elapsed = time.monotonic() - started
            fig.add("projected drain (s, at the rate seen)", total / max(recorded, 1) * elapsed)
        s50, s99 = percentiles(lateness)
        fig.add("SLA reminders sent / due", f"{len(lateness)}/{timers * len(portals)}")
        fig.add("SLA send lateness p50 (s)", s50)
        fig.add("SLA send lateness p99 (s)", s99, "≤ 2")
        r50, r99 = percentiles(answer_times)
        fig.add("robot answers / calls", f"{len(answer_times)}/{len(robot_calls)}")
        fig.add("robot answer time p50 (s)", r50)
        fig.add("robot answer time p99 (s)", r99, "≤ 5")
        a50, a99 = percentiles(app_times)
        fig.add("  of which in the app (POST → answer) p50", a50)
        fig.add("  of which in the app (POST → answer) p99", a99)
        fig.add("limit errors (503 + 429)", limit_errors, "0")
        failed = stack.services.queue("events").failed_job_registry
        fig.add("failed event jobs", failed.count)
        for job_id in failed.get_job_ids()[:1]:
            job = stack.services.queue("events").fetch_job(job_id)
            print((job.exc_info or "")[-1500:] if job is not None else "")
        return fig
    finally:
        stack.stop()


def run_shared80(args: argparse.Namespace) -> Figures:
    stack = Stack(args, 2.0, 50)
    try:
        (portal,) = stack.install(1)
        ids = [stack.portal_id(portal)]
        base = stack.emu.http_requests(portal)
        base_calls = len(stack.emu.calls())
        time.sleep(26)  # the install's own requests drain out of the bucket
        portal.bucket.prefill(40)  # another integration of the portal
        started = time.monotonic()
        for n in range(80):
            portal.add_lead({"TITLE": f"Лид {n}", "SOURCE_ID": "WEBFORM", "ASSIGNED_BY_ID": 2})
        _wait(lambda: stack.lead_rows(ids) >= 80, args.max_seconds, "80 leads recorded")
        drained = time.monotonic() - started
        calls = stack.emu.calls()[base_calls:]
        mode = "before (no coalescing, priorities, adaptive bucket)" if args.before else "after"
        fig = Figures(f"shared80: 80 new leads, bucket already 40/50 full (2 req/s / 50); {mode}")
        fig.add("REST requests", stack.emu.http_requests(portal) - base)
        fig.add(
            "QUERY_LIMIT_EXCEEDED",
            sum(1 for c in calls if c.error == "QUERY_LIMIT_EXCEEDED"),
            "≤ 5",
        )
        fig.add("drain time (s)", drained)
        return fig
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scenario", choices=("import", "shared80"), default="import")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--bucket-scale", type=float, default=None,
                        help="bucket = 2×this req/s, 50×this deep (default: --scale)")  # fmt: skip
    parser.add_argument("--portals", type=int, default=1)
    parser.add_argument("--before", action="store_true", help="coalescing and priorities off")
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--gunicorn", type=int, default=2)
    parser.add_argument("--rq-workers", type=int, default=2)
    parser.add_argument("--verbose", action="store_true", help="progress every 10 s")
    parser.add_argument("--database-url", default=os.environ.get("B24APP_BENCH_DATABASE_URL"))
    args = parser.parse_args()
    if args.bucket_scale is None:
        args.bucket_scale = args.scale
    fig = run_import(args) if args.scenario == "import" else run_shared80(args)
    print()
    print(fig.table())


if __name__ == "__main__":
    main()
