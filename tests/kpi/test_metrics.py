"""KPI figures against a hand-computed data set (every expected number worked out by hand)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from b24app.kpi import metrics
from b24app.settings import DEFAULTS
from b24app.storage.models import CampaignCost
from b24app.storage.models import Timer
from tests.kpi.conftest import lead
from tests.kpi.conftest import make_portal

TZ = "Europe/Moscow"  # UTC+3, no DST
NOVEMBER = metrics.Period(dt.date(2026, 11, 1), dt.date(2026, 11, 30), TZ)
NOW = dt.datetime(2026, 12, 15, 12, 0)


def at(day: int, hour: int = 10, month: int = 11) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, 0)


def timer(portal_id: int, lead_id: int, policy: str, level: str, state: str) -> Timer:
    return Timer(
        portal_id=portal_id, journey_key=lead_id, policy=policy, level=level, state=state,
        due_at=at(1), job_id=f"t-{lead_id}-{policy}-{level}",
        fired_at=at(1) if state == "fired" else None,
    )  # fmt: skip


@pytest.fixture
def november(services: Any, portal_id: int) -> int:
    """Nine leads of portal A (seven count), timers and costs; one lead of portal B."""
    other = make_portal(services, "kpi-portal-b")
    p = portal_id
    with services.db() as s:
        s.add_all(
            [
                lead(p, 1, at(2), assigned_by_id=1, source_id="WEB", utm_campaign="spring",
                     channel="chat", is_ai=True, reply_s=60, booking_at=at(5),
                     confirmed_at=at(3), came_at=at(5), opportunity="2000"),
                lead(p, 2, at(2, 11), assigned_by_id=1, source_id="WEB", utm_campaign="spring",
                     channel="chat", is_ai=True, reply_s=120, confirmed_at=at(3),
                     no_show_at=at(6)),
                lead(p, 3, at(3), assigned_by_id=1, source_id="CALL", channel="call",
                     reply_s=600, booking_at=at(9)),
                lead(p, 4, at(5), assigned_by_id=2, source_id="CALL", channel="call", reply_s=30),
                lead(p, 5, at(10), assigned_by_id=2, source_id="WEB", utm_campaign="autumn",
                     channel="webform", confirmed_at=at(11), came_at=at(12), opportunity="1000"),
                lead(p, 6, at(20), source_id="WEB", utm_campaign="autumn", channel="webform",
                     reply_s=240, confirmed_at=at(21), came_at=at(22)),
                # deleted in the CRM: in no figure
                lead(p, 7, at(4), assigned_by_id=1, source_id="WEB", reply_s=5,
                     deleted_at=at(6)),
                # 21:30 UTC on Oct 31 is 00:30 on Nov 1 in Moscow: inside the period
                lead(p, 8, dt.datetime(2026, 10, 31, 21, 30), assigned_by_id=2,
                     source_id="CALL", channel="call"),
                # 21:30 UTC on Nov 30 is 00:30 on Dec 1 in Moscow: outside
                lead(p, 9, dt.datetime(2026, 11, 30, 21, 30), assigned_by_id=1,
                     source_id="WEB", reply_s=1),
                # another portal's lead, same period
                lead(other, 1, at(2), assigned_by_id=1, source_id="WEB", reply_s=1,
                     confirmed_at=at(3)),
            ]
        )  # fmt: skip
        s.add_all(
            [
                timer(p, 3, "first_reply", "remind", "fired"),
                timer(p, 3, "first_reply", "escalate", "fired"),
                timer(p, 5, "first_reply", "remind", "fired"),
                timer(p, 4, "first_reply", "remind", "pending"),
                timer(p, 1, "reminder", "24h", "fired"),
                timer(p, 7, "first_reply", "remind", "fired"),
                timer(other, 1, "first_reply", "remind", "fired"),
            ]
        )
        s.add_all(
            [
                CampaignCost(portal_id=p, utm_campaign="spring", month="2026-11", cost=Decimal(3000)),
                CampaignCost(portal_id=p, utm_campaign="spring", month="2026-10", cost=Decimal(999)),
                CampaignCost(portal_id=p, utm_campaign="autumn", month="2026-11", cost=Decimal(0)),
                CampaignCost(portal_id=p, utm_campaign="winter", month="2026-11", cost=Decimal(500)),
                CampaignCost(portal_id=other, utm_campaign="spring", month="2026-11", cost=Decimal(7)),
            ]
        )  # fmt: skip
    return p


def dashboard(
    services: Any, portal_id: int, period: metrics.Period = NOVEMBER
) -> metrics.Dashboard:
    with services.db() as session:
        return metrics.compute_dashboard(session, portal_id, period, DEFAULTS, now=NOW)


def test_totals_match_the_hand_computed_figures(services, november) -> None:
    """7 leads count: 5 bookings (71.4 %), 4 confirmed (80 %), 1 no-show (25 %), AOV 1,500."""
    d = dashboard(services, november)
    t = d.total
    assert (t.leads, t.bookings, t.confirmed, t.no_shows, t.came, t.paid_visits) == (
        7,
        5,
        4,
        1,
        3,
        2,
    )
    assert t.conversion_pct == 71.4
    assert t.confirmed_pct == 80.0
    assert t.no_show_pct == 25.0
    assert t.revenue == Decimal("3000.00")
    assert t.aov == Decimal("1500.00")
    # replies 30, 60, 120, 240, 600 s; SLA 3 min: 3 within, 7 due (5 replied + leads 5 and 8)
    assert (d.replies.count, d.replies.median_s, d.replies.p90_s) == (5, 120.0, 456.0)
    assert (t.replied_in_sla, t.sla_due, t.sla_pct) == (3, 7, 42.9)


def test_per_manager_rows(services, november) -> None:
    """Manager 1: 3 leads, all booked, 50 % no-show, p90 504 s, 1 breach + 1 escalation."""
    rows = {r["manager"]: r for r in dashboard(services, november).employees()}
    assert set(rows) == {1, 2, None}
    one, two, nobody = rows[1], rows[2], rows[None]
    assert (one["leads"], one["bookings"], one["conversion_pct"]) == (3, 3, 100.0)
    assert (one["confirmed"], one["no_show_pct"], one["revenue"]) == (2, 50.0, Decimal("2000.00"))
    assert (one["reply_median_s"], one["reply_p90_s"], one["sla_pct"]) == (120.0, 504.0, 66.7)
    assert (one["breaches"], one["escalations"]) == (1, 1)
    assert (two["leads"], two["conversion_pct"], two["no_show_pct"]) == (3, 33.3, 0.0)
    assert (two["reply_median_s"], two["sla_pct"], two["breaches"], two["escalations"]) == (
        30.0, 33.3, 1, 0,
    )  # fmt: skip
    assert (nobody["leads"], nobody["revenue"], nobody["aov"], nobody["sla_pct"]) == (
        1, Decimal("0.00"), None, 0.0,
    )  # fmt: skip


def test_marketing_cpl_and_roi(services, november) -> None:
    """spring: 3,000 ₽ / 2 leads = CPL 1,500, ROI (2,000 − 3,000)/3,000 = −33.3 %; zero cost → ROI —."""
    rows = {r["campaign"]: r for r in dashboard(services, november).marketing()}
    assert set(rows) == {"spring", "autumn", "winter", ""}
    assert (rows["spring"]["cost"], rows["spring"]["cpl"], rows["spring"]["roi_pct"]) == (
        Decimal("3000.00"), Decimal("1500.00"), -33.3,
    )  # fmt: skip
    assert (rows["autumn"]["cost"], rows["autumn"]["cpl"], rows["autumn"]["roi_pct"]) == (
        Decimal("0.00"), Decimal("0.00"), None,
    )  # fmt: skip
    assert (rows["winter"]["leads"], rows["winter"]["cpl"], rows["winter"]["roi_pct"]) == (
        0, None, -100.0,
    )  # fmt: skip
    assert (rows[""]["leads"], rows[""]["cost"], rows[""]["cpl"], rows[""]["roi_pct"]) == (
        3, None, None, None,
    )  # fmt: skip


def test_part_of_a_month_takes_its_share_of_the_cost(services, november) -> None:
    """Nov 1–15 is 15 of 30 days: spring's 3,000 ₽ counts as 1,500 ₽."""
    half = metrics.Period(dt.date(2026, 11, 1), dt.date(2026, 11, 15), TZ)
    with services.db() as session:
        assert metrics.campaign_costs(session, november, half)["spring"] == Decimal("1500.00")


