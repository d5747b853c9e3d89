"""KPI figures of one portal over a period, computed with grouped SQL over the app's own
lifecycle store (``Journey``, ``Timer``, ``CampaignCost``) — never by paging the CRM.

Definitions (a lead belongs to the period in which it was *created*: every figure is a cohort
of the leads that came in during the period, so the ratios always relate the same leads):

* **incoming leads** — leads created in the period and not deleted.
* **booking** — a lead that reached a booked state: it has a ``booking_at`` (qualified with an
  appointment) or reached Confirmed or a later stage (``confirmed_at``, ``came_at`` or
  ``no_show_at`` set). **Conversion lead → booking** = bookings / incoming leads × 100.
* **confirmed** — a booking that reached Confirmed or later (``confirmed_at``, ``came_at`` or
  ``no_show_at``: whoever came or failed to come had a confirmed slot).
  **Confirmed rate** = confirmed / bookings × 100.
* **no-show** — ``no_show_at`` set. **No-show rate** = no-shows / confirmed × 100.
* **paid visit** — ``came_at`` set and ``opportunity`` > 0; **revenue** = the sum of those
  opportunities; **average check (AOV)** = revenue / paid visits.
* **first-reply time** — ``first_reply_at − created_at`` in seconds (wall clock), median and
  p90 by linear interpolation (PostgreSQL ``percentile_cont``; the same maths in Python on
  other databases). **SLA achievement** = leads answered within the first-reply policy
  (``sla.first_reply.minutes``) / leads whose policy window is over (answered, or created
  longer ago than the policy) × 100. **Breaches** = first-reply-or-other SLA timers fired at
  level ``remind``; **escalations** = timers fired at level ``escalate``.
* **marketing** — costs are entered per UTM campaign and month; a period that covers part of
  a month takes that share of its cost (by days). **CPL** = cost / leads; campaign
  **ROI** = (revenue of the campaign's leads − cost) / cost × 100.

A ratio whose denominator is zero (no leads, zero cost, nothing confirmed…) is ``None``,
shown as "—"; nothing here divides by zero.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_
from sqlalchemy import case
from sqlalchemy import cast
from sqlalchemy import ColumnElement
from sqlalchemy import Date
from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy.orm import Session

from b24app.assistant.kpi import assistant_kpis
from b24app.kpi.appointments import appointment_kpis
from b24app.storage.models import CampaignCost
from b24app.storage.models import Journey
from b24app.storage.models import Timer
from b24app.storage.models import TimerState
from b24app.storage.models import utc_now

PRESETS = ("today", "yesterday", "7d", "30d", "90d", "365d")
DEFAULT_PRESET = "30d"
MAX_DAYS = 3 * 366
DIMENSIONS = ("source", "campaign", "channel", "manager", "ai")


# -- periods ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """Local calendar days ``first_day..last_day`` (inclusive) in ``tz``, and their naive-UTC
    bounds ``start`` (inclusive) and ``end`` (exclusive) for querying the store."""

    first_day: dt.date
    last_day: dt.date
    tz: str
    preset: str = "custom"

    @property
    def start(self) -> dt.datetime:
        return _local_midnight_utc(self.first_day, self.tz)

    @property
    def end(self) -> dt.datetime:
        return _local_midnight_utc(self.last_day + dt.timedelta(days=1), self.tz)

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    def key(self) -> str:
        return f"{self.first_day.isoformat()}..{self.last_day.isoformat()}"


def _local_midnight_utc(day: dt.date, tz: str) -> dt.datetime:
    local = dt.datetime.combine(day, dt.time(0), tzinfo=ZoneInfo(tz))
    return local.astimezone(dt.UTC).replace(tzinfo=None)


def local_today(tz: str, now: dt.datetime | None = None) -> dt.date:
    """Today's date in ``tz``; ``now`` is naive UTC (default: the current time)."""
    moment = (now or utc_now()).replace(tzinfo=dt.UTC)
    return moment.astimezone(ZoneInfo(tz)).date()


