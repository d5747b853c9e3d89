"""Free times to offer, near what the client asked for. Pure Python: the busy intervals and
the resource's slot ranges are passed in.

Two sources of candidate start times:

* the portal's working hours (b24app.sla.worktime) stepped by the script's slot step, minus
  the appointments the app knows (the assistant's pre-bookings, the journeys' ``booking_at``);
* with a Bitrix24 Booking resource, the resource's own **slot ranges** (``booking.v1.resource.
  slots.list``: weekdays, ``from``/``to`` minutes since 00:00 in the range's time zone,
  ``slotSize``), minus the resource's bookings in the window (Bitrix24 has no method that
  returns free slots). A range offers starts at ``from``, ``from + slotSize``, … while the
  service fits before ``to`` (the service's duration may span several slots: our reading, the
  docs only call ``slotSize`` "the booking duration"); a range in another time zone than the
  portal's is converted, so its day may fall across two local days; a wall time that does not
  exist (the spring DST gap) is skipped. Days the salon's calendar marks off (public holidays,
  extra days off) stay closed; REST exposes no days off of a resource.

All datetimes here are local naive in the portal's (the dialog's) time zone.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo
from zoneinfo import ZoneInfoNotFoundError

from b24app.assistant.understanding import When
from b24app.bounded import clamped
from b24app.sla.worktime import WorkCalendar

log = logging.getLogger(__name__)

SEARCH_DAYS = 14
# How far ahead the assistant books (``settings["assistant"]["horizon_days"]``): a day wished
# beyond it is refused in the chat, and no time after it is offered.
DEFAULT_HORIZON_DAYS = 60
HORIZON_DAYS = (1, 365)  # the settings schema's bounds too
LEAD_MINUTES = 60  # nothing sooner than an hour from now
DEFAULT_WINDOW = 3

Interval = tuple[dt.datetime, dt.datetime]  # local naive
# (local day, service minutes) -> candidate local start times that day
Starts = Callable[[dt.date, int], list[dt.datetime]]
WEEK_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class SlotRange:
    """One weekly range of a Booking resource, as ``slots.list`` describes it."""

    weekdays: frozenset[int]  # 0 = Monday
    start: int  # minutes since 00:00, 0..1440
    end: int
    time_zone: ZoneInfo
    size: int  # minutes

    @classmethod
    def from_rest(cls, row: dict[str, Any]) -> SlotRange | None:
        """A ``slots.list`` row, or None when it cannot be used (logged)."""
        try:
            start, end, size = int(row["from"]), int(row["to"]), int(row["slotSize"])
            days = frozenset(WEEK_DAYS.index(str(d).capitalize()[:3]) for d in row["weekDays"])
            zone = ZoneInfo(str(row["timezone"]))
        except (KeyError, TypeError, ValueError, ZoneInfoNotFoundError):
            log.warning("slot range not understood: %r", row)
            return None
        if not 0 <= start < end <= 1440 or size <= 0 or not days:
            return None
        return cls(days, start, end, zone, size)


def horizon_days(assistant: dict[str, Any]) -> int:
    return clamped(assistant.get("horizon_days"), DEFAULT_HORIZON_DAYS, HORIZON_DAYS)


def parse_ranges(rows: Iterable[Any]) -> list[SlotRange]:
    return [r for r in (SlotRange.from_rest(x) for x in rows if isinstance(x, dict)) if r]


def _exists(wall: dt.datetime, zone: ZoneInfo) -> dt.datetime | None:
    """``wall`` in ``zone`` as an aware datetime, or None if that wall time never happens."""
    aware = wall.replace(tzinfo=zone)
    back = aware.astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None)
    return aware if back == wall else None


def range_starts(
    ranges: Sequence[SlotRange], day: dt.date, duration: int, local: dt.tzinfo
) -> list[dt.datetime]:
    """Start times on local ``day`` that the ranges offer for a service of ``duration``."""
    out: set[dt.datetime] = set()
    for r in ranges:
        # a range's own day may start the day before or after ours in another zone
        for shift in (-1, 0, 1):
            if not dt.date.min < day < dt.date.max and shift:
                continue  # no day before the first or after the last date Python has
            own_day = day + dt.timedelta(days=shift)
            if own_day.weekday() not in r.weekdays:
                continue
            midnight = dt.datetime.combine(own_day, dt.time())
            minute = r.start
            while minute + max(duration, 1) <= r.end:
                aware = _exists(midnight + dt.timedelta(minutes=minute), r.time_zone)
                if aware is not None:
                    moment = aware.astimezone(local).replace(tzinfo=None)
                    if moment.date() == day:
                        out.add(moment)
                minute += r.size
    return sorted(out)


def resource_starts(
    ranges: Sequence[SlotRange], calendar: WorkCalendar, local: dt.tzinfo
) -> Starts:
    """The candidates of a resource: its slot ranges, on the days the salon is open."""

    def starts(day: dt.date, duration: int) -> list[dt.datetime]:
        if calendar.is_holiday(day) and day not in calendar.extra_workdays:
            return []
        return range_starts(ranges, day, duration, local)

    return starts


def _day_candidates(
    calendar: WorkCalendar, day: dt.date, duration: int, step: int
) -> list[dt.datetime]:
    hours = calendar.hours_on(day)
    if hours is None:
        return []
    start = dt.datetime.combine(day, hours[0])
    end = dt.datetime.combine(day, hours[1]) - dt.timedelta(minutes=duration)
    out = []
    while start <= end:
        out.append(start)
        start += dt.timedelta(minutes=step)
    return out


def local_at(ts: int, local: dt.tzinfo) -> dt.datetime:
    """Unix seconds as a local naive datetime."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).astimezone(local).replace(tzinfo=None)