def test_groupings_by_source_channel_and_ai(services, november) -> None:
    """WEB 4 / CALL 3 leads; chat 2, call 3, webform 2; AI 2 (both booked) vs 5 others."""
    d = dashboard(services, november)
    assert [(k, c.leads) for k, c in d.top_sources(3)] == [("WEB", 4), ("CALL", 3)]
    assert {k: c.leads for k, c in d.by["channel"].items()} == {"chat": 2, "call": 3, "webform": 2}
    assert (d.by["ai"][True].leads, d.by["ai"][True].conversion_pct) == (2, 100.0)
    assert (d.by["ai"][False].leads, d.by["ai"][False].conversion_pct) == (5, 60.0)


def test_trend_by_local_day_and_week(services, november) -> None:
    """Days are Moscow days (lead 8 lands on Nov 1); weeks are ISO weeks, gaps are zero."""
    d = dashboard(services, november)
    days = {row["label"]: row for row in d.trend}
    assert len(d.trend) == 30
    assert days["2026-11-01"]["leads"] == 1
    assert (days["2026-11-02"]["leads"], days["2026-11-02"]["no_shows"]) == (2, 1)
    assert days["2026-11-02"]["no_show_pct"] == 50.0
    assert days["2026-11-04"]["leads"] == 0 and days["2026-11-04"]["conversion_pct"] is None
    with services.db() as session:
        weeks = metrics.trend(session, november, NOVEMBER, by_week=True)
    assert [(w["label"], w["leads"]) for w in weeks[:3]] == [
        ("2026-W44", 1), ("2026-W45", 4), ("2026-W46", 1),
    ]  # fmt: skip
    assert sum(w["leads"] for w in weeks) == 7


