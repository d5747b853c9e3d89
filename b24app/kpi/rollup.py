"""The daily KPI roll-up: long periods answered from one row per (portal, local day,
dimension, key) instead of every lead.

**One function derives it**: :func:`build_rows` turns the lifecycle rows (``Journey``, fired
``Timer``) of a run of local days into roll-up rows. The cron job stores them
(:func:`refresh_portal`), and the dashboard uses the very same function on the fly for every
day the stored rows cannot answer exactly, so a figure is always what the lifecycle rows say:

* days changed since the last build — a lead whose ``updated_at`` (set on every insert and
  update, Core ``update()`` statements included) or a timer whose ``fired_at`` is later than
  the build's ``built_at`` (minus a minute of clock skew between hosts);
* days whose ``sla_due`` moved with the clock since the build: those of the leads created
  between ``built_at`` and now, each minus the first-reply time (usually today alone; the
  cron build rebuilds such days too, so every stored day is right as of ``built_at``);
* every day, when the portal's time zone or first-reply policy differs from the build's (the
  cron job then rebuilds the portal), or when more than ``MAX_DIRTY_DAYS`` changed (a
  backfill): then the plain per-lead SQL of :mod:`b24app.kpi.metrics` answers.

Rows (``kpi_daily``): dimension ``ai`` (``"1"``/``"0"``: their sum is the day's totals),
``channel``, ``source``, ``campaign``, ``manager`` (the user id, ``""`` for none). Counters are
those of :class:`b24app.kpi.metrics.Counts` plus ``breaches`` and ``escalations``; manager
rows carry the first-reply times as a histogram (stored in ``kpi_daily_reply``, one row per
day, manager and bucket, summed by the database): exact whole seconds below a minute, then
buckets 10 % wide (:func:`reply_bucket`).

Reading a period (:func:`compute_dashboard`): month rows (``grain`` "m") for its whole months
without a live day, day rows for the rest, one index range scan per run of days, summed by
the database; the stored part is cached per process under a key that changes with every
write of the stored rows (``built_at``), the live days are computed on every request.

Engineers adding lifecycle columns change :func:`build_rows` only.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections import defaultdict
from collections import OrderedDict
from collections.abc import Iterable
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_
from sqlalchemy import Date
from sqlalchemy import delete
from sqlalchemy import false
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import literal
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy import union_all
from sqlalchemy.orm import Session

from b24app.assistant.kpi import assistant_kpis
from b24app.kpi import metrics
from b24app.kpi.appointments import appointment_kpis
from b24app.kpi.metrics import Counts
from b24app.kpi.metrics import Dashboard
from b24app.kpi.metrics import Period
from b24app.kpi.metrics import ReplyStats
from b24app.storage.models import Journey
from b24app.storage.models import KpiDaily
from b24app.storage.models import KpiDailyReply
from b24app.storage.models import KpiDailyState
from b24app.storage.models import Timer
from b24app.storage.models import TimerState
from b24app.storage.models import utc_now

MIN_DAYS = 32  # shorter periods read the leads directly (fast enough, see bench/dashboard.py)
MAX_DIRTY_DAYS = 31
SKEW = dt.timedelta(minutes=1)
COUNTERS = (
    "leads", "bookings", "confirmed", "no_shows", "came", "paid_visits", "revenue", "replied",
    "replied_in_sla", "sla_due", "breaches", "escalations",
)  # fmt: skip
DIMS = ("ai", "channel", "source", "campaign", "manager")


# -- the one derivation -------------------------------------------------------------------


BUCKET_RATIO = 1.10


def reply_bucket(seconds: float) -> int:
    """The histogram bucket of a first-reply time, as the whole seconds it stands for: exact
    below a minute, then buckets 10 % wide (their geometric middle: within 5 %)."""
    s = max(seconds, 0.0)
    if s < 60:
        return int(round(s))
    k = math.floor(math.log(s / 60) / math.log(BUCKET_RATIO))
    return int(round(60 * BUCKET_RATIO ** (k + 0.5)))


def _keys(lead: Any) -> dict[str, str]:
    return {
        "ai": "1" if lead.is_ai else "0",
        "channel": lead.channel or "other",
        "source": lead.source_id or "",
        "campaign": lead.utm_campaign or "",
        "manager": "" if lead.assigned_by_id is None else str(lead.assigned_by_id),
    }


def build_rows(
    session: Session,
    portal_id: int,
    first_day: dt.date,
    last_day: dt.date,
    tz: str,
    sla_s: float,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """Roll-up rows of the local days ``first_day..last_day`` from the lifecycle rows."""
    period = Period(first_day, last_day, tz)
    zone = ZoneInfo(tz)
    leads = session.execute(
        select(
            Journey.lead_id, Journey.deal_id, Journey.created_at, Journey.is_ai, Journey.channel, Journey.source_id,
            Journey.utm_campaign, Journey.assigned_by_id, Journey.first_reply_at, Journey.booking_at,
            Journey.confirmed_at, Journey.came_at, Journey.no_show_at, Journey.opportunity,
        ).where(
            Journey.portal_id == portal_id, Journey.created_at >= period.start,
            Journey.created_at < period.end, Journey.deleted_at.is_(None),
        )
    ).all()  # fmt: skip
    fired: dict[int, dict[str, int]] = defaultdict(lambda: {"remind": 0, "escalate": 0})
    if leads:
        for lead_id, level, n in session.execute(
            select(Timer.journey_key, Timer.level, func.count())
            .where(
                Timer.portal_id == portal_id,
                Timer.due_at >= period.start,
                Timer.state == TimerState.FIRED,
                Timer.level.in_(("remind", "escalate")),
            )
            .group_by(Timer.journey_key, Timer.level)
        ):
            fired[int(lead_id)][level] = int(n)
    due_before = now - dt.timedelta(seconds=sla_s)
    rows: dict[tuple[dt.date, str, str], dict[str, Any]] = {}
    for lead in leads:
        day = lead.created_at.replace(tzinfo=dt.UTC).astimezone(zone).date()
        booked = any(
            v is not None
            for v in (lead.booking_at, lead.confirmed_at, lead.came_at, lead.no_show_at)
        )
        confirmed = any(v is not None for v in (lead.confirmed_at, lead.came_at, lead.no_show_at))
        paid = lead.came_at is not None and (lead.opportunity or 0) > 0
        secs = None
        if lead.first_reply_at is not None:
            secs = (lead.first_reply_at - lead.created_at).total_seconds()
        # The timer key of a journey: its lead id, or minus the deal id of one begun on a deal.
        key_id = int(lead.lead_id) if lead.lead_id is not None else -int(lead.deal_id or 0)
        timers = fired.get(key_id, {"remind": 0, "escalate": 0})
        add = {
            "leads": 1,
            "bookings": int(booked),
            "confirmed": int(confirmed),
            "no_shows": int(lead.no_show_at is not None),
            "came": int(lead.came_at is not None),
            "paid_visits": int(paid),
            "revenue": Decimal(lead.opportunity or 0) if paid else Decimal(0),
            "replied": int(secs is not None),
            "replied_in_sla": int(secs is not None and secs <= sla_s),
            "sla_due": int(secs is not None or lead.created_at <= due_before),
            "breaches": timers["remind"],
            "escalations": timers["escalate"],
        }
        for dim, key in _keys(lead).items():
            row = rows.get((day, dim, key))
            if row is None:
                row = rows[(day, dim, key)] = {
                    "portal_id": portal_id, "grain": "d", "day": day, "dim": dim, "key": key,
                    **{c: Decimal(0) if c == "revenue" else 0 for c in COUNTERS},
                    "reply_hist": {} if dim == "manager" else None,
                }  # fmt: skip
            for counter, value in add.items():
                row[counter] += value
            if dim == "manager" and secs is not None:
                bucket = str(reply_bucket(secs))
                row["reply_hist"][bucket] = row["reply_hist"].get(bucket, 0) + 1
    return list(rows.values())


# -- storing (cron) -----------------------------------------------------------------------


def _settings_key(settings: dict[str, Any]) -> tuple[str, float]:
    return str(settings["time_zone"]), float(settings["sla"]["first_reply"]["minutes"]) * 60


def _local_day(moment: dt.datetime, tz: str) -> dt.date:
    return moment.replace(tzinfo=dt.UTC).astimezone(ZoneInfo(tz)).date()


def changed_days(session: Session, portal_id: int, since: dt.datetime, tz: str) -> set[dt.date]:
    """Local days of the leads changed, or whose SLA timers fired, since ``since``."""
    created = list(
        session.scalars(
            select(Journey.created_at).where(
                Journey.portal_id == portal_id, Journey.updated_at > since
            )
        )
    )
    # The fired timers first (few, ``ix_timers_fired``), then their journeys by their unique
    # keys: joined with an OR, the planner scanned every lead of the portal (~70 ms).
    keys = set(
        session.scalars(
            select(Timer.journey_key).where(Timer.portal_id == portal_id, Timer.fired_at > since)
        )
    )
    lead_ids = sorted(k for k in keys if k > 0)
    deal_ids = sorted(-k for k in keys if k < 0)
    for column, ids in ((Journey.lead_id, lead_ids), (Journey.deal_id, deal_ids)):
        for start in range(0, len(ids), 500):
            created += session.scalars(
                select(Journey.created_at).where(
                    Journey.portal_id == portal_id, column.in_(ids[start : start + 500])
                )
            )
    return {_local_day(c, tz) for c in created}


def _runs(days: Iterable[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """Contiguous runs of days."""
    runs: list[tuple[dt.date, dt.date]] = []
    for day in sorted(set(days)):
        if runs and runs[-1][1] + dt.timedelta(days=1) == day:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def rebuild_days(
    session: Session, portal_id: int, days: Iterable[dt.date], settings: dict[str, Any],
    now: dt.datetime | None = None,
) -> int:  # fmt: skip
    """Replace the stored rows of ``days`` with what the lifecycle rows say now."""
    tz, sla_s = _settings_key(settings)
    moment = now or utc_now()
    stored = 0
    for first, last in _runs(days):
        for table in (KpiDaily, KpiDailyReply):
            session.execute(
                delete(table).where(
                    table.portal_id == portal_id, table.grain == "d",
                    table.day >= first, table.day <= last,
                )
            )  # fmt: skip
        rows = build_rows(session, portal_id, first, last, tz, sla_s, moment)
        replies = [
            {
                "portal_id": portal_id,
                "grain": "d",
                "day": r["day"],
                "manager": r["key"],
                "bucket": int(b),
                "n": n,
            }  # fmt: skip
            for r in rows
            if r["dim"] == "manager"
            for b, n in (r["reply_hist"] or {}).items()
        ]
        daily = [{k: v for k, v in r.items() if k != "reply_hist"} for r in rows]
        for table, batch in ((KpiDaily, daily), (KpiDailyReply, replies)):
            for start in range(0, len(batch), 2000):
                session.execute(insert(table), batch[start : start + 2000])
        stored += len(rows)
    for month in sorted({d.replace(day=1) for d in days}):
        _rebuild_month(session, portal_id, month)
    return stored


def _month_end(month: dt.date) -> dt.date:
    return (month + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)


# The roll-up tables with their key columns and the columns a month row sums.
_MONTH_SUMS = (
    (KpiDaily, ("dim", "key"), COUNTERS),
    (KpiDailyReply, ("manager", "bucket"), ("n",)),
)


def _rebuild_month(session: Session, portal_id: int, month: dt.date) -> None:
    """The month rows: sums of the month's day rows (``INSERT … SELECT`` in the database)."""
    last = _month_end(month)
    for table, keys, sums in _MONTH_SUMS:
        session.execute(
            delete(table).where(
                table.portal_id == portal_id, table.grain == "m", table.day == month
            )
        )
        day_rows = and_(
            table.portal_id == portal_id, table.grain == "d",
            table.day >= month, table.day <= last,
        )  # fmt: skip
        key_columns = [getattr(table, k) for k in keys]
        session.execute(
            insert(table).from_select(
                ["portal_id", "grain", "day", *keys, *sums],
                select(
                    table.portal_id, literal("m"), literal(month, Date), *key_columns,
                    *[func.sum(getattr(table, c)) for c in sums],
                ).where(day_rows).group_by(table.portal_id, *key_columns),
            )
        )  # fmt: skip