def period_for(
    preset: str | None,
    tz: str,
    *,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    now: dt.datetime | None = None,
) -> Period:
    """The period a person picked: a preset ending today (local) or explicit dates.

    Explicit dates win when both are given (swapped if reversed, at most ``MAX_DAYS``: three
    years, answered from the daily roll-up).
    """
    today = local_today(tz, now)
    if date_from is not None and date_to is not None:
        first, last = sorted((date_from, date_to))
        first = max(first, last - dt.timedelta(days=MAX_DAYS - 1))
        return Period(first, last, tz, "custom")
    name = preset if preset in PRESETS else DEFAULT_PRESET
    if name == "today":
        return Period(today, today, tz, name)
    if name == "yesterday":
        yesterday = today - dt.timedelta(days=1)
        return Period(yesterday, yesterday, tz, name)
    days = int(name.removesuffix("d"))
    return Period(today - dt.timedelta(days=days - 1), today, tz, name)


# -- counters -----------------------------------------------------------------------------


def ratio_pct(numerator: float | Decimal, denominator: float | Decimal) -> float | None:
    """``numerator / denominator × 100`` rounded to 0.1, or ``None`` when undefined."""
    if not denominator:
        return None
    return round(float(numerator) / float(denominator) * 100.0, 1)


# The percentages of a group of leads: name -> (numerator, denominator), both counters.
RATIOS: dict[str, tuple[str, str]] = {
    "conversion_pct": ("bookings", "leads"),
    "confirmed_pct": ("confirmed", "bookings"),
    "no_show_pct": ("no_shows", "confirmed"),
    "sla_pct": ("replied_in_sla", "sla_due"),
}


class _Ratio:
    """A :data:`RATIOS` percentage read as an attribute named after it (:func:`ratio_pct`)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.terms = RATIOS[name]

    def __get__(self, counts: Any, owner: type | None = None) -> float | None:
        numerator, denominator = self.terms
        return ratio_pct(getattr(counts, numerator), getattr(counts, denominator))


@dataclass
class Counts:
    """Additive counters of one group of leads; the ratios derive from them."""

    leads: int = 0
    bookings: int = 0
    confirmed: int = 0
    no_shows: int = 0
    came: int = 0
    paid_visits: int = 0
    revenue: Decimal = Decimal(0)
    replied: int = 0
    replied_in_sla: int = 0
    sla_due: int = 0

    def add(self, other: Counts) -> None:
        for name in _COUNT_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    conversion_pct = _Ratio()
    confirmed_pct = _Ratio()
    no_show_pct = _Ratio()
    sla_pct = _Ratio()

    @property
    def aov(self) -> Decimal | None:
        if not self.paid_visits:
            return None
        return (self.revenue / self.paid_visits).quantize(Decimal("0.01"))

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        data.update({name: getattr(self, name) for name in RATIOS}, aov=self.aov)
        return data


_COUNT_FIELDS = tuple(f.name for f in fields(Counts))


@dataclass(frozen=True)
class ReplyStats:
    """First-reply time in seconds over the leads that got a reply."""

    count: int
    median_s: float | None
    p90_s: float | None


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Linear-interpolation percentile (as PostgreSQL ``percentile_cont``); ``None`` if empty."""
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q
    low = int(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return float(sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low))


# -- SQL building blocks ------------------------------------------------------------------


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def reply_seconds(dialect: str) -> ColumnElement[Any]:
    """``first_reply_at − created_at`` in seconds, for this database."""
    if dialect == "postgresql":
        return func.extract("epoch", Journey.first_reply_at - Journey.created_at)
    return (func.julianday(Journey.first_reply_at) - func.julianday(Journey.created_at)) * 86400.0


