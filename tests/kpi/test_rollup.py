"""The daily roll-up answers long periods exactly as the per-lead SQL does — after a build,
after changes the build has not seen, and after a change of time zone or policy."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy import update

from b24app.kpi import metrics
from b24app.kpi import rollup
from b24app.settings import load_settings
from b24app.settings import save_settings
from b24app.storage.models import Journey
from b24app.storage.models import KpiDaily
from b24app.storage.models import KpiDailyState
from b24app.storage.models import Timer
from b24app.storage.models import utc_now
from tests.kpi.conftest import lead
from tests.kpi.conftest import make_portal

NOW = utc_now().replace(microsecond=0)


def _seed(services: Any, portal_id: int, n: int = 600, days: int = 500) -> None:
    rng = random.Random(7)
    with services.db() as s:
        for i in range(1, n + 1):
            created = NOW - dt.timedelta(seconds=rng.randint(0, days * 86400))
            booked, confirmed = rng.random() < 0.4, rng.random() < 0.7
            came = booked and confirmed and rng.random() < 0.8
            s.add(lead(
                portal_id, i, created,
                source_id=rng.choice(["", "CALL", "2|TELEGRAM", "WEBFORM"]),
                channel=rng.choice(["chat", "call", "other"]), is_ai=rng.random() < 0.3,
                utm_campaign=rng.choice(["", "spring", "vk"]),
                assigned_by_id=rng.choice([None, 1, 2, 3]),
                reply_s=rng.choice([None, rng.randint(0, 599), rng.randint(0, 200)]),
                booking_at=created if booked else None,
                confirmed_at=created if booked and confirmed else None,
                came_at=created if came else None,
                no_show_at=created if booked and confirmed and not came else None,
                opportunity=rng.randint(5, 40) * 100 if came else None,
                deleted_at=created if rng.random() < 0.03 else None,
                updated_at=NOW - dt.timedelta(hours=1),  # written before the build
            ))  # fmt: skip
            if rng.random() < 0.2:
                for level in ("remind", "escalate")[: rng.randint(1, 2)]:
                    s.add(Timer(portal_id=portal_id, journey_key=i, policy="first_reply",
                                level=level, due_at=created + dt.timedelta(minutes=3),
                                state="fired", job_id=f"t-{i}-{level}",
                                fired_at=created + dt.timedelta(minutes=3)))  # fmt: skip


def _both(services: Any, portal_id: int, period: metrics.Period) -> tuple[Any, Any]:
    with services.db() as s:
        settings = load_settings(s, portal_id)
        plain = metrics.compute_dashboard(s, portal_id, period, settings, now=NOW)
        rolled = rollup.compute_dashboard(s, portal_id, period, settings, now=NOW)
    return plain, rolled


def _close(rolled: Any, plain: Any) -> None:
    assert rolled.count == plain.count
    for got, want in ((rolled.median_s, plain.median_s), (rolled.p90_s, plain.p90_s)):
        if want is None or want < 60:
            assert got == want
        else:
            assert abs(got - want) <= 0.051 * want + 0.5, (got, want)


def _same(plain: Any, rolled: Any) -> None:
    assert rolled.total == plain.total
    for dim in metrics.DIMENSIONS:
        assert rolled.by[dim] == plain.by[dim], dim
    # First-reply times: exact below a minute, within 5 % above (10 %-wide buckets).
    _close(rolled.replies, plain.replies)
    assert set(rolled.replies_by_manager) == set(plain.replies_by_manager)
    for manager, stats in plain.replies_by_manager.items():
        _close(rolled.replies_by_manager[manager], stats)
    assert rolled.breaches_by_manager == plain.breaches_by_manager
    assert rolled.escalations_by_manager == plain.escalations_by_manager
    assert rolled.trend == plain.trend
    assert rolled.costs == plain.costs
    # The page's other blocks (appointments, the assistant) are there too: the template reads them.
    assert {k: v for k, v in rolled.extra.items() if k != "rollup"} == plain.extra


def _periods(tz: str) -> list[metrics.Period]:
    today = metrics.local_today(tz, NOW)
    return [
        metrics.period_for("365d", tz, now=NOW),
        metrics.period_for("90d", tz, now=NOW),
        metrics.period_for(
            None, tz, date_from=today - dt.timedelta(days=3 * 365), date_to=today, now=NOW
        ),  # fmt: skip
        metrics.period_for(
            None,
            tz,
            date_from=today - dt.timedelta(days=400),
            date_to=today - dt.timedelta(days=200),
            now=NOW,
        ),  # fmt: skip
    ]


def test_rollup_equals_the_per_lead_figures(services) -> None:
    portal_id = make_portal(services, "rollup-a")
    _seed(services, portal_id)
    other = make_portal(services, "rollup-b")
    _seed(services, other, n=100)
    with services.db() as s:
        assert rollup.refresh_portal(s, portal_id, load_settings(s, portal_id)) > 0
    tz = "Europe/Moscow"
    for period in _periods(tz):
        plain, rolled = _both(services, portal_id, period)
        assert rolled.extra.get("rollup") is True
        assert plain.total.leads > 0
        _same(plain, rolled)

    # Changes the build has not seen: a lead moves on, one is deleted, one is added a year
    # ago, a timer fires — answered live for those days, still exact.
    with services.db() as s:
        s.execute(update(Journey).where(Journey.portal_id == portal_id, Journey.lead_id == 5)
                  .values(came_at=NOW, opportunity=Decimal(9999)))  # fmt: skip
        s.execute(update(Journey).where(Journey.portal_id == portal_id, Journey.lead_id == 6)
                  .values(deleted_at=NOW))  # fmt: skip
        s.add(lead(portal_id, 9001, NOW - dt.timedelta(days=300), source_id="NEW_ONE",
                   assigned_by_id=9, reply_s=42))  # fmt: skip
        s.add(Timer(portal_id=portal_id, journey_key=7, policy="callback", level="escalate",
                    due_at=NOW - dt.timedelta(days=1), state="fired", job_id="late",
                    fired_at=utc_now()))  # fmt: skip
    for period in _periods(tz):
        _same(*_both(services, portal_id, period))
    with services.db() as s:
        assert rollup.refresh_portal(s, portal_id, load_settings(s, portal_id)) > 0
        stored = s.scalars(select(KpiDaily).where(KpiDaily.portal_id == portal_id,
                                                   KpiDaily.key == "NEW_ONE")).all()  # fmt: skip
        assert sorted((r.grain, r.leads) for r in stored) == [("d", 1), ("m", 1)]
    for period in _periods(tz):
        _same(*_both(services, portal_id, period))


@pytest.mark.parametrize("change", ["tz", "policy"])
def test_a_settings_change_is_exact_before_and_after_the_rebuild(services, change) -> None:
    portal_id = make_portal(services, f"rollup-{change}")
    _seed(services, portal_id, n=200)
    with services.db() as s:
        rollup.refresh_portal(s, portal_id, load_settings(s, portal_id))
        new = {"time_zone": "Asia/Vladivostok"} if change == "tz" else {
            "sla": {"first_reply": {"minutes": 1}}
        }  # fmt: skip
        save_settings(s, portal_id, new)
    tz = "Asia/Vladivostok" if change == "tz" else "Europe/Moscow"
    period = _periods(tz)[0]
    plain, rolled = _both(services, portal_id, period)
    assert "rollup" not in rolled.extra  # the build no longer fits: the per-lead SQL answers
    _same(plain, rolled)
    with services.db() as s:
        rollup.refresh_portal(s, portal_id, load_settings(s, portal_id))
    plain, rolled = _both(services, portal_id, period)
    assert rolled.extra.get("rollup") is True
    _same(plain, rolled)


def test_reply_buckets() -> None:
    assert [rollup.reply_bucket(v) for v in (-3, 0.4, 59.4)] == [0, 0, 59]
    for seconds in (60, 61, 100, 599, 3600, 86_400 * 3):
        assert abs(rollup.reply_bucket(seconds) - seconds) <= 0.05 * seconds + 0.5
    assert rollup.reply_bucket(100) == rollup.reply_bucket(101)  # one bucket


def test_a_lead_that_becomes_due_without_a_change_of_its_own_is_exact_days_later(services):
    """A lead not answered yet when its day was built counts as due once the first-reply time
    (3 minutes) has passed, with no change of its own: the next build rebuilds that day, so
    the stored day is right long after it stopped being recomputed live."""
    portal_id = make_portal(services, "rollup-due")
    created = NOW - dt.timedelta(days=10)
    with services.db() as s:
        s.add(lead(portal_id, 1, created, updated_at=created))  # never answered
        s.add(lead(portal_id, 2, created - dt.timedelta(days=1), reply_s=30, updated_at=created))
        settings = load_settings(s, portal_id)
    with services.db() as s:  # built a minute after it came: not due yet
        rollup.refresh_portal(s, portal_id, settings, now=created + dt.timedelta(minutes=1))
    later = created + dt.timedelta(days=3)
    with services.db() as s:  # nothing changed since; cron builds again three days later
        rollup.refresh_portal(s, portal_id, settings, now=later)
    now = later + dt.timedelta(minutes=1)
    period = metrics.period_for("90d", "Europe/Moscow", now=now)
    with services.db() as s:
        state = s.get(KpiDailyState, portal_id)
        live = rollup.live_days(s, portal_id, state, period, 180.0, now)
        assert live is not None and metrics.local_today("Europe/Moscow", created) not in live
        plain = metrics.compute_dashboard(s, portal_id, period, settings, now=now)
        rolled = rollup.compute_dashboard(s, portal_id, period, settings, now=now)
    assert rolled.extra.get("rollup") is True
    assert plain.total.sla_due == 2
    _same(plain, rolled)