def refresh_portal(
    session: Session, portal_id: int, settings: dict[str, Any], now: dt.datetime | None = None
) -> int:
    """Bring one portal's roll-up up to date: the changed days, or everything after a change
    of time zone or policy (or the first time). Returns the rows written."""
    tz, sla_s = _settings_key(settings)
    started = now or utc_now()
    state = session.get(KpiDailyState, portal_id)
    if state is None or state.tz != tz or state.sla_s != sla_s:
        first = session.scalar(
            select(func.min(Journey.created_at)).where(Journey.portal_id == portal_id)
        )
        session.execute(delete(KpiDaily).where(KpiDaily.portal_id == portal_id))
        session.execute(delete(KpiDailyReply).where(KpiDailyReply.portal_id == portal_id))
        written = 0
        if first is not None:
            last = _local_day(started, tz)
            day = _local_day(first, tz)
            days = [day + dt.timedelta(days=i) for i in range((last - day).days + 1)]
            written = rebuild_days(session, portal_id, days, settings, started)
        if state is None:
            state = KpiDailyState(portal_id=portal_id)
            session.add(state)
        state.tz, state.sla_s, state.built_at = tz, sla_s, started
        if written and session.get_bind().dialect.name == "postgresql":
            # A first build fills tables the planner has no statistics of yet: it then read
            # a 3-year trend through the wrong index (50 ms instead of 1) until autovacuum
            # came by. ANALYZE samples them (runs inside the transaction, ~0.1 s).
            session.execute(text("ANALYZE kpi_daily, kpi_daily_reply"))
        return written
    changed = changed_days(session, portal_id, state.built_at - SKEW, tz)
    # Days whose "SLA due" moved since the last build: stored rows stay right as of built_at.
    changed.update(_due_days(state.built_at, started, sla_s, tz))
    written = rebuild_days(session, portal_id, changed, settings, started)
    state.built_at = started
    return written