def _local_day(dialect: str, offset: dt.timedelta) -> ColumnElement[Any]:
    """The lead's local calendar day (fixed UTC offset of the period; Russia has no DST)."""
    if dialect == "postgresql":
        return cast(Journey.created_at + offset, Date)
    minutes = int(offset.total_seconds() // 60)
    return func.date(Journey.created_at, f"{minutes:+d} minutes")


_BOOKED = or_(
    Journey.booking_at.is_not(None),
    Journey.confirmed_at.is_not(None),
    Journey.came_at.is_not(None),
    Journey.no_show_at.is_not(None),
)
_CONFIRMED = or_(
    Journey.confirmed_at.is_not(None), Journey.came_at.is_not(None), Journey.no_show_at.is_not(None)
)
_PAID = and_(Journey.came_at.is_not(None), Journey.opportunity > 0)


def _flag(cond: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.sum(case((cond, 1), else_=0))


def _count_columns(dialect: str, sla_s: float, now: dt.datetime) -> list[ColumnElement[Any]]:
    secs = reply_seconds(dialect)
    window_over = or_(
        Journey.first_reply_at.is_not(None),
        Journey.created_at <= now - dt.timedelta(seconds=sla_s),
    )
    return [
        func.count().label("leads"),
        _flag(_BOOKED).label("bookings"),
        _flag(_CONFIRMED).label("confirmed"),
        _flag(Journey.no_show_at.is_not(None)).label("no_shows"),
        _flag(Journey.came_at.is_not(None)).label("came"),
        _flag(_PAID).label("paid_visits"),
        func.coalesce(func.sum(case((_PAID, Journey.opportunity), else_=0)), 0).label("revenue"),
        _flag(Journey.first_reply_at.is_not(None)).label("replied"),
        _flag(and_(Journey.first_reply_at.is_not(None), secs <= sla_s)).label("replied_in_sla"),
        _flag(window_over).label("sla_due"),
    ]


def _in_period(portal_id: int, period: Period) -> ColumnElement[bool]:
    # Leads the portal deleted are out of every figure. The (portal_id, created_at) index
    # serves this range.
    return and_(
        Journey.portal_id == portal_id,
        Journey.created_at >= period.start,
        Journey.created_at < period.end,
        Journey.deleted_at.is_(None),
    )


def _counts_from_row(row: Any) -> Counts:
    return Counts(
        leads=int(row.leads or 0),
        bookings=int(row.bookings or 0),
        confirmed=int(row.confirmed or 0),
        no_shows=int(row.no_shows or 0),
        came=int(row.came or 0),
        paid_visits=int(row.paid_visits or 0),
        revenue=Decimal(str(row.revenue or 0)).quantize(Decimal("0.01")),
        replied=int(row.replied or 0),
        replied_in_sla=int(row.replied_in_sla or 0),
        sla_due=int(row.sla_due or 0),
    )


# -- the figures --------------------------------------------------------------------------


@dataclass
class Dashboard:
    """Every figure of one portal over one period (plain data: templates, JSON, CSV)."""

    period: Period
    total: Counts
    by: dict[str, dict[Any, Counts]]
    replies: ReplyStats
    replies_by_manager: dict[int | None, ReplyStats]
    breaches_by_manager: dict[int | None, int]
    escalations_by_manager: dict[int | None, int]
    trend: list[dict[str, Any]]
    costs: dict[str, Decimal]
    targets: dict[str, float]
    sla_minutes: float
    extra: dict[str, Any] = field(default_factory=dict)

    def top_sources(self, n: int = 3) -> list[tuple[str, Counts]]:
        rows = sorted(self.by["source"].items(), key=lambda kv: (-kv[1].leads, str(kv[0])))
        return [(str(k), v) for k, v in rows[:n] if v.leads]

    def employees(self) -> list[dict[str, Any]]:
        """Per-manager rows: volume, reply speed, SLA, bookings, no-shows, revenue."""
        managers = (
            set(self.by["manager"]) | set(self.breaches_by_manager) | set(self.replies_by_manager)
        )
        rows = []
        for manager in sorted(managers, key=lambda m: (m is None, m or 0)):
            counts = self.by["manager"].get(manager, Counts())
            replies = self.replies_by_manager.get(manager, ReplyStats(0, None, None))
            rows.append(
                {
                    "manager": manager,
                    **counts.as_dict(),
                    "reply_median_s": replies.median_s,
                    "reply_p90_s": replies.p90_s,
                    "breaches": self.breaches_by_manager.get(manager, 0),
                    "escalations": self.escalations_by_manager.get(manager, 0),
                }
            )
        return rows

    def marketing(self) -> list[dict[str, Any]]:
        """Per-campaign rows: leads, bookings, revenue, cost, CPL and ROI."""
        campaigns = set(self.by["campaign"]) | set(self.costs)
        rows = []
        for campaign in sorted(campaigns, key=lambda c: (c == "", str(c))):
            counts = self.by["campaign"].get(campaign, Counts())
            cost = self.costs.get(campaign)
            rows.append(
                {
                    "campaign": campaign,
                    **counts.as_dict(),
                    "cost": cost,
                    "cpl": cpl(cost, counts.leads),
                    "roi_pct": campaign_roi_pct(counts.revenue, cost),
                }
            )
        return rows


def cpl(cost: Decimal | None, leads: int) -> Decimal | None:
    """Cost per lead, or ``None`` with no cost entered or no leads."""
    if cost is None or not leads:
        return None
    return (cost / leads).quantize(Decimal("0.01"))


def campaign_roi_pct(revenue: Decimal, cost: Decimal | None) -> float | None:
    """(revenue − cost) / cost × 100, or ``None`` with no or zero cost."""
    if not cost:
        return None
    return round(float((revenue - cost) / cost) * 100.0, 1)


def _group_key(dimension: str, key: Any) -> Any:
    if dimension in ("source", "campaign"):
        return key or ""
    if dimension == "channel":
        return key or "other"
    if dimension == "manager":
        return key
    return bool(key)


_ROLLUPS: tuple[tuple[tuple[str, ...], tuple[Any, ...]], ...] = (
    # Low-cardinality dimensions share one scan (≤ 2 × 5 × sources rows) and give the totals.
    (("ai", "channel", "source"), (Journey.is_ai, Journey.channel, Journey.source_id)),
    (("manager",), (Journey.assigned_by_id,)),
    (("campaign",), (Journey.utm_campaign,)),
)


def cube(
    session: Session, portal_id: int, period: Period, sla_s: float, now: dt.datetime
) -> tuple[Counts, dict[str, dict[Any, Counts]]]:
    """The totals and every per-dimension table from three grouped range scans of the
    covering ``ix_leads_kpi`` index; the counters are additive, so small groupings roll up."""
    columns = _count_columns(_dialect(session), sla_s, now)
    where = _in_period(portal_id, period)
    total = Counts()
    by: dict[str, dict[Any, Counts]] = {d: defaultdict(Counts) for d in DIMENSIONS}
    for position, (dimensions, keys) in enumerate(_ROLLUPS):
        stmt = select(*keys, *columns).where(where).group_by(*keys)
        for row in session.execute(stmt):
            counts = _counts_from_row(row)
            if position == 0:
                total.add(counts)
            for index, dimension in enumerate(dimensions):
                by[dimension][_group_key(dimension, row[index])].add(counts)
    return total, {d: dict(v) for d, v in by.items()}


def reply_stats(
    session: Session, portal_id: int, period: Period
) -> tuple[ReplyStats, dict[int | None, ReplyStats]]:
    """Median and p90 first-reply time, overall and per manager."""
    dialect = _dialect(session)
    secs = reply_seconds(dialect)
    where = and_(_in_period(portal_id, period), Journey.first_reply_at.is_not(None))
    if dialect == "postgresql":
        pcts = [
            func.count().label("n"),
            func.percentile_cont(0.5).within_group(secs).label("p50"),
            func.percentile_cont(0.9).within_group(secs).label("p90"),
        ]
        overall = session.execute(select(*pcts).where(where)).one()
        per = session.execute(
            select(Journey.assigned_by_id, *pcts).where(where).group_by(Journey.assigned_by_id)
        ).all()

        def stats(row: Any) -> ReplyStats:
            return ReplyStats(
                int(row.n or 0),
                None if row.p50 is None else round(float(row.p50), 1),
                None if row.p90 is None else round(float(row.p90), 1),
            )

        return stats(overall), {row.assigned_by_id: stats(row) for row in per}
    # Portable fallback: one ordered column (a period's answered leads), percentiles in Python.
    values: list[float] = []
    per_manager: dict[int | None, list[float]] = defaultdict(list)
    for manager, value in session.execute(
        select(Journey.assigned_by_id, secs).where(where).order_by(secs)
    ):
        seconds = max(float(value), 0.0)
        values.append(seconds)
        per_manager[manager].append(seconds)

    def from_values(sorted_values: list[float]) -> ReplyStats:
        p50 = percentile(sorted_values, 0.5)
        p90 = percentile(sorted_values, 0.9)
        return ReplyStats(
            len(sorted_values),
            None if p50 is None else round(p50, 1),
            None if p90 is None else round(p90, 1),
        )

    return from_values(values), {m: from_values(v) for m, v in per_manager.items()}


def timer_counts(
    session: Session, portal_id: int, period: Period
) -> tuple[dict[int | None, int], dict[int | None, int]]:
    """SLA timers that fired (``remind`` = breach, ``escalate`` = escalation) per manager.

    Driven from the timers side: the fired SLA timers due since the period began (a timer
    falls due after its lead was created) come index-only from ``ix_timers_kpi``, and only
    their leads are looked up. Client reminders have other levels (``24h``, ``2h``…).
    """
    fired = (
        select(
            Timer.journey_key.label("lead_id"),
            _flag(Timer.level == "remind").label("breaches"),
            _flag(Timer.level == "escalate").label("escalations"),
        )
        .where(
            Timer.portal_id == portal_id,
            Timer.due_at >= period.start,
            Timer.state == TimerState.FIRED,
            Timer.level.in_(("remind", "escalate")),
        )
        .group_by(Timer.journey_key)
        .subquery()
    )
    # The timer key is a lead id, or minus the deal id of a journey started on a deal
    # (b24app.leads.journeys): two plain equi-joins, each on its own unique index (an OR in
    # one join condition makes SQLite scan every lead per timer).
    joins = (
        (fired.c.lead_id > 0, Journey.lead_id == fired.c.lead_id),
        (fired.c.lead_id < 0, Journey.deal_id == -fired.c.lead_id),
    )
    breaches: dict[int | None, int] = {}
    escalations: dict[int | None, int] = {}
    for sign, on in joins:
        stmt = (
            select(
                Journey.assigned_by_id,
                func.sum(fired.c.breaches),
                func.sum(fired.c.escalations),
            )
            .select_from(fired)
            .join(Journey, and_(Journey.portal_id == portal_id, on))
            .where(sign, _in_period(portal_id, period))
            .group_by(Journey.assigned_by_id)
        )
        for manager, n_breaches, n_escalations in session.execute(stmt):
            if n_breaches:
                breaches[manager] = breaches.get(manager, 0) + int(n_breaches)
            if n_escalations:
                escalations[manager] = escalations.get(manager, 0) + int(n_escalations)
    return breaches, escalations


def trend(
    session: Session, portal_id: int, period: Period, *, by_week: bool = False
) -> list[dict[str, Any]]:
    """Leads, bookings, confirmed and no-shows per local day (or ISO week), gaps filled."""
    dialect = _dialect(session)
    offset = ZoneInfo(period.tz).utcoffset(dt.datetime.combine(period.last_day, dt.time(12)))
    day = _local_day(dialect, offset or dt.timedelta(0)).label("day")
    stmt = (
        select(
            day,
            func.count().label("leads"),
            _flag(_BOOKED).label("bookings"),
            _flag(_CONFIRMED).label("confirmed"),
            _flag(Journey.no_show_at.is_not(None)).label("no_shows"),
        )
        .where(_in_period(portal_id, period))
        .group_by(day)
    )
    per_day: dict[dt.date, dict[str, int]] = {}
    for row in session.execute(stmt):
        day_key = row.day if isinstance(row.day, dt.date) else dt.date.fromisoformat(str(row.day))
        per_day[day_key] = {
            "leads": int(row.leads),
            "bookings": int(row.bookings or 0),
            "confirmed": int(row.confirmed or 0),
            "no_shows": int(row.no_shows or 0),
        }
    return fill_trend(period, per_day, by_week=by_week)


def fill_trend(
    period: Period, per_day: dict[dt.date, dict[str, int]], *, by_week: bool = False
) -> list[dict[str, Any]]:
    """Per-day counts → the trend points of every day (or ISO week) of ``period``."""
    buckets: dict[str, dict[str, Any]] = {}
    day_i = period.first_day
    while day_i <= period.last_day:
        if by_week:
            year, week, _ = day_i.isocalendar()
            bucket_label = f"{year}-W{week:02d}"
        else:
            bucket_label = day_i.isoformat()
        bucket = buckets.setdefault(
            bucket_label,
            {"label": bucket_label, "leads": 0, "bookings": 0, "confirmed": 0, "no_shows": 0},
        )
        for key, value in per_day.get(day_i, {}).items():
            bucket[key] += value
        day_i += dt.timedelta(days=1)
    trend = list(buckets.values())
    for point in trend:
        for name in ("conversion_pct", "no_show_pct"):
            numerator, denominator = RATIOS[name]
            point[name] = ratio_pct(point[numerator], point[denominator])
    return trend


def month_keys(period: Period) -> list[str]:
    """``YYYY-MM`` of every month the period touches."""
    keys = []
    cursor = period.first_day.replace(day=1)
    while cursor <= period.last_day:
        keys.append(f"{cursor.year:04d}-{cursor.month:02d}")
        cursor = (cursor + dt.timedelta(days=32)).replace(day=1)
    return keys


def campaign_costs(session: Session, portal_id: int, period: Period) -> dict[str, Decimal]:
    """Cost per campaign over the period; a partly covered month counts by its share of days."""
    rows = session.execute(
        select(CampaignCost.utm_campaign, CampaignCost.month, CampaignCost.cost).where(
            CampaignCost.portal_id == portal_id, CampaignCost.month.in_(month_keys(period))
        )
    )
    costs: dict[str, Decimal] = defaultdict(lambda: Decimal(0))
    for campaign, month, cost in rows:
        year, mon = int(month[:4]), int(month[5:7])
        month_days = calendar.monthrange(year, mon)[1]
        first = max(period.first_day, dt.date(year, mon, 1))
        last = min(period.last_day, dt.date(year, mon, month_days))
        covered = (last - first).days + 1
        if covered <= 0:
            continue
        share = Decimal(cost) * covered / month_days
        costs[campaign or ""] += share
    return {k: v.quantize(Decimal("0.01")) for k, v in costs.items()}


def compute_dashboard(
    session: Session,
    portal_id: int,
    period: Period,
    settings: dict[str, Any],
    *,
    by_week: bool | None = None,
    now: dt.datetime | None = None,
) -> Dashboard:
    """All dashboard figures of ``portal_id`` over ``period`` (``settings`` = the portal's
    effective settings: targets and the first-reply policy)."""
    moment = now or utc_now()
    sla_minutes = float(settings["sla"]["first_reply"]["minutes"])
    total, by = cube(session, portal_id, period, sla_minutes * 60, moment)
    replies, replies_by_manager = reply_stats(session, portal_id, period)
    breaches, escalations = timer_counts(session, portal_id, period)
    weekly = period.days > 62 if by_week is None else by_week
    return Dashboard(
        period=period,
        total=total,
        by=by,
        replies=replies,
        replies_by_manager=replies_by_manager,
        breaches_by_manager=breaches,
        escalations_by_manager=escalations,
        trend=trend(session, portal_id, period, by_week=weekly),
        costs=campaign_costs(session, portal_id, period),
        targets=dict(settings["targets"]),
        sla_minutes=sla_minutes,
        extra={
            "by_week": weekly,
            "appointments": appointment_kpis(
                session, portal_id, period.start, period.end, settings.get("time_zone")
            ),
            "assistant": assistant_kpis(session, portal_id, period.start, period.end),
        },
    )


def summary_counts(session: Session, portal_id: int, period: Period, sla_minutes: float) -> Counts:
    """Only the totals (reports and the ROI calculator's real figures)."""
    return cube(session, portal_id, period, sla_minutes * 60, utc_now())[0]


# -- targets ------------------------------------------------------------------------------


def target_state(name: str, value: float | None, targets: dict[str, float]) -> str:
    """``good`` / ``bad`` / ``none`` for a figure against the portal's target."""
    if value is None:
        return "none"
    if name == "no_show_pct":
        return "good" if value < targets["no_show_max_pct"] else "bad"
    if name == "conversion_pct":
        return "good" if value > targets["conversion_min_pct"] else "bad"
    if name == "reply_median_s":
        return "good" if value <= targets["first_reply_max_min"] * 60 else "bad"
    return "none"


def iter_dimension(dashboard: Dashboard, dimension: str) -> Iterable[tuple[Any, Counts]]:
    """Rows of one dimension, biggest first."""
    return sorted(dashboard.by[dimension].items(), key=lambda kv: (-kv[1].leads, str(kv[0])))
