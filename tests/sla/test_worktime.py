"""Working-time arithmetic: hours, weekends, Russian public holidays, DST."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from b24app.settings import DEFAULTS
from b24app.sla.worktime import add_working_minutes
from b24app.sla.worktime import WorkCalendar


def calendar(time_zone: str = "Europe/Moscow", **holidays: Any) -> WorkCalendar:
    settings = copy.deepcopy(DEFAULTS)
    settings["time_zone"] = time_zone
    settings["working_hours"]["sat"] = None  # weekdays 09:00-21:00, weekend closed
    settings["holidays"].update(holidays)
    return WorkCalendar.from_settings(settings)


def utc(local: dt.datetime, time_zone: str) -> dt.datetime:
    aware = local.replace(tzinfo=ZoneInfo(time_zone))
    return aware.astimezone(dt.UTC).replace(tzinfo=None)


def local(moment_utc: dt.datetime, time_zone: str) -> dt.datetime:
    return moment_utc.replace(tzinfo=dt.UTC).astimezone(ZoneInfo(time_zone)).replace(tzinfo=None)


def test_friday_evening_rolls_over_the_weekend_to_monday_0910() -> None:
    """20:55 Friday + 15 working minutes with a 21:00 close is 09:10 on Monday."""
    tz = "Europe/Moscow"
    due = add_working_minutes(utc(dt.datetime(2025, 3, 14, 20, 55), tz), 15, calendar(tz))
    assert local(due, tz) == dt.datetime(2025, 3, 17, 9, 10)


def test_friday_evening_before_new_year_holidays_fires_after_them() -> None:
    """Across a weekend and the Russian New Year holidays (30 Dec - 8 Jan) to 9 Jan 09:10."""
    tz = "Europe/Moscow"
    due = add_working_minutes(utc(dt.datetime(2024, 12, 27, 20, 55), tz), 15, calendar(tz))
    assert local(due, tz) == dt.datetime(2025, 1, 9, 9, 10)


def test_extra_workday_and_extra_day_off_change_the_calendar() -> None:
    """An extra working Saturday counts (Monday's hours); an extra day off does not."""
    tz = "Europe/Moscow"
    start = utc(dt.datetime(2024, 12, 27, 20, 55), tz)
    worked = calendar(tz, extra_workdays=["2024-12-28"])
    assert local(add_working_minutes(start, 15, worked), tz) == dt.datetime(2024, 12, 28, 9, 10)
    off = calendar(tz, extra_days_off=["2025-03-17"])
    monday = utc(dt.datetime(2025, 3, 14, 20, 55), tz)
    assert local(add_working_minutes(monday, 15, off), tz) == dt.datetime(2025, 3, 18, 9, 10)


def test_dst_change_over_the_weekend_keeps_local_opening_time() -> None:
    """Berlin switches to summer time on 30 Mar 2025: Monday 09:10 local is 07:10 UTC."""
    tz = "Europe/Berlin"
    start = utc(dt.datetime(2025, 3, 28, 20, 55), tz)
    due = add_working_minutes(start, 15, calendar(tz, country="DE"))
    assert local(due, tz) == dt.datetime(2025, 3, 31, 9, 10)
    assert due == dt.datetime(2025, 3, 31, 7, 10)
    assert start == dt.datetime(2025, 3, 28, 19, 55)


def test_minutes_within_a_day_and_spanning_days() -> None:
    """Inside hours it is plain addition; 12 h 10 min from 09:00 spans into the next day."""
    tz = "Europe/Moscow"
    cal = calendar(tz)
    start = utc(dt.datetime(2025, 3, 12, 9, 0), tz)
    assert local(add_working_minutes(start, 30, cal), tz) == dt.datetime(2025, 3, 12, 9, 30)
    assert local(add_working_minutes(start, 730, cal), tz) == dt.datetime(2025, 3, 13, 9, 10)
    before_open = utc(dt.datetime(2025, 3, 12, 7, 0), tz)
    assert local(add_working_minutes(before_open, 5, cal), tz) == dt.datetime(2025, 3, 12, 9, 5)


def test_calendar_without_working_days_is_an_error() -> None:
    """No working hours at all raises instead of looping forever."""
    settings = copy.deepcopy(DEFAULTS)
    settings["working_hours"] = {d: None for d in settings["working_hours"]}
    with pytest.raises(ValueError):
        add_working_minutes(dt.datetime(2025, 1, 1), 5, WorkCalendar.from_settings(settings))