def refresh_rollups() -> int:
    """Cron: refresh every active portal's roll-up (idempotent)."""
    from b24app import context
    from b24app.settings import load_settings
    from b24app.storage.models import Portal
    from b24app.storage.models import PortalStatus

    services = context.current()
    with services.db() as session:
        ids = session.scalars(select(Portal.id).where(Portal.status == PortalStatus.ACTIVE)).all()
    written = 0
    for portal_id in ids:
        with services.db() as session:
            written += refresh_portal(session, portal_id, load_settings(session, portal_id))
    return written


# -- reading (the dashboard) --------------------------------------------------------------


def _hist_stats(hist: dict[int, int]) -> ReplyStats:
    n = sum(hist.values())
    if not n:
        return ReplyStats(0, None, None)
    keys = sorted(hist)

    def value_at(index: int) -> float:
        seen = 0
        for key in keys:
            seen += hist[key]
            if index < seen:
                return float(key)
        return float(keys[-1])

    def pct(q: float) -> float:
        pos = (n - 1) * q
        low = math.floor(pos)
        a, b = value_at(low), value_at(min(low + 1, n - 1))
        return round(a + (b - a) * (pos - low), 1)

    return ReplyStats(n, pct(0.5), pct(0.9))


def _due_days(a: dt.datetime, b: dt.datetime, sla_s: float, tz: str) -> list[dt.date]:
    """Local days of the leads whose "SLA due" differs between the moments ``a`` and ``b``:
    a lead counts as due (replied or not) once ``sla_s`` has passed since it was created, so
    those created between ``a - sla_s`` and ``b - sla_s`` (either order; skew on both sides)."""
    sla = dt.timedelta(seconds=sla_s)
    first = _local_day(min(a, b) - sla - SKEW, tz)
    last = _local_day(max(a, b) - sla + SKEW, tz)
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def live_days(
    session: Session, portal_id: int, state: KpiDailyState, period: Period, sla_s: float,
    now: dt.datetime,
) -> set[dt.date] | None:  # fmt: skip
    """The days of ``period`` the stored rows cannot answer at ``now``: changed since the
    build, or whose "SLA due" moved with the clock since (every stored day is right as of
    ``built_at``: :func:`refresh_portal` rebuilds the days it moved in between). None when
    more than ``MAX_DIRTY_DAYS`` changed (a backfill: the per-lead SQL answers)."""
    tz = state.tz  # the settings' zone: the caller checked they match
    live = {
        d
        for d in changed_days(session, portal_id, state.built_at - SKEW, tz)
        if period.first_day <= d <= period.last_day
    }
    if len(live) > MAX_DIRTY_DAYS:
        return None
    live.update(
        d
        for d in _due_days(state.built_at, now, sla_s, tz)
        if period.first_day <= d <= period.last_day
    )
    return live