def test_empty_portal_gives_dashes_not_errors(services, portal_id) -> None:
    """No leads: every ratio is None (shown as —), nothing divides by zero."""
    d = dashboard(services, portal_id)
    t = d.total
    assert t.leads == 0
    assert (t.conversion_pct, t.confirmed_pct, t.no_show_pct, t.sla_pct, t.aov) == (None,) * 5
    assert (d.replies.median_s, d.replies.p90_s) == (None, None)
    assert d.employees() == [] and d.marketing() == [] and d.top_sources() == []
    assert metrics.target_state("no_show_pct", t.no_show_pct, d.targets) == "none"


def test_targets_colour_the_figures() -> None:
    """no-show < 12 %, conversion > 18 %, first reply ≤ 3 min are good; the rest bad."""
    targets = DEFAULTS["targets"]
    assert metrics.target_state("no_show_pct", 11.9, targets) == "good"
    assert metrics.target_state("no_show_pct", 12.0, targets) == "bad"
    assert metrics.target_state("conversion_pct", 18.1, targets) == "good"
    assert metrics.target_state("conversion_pct", 18.0, targets) == "bad"
    assert metrics.target_state("reply_median_s", 180, targets) == "good"
    assert metrics.target_state("reply_median_s", 181, targets) == "bad"


def test_periods_are_local_days_with_utc_bounds() -> None:
    """ "7d" ends today in the portal's zone; bounds are Moscow midnights in naive UTC."""
    now = dt.datetime(2026, 11, 23, 22, 30)  # 01:30 on Nov 24 in Moscow
    week = metrics.period_for("7d", TZ, now=now)
    assert (week.first_day, week.last_day) == (dt.date(2026, 11, 18), dt.date(2026, 11, 24))
    assert (NOVEMBER.start, NOVEMBER.end) == (
        dt.datetime(2026, 10, 31, 21, 0), dt.datetime(2026, 11, 30, 21, 0),
    )  # fmt: skip
    assert metrics.period_for("bogus", TZ, now=now).preset == "30d"
    custom = metrics.period_for(
        None, TZ, date_from=dt.date(2026, 11, 9), date_to=dt.date(2026, 11, 2)
    )
    assert (custom.first_day, custom.last_day) == (dt.date(2026, 11, 2), dt.date(2026, 11, 9))


def test_percentile_interpolates_like_percentile_cont() -> None:
    """Linear interpolation between neighbours; empty → None."""
    assert metrics.percentile([], 0.5) is None
    assert metrics.percentile([10.0], 0.9) == 10.0
    assert metrics.percentile([30, 60, 120, 240, 600], 0.9) == 456.0
    assert metrics.percentile([1, 2, 3, 4], 0.5) == 2.5
