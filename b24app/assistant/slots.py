"""Free times to offer: working hours (b24app.sla.worktime) minus the appointments already
known, near what the client asked for. Pure Python: the busy intervals are passed in.

Where the portal uses Bitrix24 Booking, the busy intervals come from its bookings (there is
no free-slot API: CLIENT-LOOP gotcha 6); otherwise from the appointments the app knows (the
assistant's own pre-bookings and the journeys' ``booking_at``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from b24app.assistant.understanding import When
from b24app.sla.worktime import WorkCalendar

SEARCH_DAYS = 14
LEAD_MINUTES = 60  # nothing sooner than an hour from now
DEFAULT_WINDOW = 3

Interval = tuple[dt.datetime, dt.datetime]  # local naive


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
) -> list[dt.datetime]:
    """Up to ``limit`` free local start times for ``when``, soonest first.

    ``now`` is local naive. A wished exact time offers the nearest free times that day; a
    window ("после 18", "утром") offers times inside it; a day with nothing free (or closed)
    moves on to the next days, keeping the window.
    """
    earliest = now + dt.timedelta(minutes=LEAD_MINUTES)
    first_day = when.day or earliest.date()
    for offset in range(SEARCH_DAYS):
        day = first_day + dt.timedelta(days=offset)
        options = [
            m
            for m in _day_candidates(calendar, day, duration, step)
            if m >= earliest and _free(m, duration, busy)
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