def _stored_ranges(
    period: Period, live: set[dt.date]
) -> tuple[list[tuple[dt.date, dt.date]], list[tuple[dt.date, dt.date]]]:
    """The period's days the stored rows answer, as runs: whole months with no live day
    (their month rows: ``day`` = the 1st), and runs of the other days (day rows)."""
    months: list[dt.date] = []
    days: list[dt.date] = []
    month = period.first_day.replace(day=1)
    while month <= period.last_day:
        end = _month_end(month)
        first, last = max(month, period.first_day), min(end, period.last_day)
        inside = [d for d in live if first <= d <= last]
        if (first, last) == (month, end) and not inside:
            months.append(month)
        else:
            days += [
                first + dt.timedelta(days=i)
                for i in range((last - first).days + 1)
                if first + dt.timedelta(days=i) not in live
            ]
        month = end + dt.timedelta(days=1)
    month_runs: list[tuple[dt.date, dt.date]] = []
    for m in months:  # consecutive months: one range of their 1sts
        if month_runs and _month_end(month_runs[-1][1]) + dt.timedelta(days=1) == m:
            month_runs[-1] = (month_runs[-1][0], m)
        else:
            month_runs.append((m, m))
    return month_runs, _runs(days)


_STORED_CACHE: OrderedDict[tuple[Any, ...], tuple[Any, ...]] = OrderedDict()
_STORED_CACHE_SIZE = 64
_STORED_LOCK = threading.Lock()  # threaded servers: the LRU's moves are not atomic


