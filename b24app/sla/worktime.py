"""Working time: a portal's calendar (time zone, hours per weekday, public holidays) and
"add N working minutes" arithmetic. Pure: no database, no Redis, no clock.

Datetimes in and out are naive UTC (as stored everywhere in the app); the calendar works in
the portal's local time, so a DST change is handled by converting each day's opening and
closing time to UTC separately.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from zoneinfo import ZoneInfo

import holidays

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# A calendar with no working day at all must not loop forever.
MAX_SEARCH_DAYS = 800

Hours = tuple[dt.time, dt.time]


def _parse_hours(value: Any) -> Hours | None:
    if not value:
        return None
    opens, closes = (dt.time.fromisoformat(str(v)) for v in value)
    if closes <= opens:
        return None
    return opens, closes


@dataclass
class WorkCalendar:
    """When a portal works: ``hours[weekday]`` (0 = Monday) is (open, close) or None."""

    time_zone: ZoneInfo
    hours: dict[int, Hours | None]
    country: str | None = "RU"
    extra_days_off: frozenset[dt.date] = frozenset()
    extra_workdays: frozenset[dt.date] = frozenset()
    _holidays: dict[int, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> WorkCalendar:
        """Build from a portal's effective settings (``b24app.settings.load_settings``)."""
        working_hours = settings.get("working_hours") or {}
        days = settings.get("holidays") or {}
        return cls(
            time_zone=ZoneInfo(settings.get("time_zone") or "Europe/Moscow"),
            hours={i: _parse_hours(working_hours.get(name)) for i, name in enumerate(WEEKDAYS)},
            country=days.get("country"),
            extra_days_off=frozenset(
                dt.date.fromisoformat(d) for d in days.get("extra_days_off", [])
            ),
            extra_workdays=frozenset(
                dt.date.fromisoformat(d) for d in days.get("extra_workdays", [])
            ),
        )

    def is_holiday(self, day: dt.date) -> bool:
        """A public holiday of the calendar's country (python-holidays) or an extra day off."""
        if day in self.extra_days_off:
            return True
        if not self.country:
            return False
        if day.year not in self._holidays:
            self._holidays[day.year] = holidays.country_holidays(self.country, years=day.year)
        return day in self._holidays[day.year]

    def hours_on(self, day: dt.date) -> Hours | None:
        """Opening hours on ``day`` in local time, or None if it is not a working day."""
        if day in self.extra_workdays:
            # A transferred working day (often a Saturday): its own hours, else Monday's.
            return self.hours.get(day.weekday()) or self.hours.get(0)
        if self.is_holiday(day):
            return None
        return self.hours.get(day.weekday())

    def interval_utc(self, day: dt.date) -> tuple[dt.datetime, dt.datetime] | None:
        """The working interval of ``day`` as naive UTC datetimes, or None."""
        hours = self.hours_on(day)
        if hours is None:
            return None
        opens, closes = (
            dt.datetime.combine(day, t, tzinfo=self.time_zone)
            .astimezone(dt.UTC)
            .replace(tzinfo=None)
            for t in hours
        )
        return opens, closes

    def local_date(self, moment_utc: dt.datetime) -> dt.date:
        return moment_utc.replace(tzinfo=dt.UTC).astimezone(self.time_zone).date()


def add_working_minutes(
    start_utc: dt.datetime, minutes: float, calendar: WorkCalendar
) -> dt.datetime:
    """The moment ``minutes`` of working time after ``start_utc`` (both naive UTC).

    Time outside working hours does not count: 20:55 + 15 min with a 21:00 close is 09:10 on
    the next working day (09:00 opening). Zero minutes outside hours gives the next opening.
    """
    if minutes < 0:
        raise ValueError("minutes must not be negative")
    remaining = dt.timedelta(minutes=minutes)
    cursor = start_utc
    day = calendar.local_date(start_utc)
    for _ in range(MAX_SEARCH_DAYS):
        interval = calendar.interval_utc(day)
        if interval is not None:
            opens, closes = interval
            cursor = max(cursor, opens)
            if cursor < closes:
                available = closes - cursor
                if remaining <= available:
                    return cursor + remaining
                remaining -= available
                cursor = closes
        day += dt.timedelta(days=1)
    raise ValueError("the calendar has no working time in the next %d days" % MAX_SEARCH_DAYS)