def busy_from_bookings(bookings: Iterable[tuple[int, int]], local: dt.tzinfo) -> list[Interval]:
    """Bookings' (from, to) Unix seconds as local naive intervals."""
    return [(local_at(a, local), local_at(b, local)) for a, b in bookings]


def _free(moment: dt.datetime, duration: int, busy: Sequence[Interval]) -> bool:
    finish = moment + dt.timedelta(minutes=duration)
    return all(finish <= b_start or moment >= b_end for b_start, b_end in busy)


def _in_window(moment: dt.datetime, when: When) -> bool:
    if when.earliest and moment.time() < when.earliest:
        return False
    if when.latest and moment.time() >= when.latest:
        return False
    return True


def free_times(
    calendar: WorkCalendar,
    when: When,
    duration: int,
    *,
    now: dt.datetime,
    busy: Sequence[Interval] = (),
    step: int = 60,
    limit: int = DEFAULT_WINDOW,
    starts: Starts | None = None,
    until: dt.datetime | None = None,
    last_day: dt.date | None = None,
) -> list[dt.datetime]:
    """Up to ``limit`` free local start times for ``when``, soonest first.

    ``now`` is local naive. A wished exact time offers the nearest free times that day; a
    window ("после 18", "утром") offers times inside it; a day with nothing free (or closed)
    moves on to the next days, keeping the window. ``starts`` replaces the working-hours
    candidates (a Booking resource's slot ranges, :func:`resource_starts`); nothing ending
    after ``until`` (the end of what is known to be busy) is offered, nothing on a day after
    ``last_day`` (the assistant's horizon; it also keeps the day arithmetic far from
    ``date.max``, whatever day was wished).
    """
    earliest = now + dt.timedelta(minutes=LEAD_MINUTES)
    first_day = when.day or earliest.date()

    def candidates(day: dt.date) -> list[dt.datetime]:
        if starts is not None:
            return starts(day, duration)
        return _day_candidates(calendar, day, duration, step)

    for offset in range(SEARCH_DAYS):
        if last_day is not None and (first_day - last_day).days + offset > 0:
            break
        if (dt.date.max - first_day).days < offset:
            break
        day = first_day + dt.timedelta(days=offset)
        options = [
            m
            for m in candidates(day)
            if m >= earliest
            and _free(m, duration, busy)
            and (until is None or m + dt.timedelta(minutes=duration) <= until)
        ]
        if when.at is not None and offset == 0:
            wished = dt.datetime.combine(day, when.at)
            nearest = sorted(options, key=lambda m: (abs((m - wished).total_seconds()), m))
            if nearest:
                return sorted(nearest[:limit])
            continue
        in_window = [m for m in options if _in_window(m, when)]
        if in_window:
            return in_window[:limit]
        if when.at is not None:
            # the wished hour on a following day
            nearest = sorted(
                options,
                key=lambda m: abs(
                    (m - dt.datetime.combine(day, when.at or dt.time(12))).total_seconds()
                ),
            )
            if nearest:
                return sorted(nearest[:limit])
    return []