def _stored(
    session: Session, portal_id: int, period: Period, live: set[dt.date]
) -> tuple[list[dict[str, Any]], dict[dt.date, dict[str, int]], dict[str, dict[str, int]]]:
    """The stored rows' part of a period, summed by the database: per (dimension, key), the
    trend's points per day, the first-reply histograms per manager."""
    month_runs, day_runs = _stored_ranges(period, live)

    ranges = [("m", a, b) for a, b in month_runs] + [("d", a, b) for a, b in day_runs]

    def stored_rows(table: Any, columns: list[Any]) -> Any:
        """The rows of the ranges, one range scan each: with the ranges OR-ed, SQLite scanned
        all of the portal's rows (``ix_*_period``: portal, grain, day)."""
        parts = [
            select(*columns).where(
                table.portal_id == portal_id, table.grain == grain, table.day >= a, table.day <= b
            )
            for grain, a, b in ranges
        ]  # fmt: skip
        if not parts:
            parts = [select(*columns).where(false())]
        return union_all(*parts).subquery() if len(parts) > 1 else parts[0].subquery()

    daily = stored_rows(
        KpiDaily, [KpiDaily.dim, KpiDaily.key, *[getattr(KpiDaily, c) for c in COUNTERS]]
    )
    rows: list[dict[str, Any]] = [
        {"day": None, "dim": r.dim, "key": r.key, **{c: getattr(r, c) or 0 for c in COUNTERS}}
        for r in session.execute(
            select(
                daily.c.dim, daily.c.key, *[func.sum(daily.c[c]).label(c) for c in COUNTERS]
            ).group_by(daily.c.dim, daily.c.key)
        )
    ]
    trend_cols = ("leads", "bookings", "confirmed", "no_shows")
    per_day: dict[dt.date, dict[str, int]] = {}
    for r in session.execute(
        select(KpiDaily.day, *[func.sum(getattr(KpiDaily, c)).label(c) for c in trend_cols])
        .where(
            KpiDaily.portal_id == portal_id, KpiDaily.grain == "d", KpiDaily.dim == "ai",
            KpiDaily.day >= period.first_day, KpiDaily.day <= period.last_day,
        )
        .group_by(KpiDaily.day)
    ):  # fmt: skip
        if r.day not in live:
            per_day[r.day] = {c: int(getattr(r, c) or 0) for c in trend_cols}
    per_manager: dict[str, dict[str, int]] = defaultdict(dict)
    reply = stored_rows(
        KpiDailyReply, [KpiDailyReply.manager, KpiDailyReply.bucket, KpiDailyReply.n]
    )
    for manager, bucket, n in session.execute(
        select(reply.c.manager, reply.c.bucket, func.sum(reply.c.n)).group_by(
            reply.c.manager, reply.c.bucket
        )
    ):
        per_manager[manager][str(bucket)] = int(n)
    return rows, per_day, dict(per_manager)


def compute_dashboard(
    session: Session,
    portal_id: int,
    period: Period,
    settings: dict[str, Any],
    *,
    by_week: bool | None = None,
    now: dt.datetime | None = None,
) -> Dashboard:
    """:func:`b24app.kpi.metrics.compute_dashboard`, from the roll-up where it answers exactly
    (periods of ``MIN_DAYS`` or more), the per-lead SQL otherwise."""
    moment = now or utc_now()
    tz, sla_s = _settings_key(settings)
    state = session.get(KpiDailyState, portal_id)
    live = None
    if period.days >= MIN_DAYS and state is not None and (state.tz, state.sla_s) == (tz, sla_s):
        live = live_days(session, portal_id, state, period, sla_s, moment)
    if state is None or live is None:
        return metrics.compute_dashboard(
            session, portal_id, period, settings, by_week=by_week, now=moment
        )
    # The stored part depends on the stored rows and the days asked only, and every write of
    # the stored rows (refresh_portal) moves ``built_at`` in the same transaction: so that
    # key identifies it exactly, and a process keeps the last few (the page is re-opened,
    # re-sorted, exported with the same period).
    key = (str(session.connection().engine.url), portal_id, state.built_at, tz, sla_s,
           period.first_day, period.last_day, frozenset(live))  # fmt: skip
    with _STORED_LOCK:
        cached = _STORED_CACHE.get(key)
        if cached is not None:
            _STORED_CACHE.move_to_end(key)
    if cached is None:
        cached = _stored(session, portal_id, period, live)
        with _STORED_LOCK:
            _STORED_CACHE[key] = cached
            while len(_STORED_CACHE) > _STORED_CACHE_SIZE:
                _STORED_CACHE.popitem(last=False)
    stored_rows, stored_days, stored_hists = cached
    rows = list(stored_rows)
    per_day: dict[dt.date, Counts] = defaultdict(Counts)
    for day, point in stored_days.items():
        per_day[day].add(Counts(**point))
    hists: list[tuple[str, dict[str, int] | None]] = list(stored_hists.items())
    for first, last in _runs(live):
        for row in build_rows(session, portal_id, first, last, tz, sla_s, moment):
            if row["dim"] == "ai":
                per_day[row["day"]].add(_counts(row))
            if row["dim"] == "manager":
                hists.append((row["key"], row["reply_hist"] or {}))
            rows.append({**row, "reply_hist": None})
    return _assemble(session, portal_id, period, settings, rows, per_day, hists, by_week)


def _counts(row: dict[str, Any]) -> Counts:
    values: dict[str, Any] = {
        c: row[c] if c == "revenue" else int(row[c])
        for c in COUNTERS
        if c not in ("breaches", "escalations")
    }
    return Counts(**values)


def _assemble(
    session: Session, portal_id: int, period: Period, settings: dict[str, Any],
    rows: list[dict[str, Any]], per_day: dict[dt.date, Counts],
    hists: list[tuple[str, dict[str, int] | None]], by_week: bool | None,
) -> Dashboard:  # fmt: skip
    total = Counts()
    by: dict[str, dict[Any, Counts]] = {d: defaultdict(Counts) for d in metrics.DIMENSIONS}
    hist_all: dict[int, int] = defaultdict(int)
    hist_by: dict[int | None, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    breaches: dict[int | None, int] = defaultdict(int)
    escalations: dict[int | None, int] = defaultdict(int)
    for row in rows:
        counts = _counts(row)
        dim, key = row["dim"], row["key"]
        if dim == "ai":
            total.add(counts)
            by["ai"][key == "1"].add(counts)
        elif dim == "manager":
            manager = int(key) if key else None
            by["manager"][manager].add(counts)
            if row["breaches"]:
                breaches[manager] += int(row["breaches"])
            if row["escalations"]:
                escalations[manager] += int(row["escalations"])
        else:
            by[dim][key].add(counts)
    for key, hist in hists:
        manager = int(key) if key else None
        target = hist_by[manager]
        for bucket, n in (hist or {}).items():
            b = int(bucket)
            hist_all[b] += n
            target[b] += n
    for counts in (total, *(c for d in by.values() for c in d.values())):
        counts.revenue = Decimal(counts.revenue).quantize(Decimal("0.01"))
    weekly = period.days > 62 if by_week is None else by_week
    sla_minutes = float(settings["sla"]["first_reply"]["minutes"])
    return Dashboard(
        period=period,
        total=total,
        by={d: dict(v) for d, v in by.items()},
        replies=_hist_stats(hist_all),
        replies_by_manager={m: _hist_stats(h) for m, h in hist_by.items()},
        breaches_by_manager=dict(breaches),
        escalations_by_manager=dict(escalations),
        trend=_trend(period, per_day, weekly),
        costs=metrics.campaign_costs(session, portal_id, period),
        targets=dict(settings["targets"]),
        sla_minutes=sla_minutes,
        extra={
            "by_week": weekly,
            "rollup": True,
            # Not lead counts: read from their own (small) tables for the period, as the
            # per-lead path does; the dashboard template shows both blocks.
            "appointments": appointment_kpis(
                session, portal_id, period.start, period.end, settings.get("time_zone")
            ),
            "assistant": assistant_kpis(session, portal_id, period.start, period.end),
        },
    )


def _trend(period: Period, per_day: dict[dt.date, Counts], by_week: bool) -> list[dict[str, Any]]:
    keys = ("leads", "bookings", "confirmed", "no_shows")
    days = {day: {k: int(getattr(c, k)) for k in keys} for day, c in per_day.items()}
    return metrics.fill_trend(period, days, by_week=by_week)
