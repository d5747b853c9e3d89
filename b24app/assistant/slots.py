"""Free times to offer, near what the client asked for: the one module that computes them
(:func:`offer_times` reads what is taken — the app's rows, a Booking resource's bookings — and
the rest is pure Python on the busy intervals and the resource's slot ranges).

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

from sqlalchemy import select
from sqlalchemy.orm import Session

from b24app.appointments.resources import availability
from b24app.appointments.resources import holds
from b24app.assistant.understanding import When
from b24app.bounded import clamped
from b24app.context import Services
from b24app.sla.worktime import WorkCalendar
from b24app.storage.models import Appointment
from b24app.storage.models import AppointmentStatus
from b24app.storage.models import AssistantDialog
from b24app.storage.models import Journey
from b24app.storage.models import utc_now

log = logging.getLogger(__name__)

SEARCH_DAYS = 14
# How far ahead the assistant books (``settings["assistant"]["horizon_days"]``): a day wished
# beyond it is refused in the chat, and no time after it is offered.
DEFAULT_HORIZON_DAYS = 60
HORIZON_DAYS = (1, 365)  # the settings schema's bounds too
LEAD_MINUTES = 60  # nothing sooner than an hour from now
DEFAULT_WINDOW = 3
WINDOW_SLACK_DAYS = 7  # a Booking window covers wishes up to a week ahead

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


def offered_since(now: dt.datetime, offered_at: str | None) -> dt.datetime:
    """The "now" that re-checking an offered time counts the lead time from: when it was
    offered (19:00 offered at 17:59 and picked at 18:01 is not "taken"), yet never so early
    that a time already past gets through (at most :data:`LEAD_MINUTES` before ``now``).
    ``now`` and ``offered_at`` (ISO) are in the same frame, both naive."""
    try:
        at = dt.datetime.fromisoformat(offered_at) if offered_at else now
    except ValueError:
        at = now
    return min(now, max(at, now - dt.timedelta(minutes=LEAD_MINUTES)))


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


# --- free times ------------------------------------------------------------------------------


def _busy_intervals(
    session: Session,
    portal_id: int,
    tz: dt.tzinfo,
    exclude_dialog: int | None,
    *,
    prebookings_only: bool = False,
    exclude_appointment: int | None = None,
) -> list[Interval]:
    """Appointments the app knows, as local naive intervals: the assistant's pre-bookings, the
    appointments (mirroring Online Booking) and the journeys' booking times (an hour each when
    the length is unknown). ``prebookings_only`` (free times of a Booking resource, whose own
    bookings come from the portal): the other dialogs' pre-bookings, which are on that
    resource and may be younger than the cached bookings."""

    def local(moment: dt.datetime) -> dt.datetime:
        return moment.replace(tzinfo=dt.UTC).astimezone(tz).replace(tzinfo=None)

    horizon = utc_now() - dt.timedelta(hours=2)
    out: list[Interval] = []
    rows = session.execute(
        select(
            AssistantDialog.id, AssistantDialog.booking_start, AssistantDialog.booking_end
        ).where(
            AssistantDialog.portal_id == portal_id,
            AssistantDialog.booking_start.is_not(None),
            AssistantDialog.booking_start >= horizon,
        )
    ).all()
    for dialog_id, start, end in rows:
        if dialog_id != exclude_dialog and start is not None:
            out.append((local(start), local(end or start + dt.timedelta(hours=1))))
    if prebookings_only:
        return out
    live = (AppointmentStatus.SCHEDULED, AppointmentStatus.CONFIRMED,
            AppointmentStatus.RESCHEDULE_ASKED)  # fmt: skip
    own = exclude_appointment or session.scalar(
        select(AssistantDialog.appointment_id).where(AssistantDialog.id == exclude_dialog)
    )
    for appointment_id, starts_at in session.execute(
        select(Appointment.id, Appointment.starts_at).where(
            Appointment.portal_id == portal_id,
            Appointment.status.in_(live),
            Appointment.starts_at >= horizon,
        )
    ).all():
        if appointment_id != own:
            out.append((local(starts_at), local(starts_at + dt.timedelta(hours=1))))
    for (booking_at,) in session.execute(
        select(Journey.booking_at).where(
            Journey.portal_id == portal_id,
            Journey.booking_at.is_not(None),
            Journey.booking_at >= horizon,
            Journey.deleted_at.is_(None),
        )
    ).all():
        if booking_at is not None:
            out.append((local(booking_at), local(booking_at + dt.timedelta(hours=1))))
    return out


def _resource_times(
    services: Services,
    client: Any,
    member_id: str,
    resource_id: int,
    calendar: WorkCalendar,
    when: When,
    duration: int,
    *,
    now: dt.datetime,
    busy: Sequence[Interval],
    own_booking: int | None,
    last_day: dt.date | None = None,
) -> list[dt.datetime] | None:
    """Free times of the Booking resource: its slot ranges minus its bookings in the window
    (one cached batch, ``b24app.appointments.resources``) and the other dialogs' pre-bookings.
    None when the portal did not answer or the resource has no slot settings: the caller
    offers the working hours instead."""
    tz = calendar.time_zone
    today = now.date()
    first = when.day or today
    # one window per portal and day, shared by its chats: today + the search (+ a week of
    # slack for "next Friday"); a wish beyond that gets a window of its own
    anchor = today if first <= today + dt.timedelta(days=WINDOW_SLACK_DAYS) else first
    span = SEARCH_DAYS + (WINDOW_SLACK_DAYS if anchor == today else 0) + 1
    date_from = int(dt.datetime.combine(anchor, dt.time(), tzinfo=tz).timestamp())
    date_to = int(
        dt.datetime.combine(anchor + dt.timedelta(days=span), dt.time(), tzinfo=tz).timestamp()
    )
    found = availability(services, client, member_id, resource_id, date_from, date_to)
    if found is None:
        return None
    ranges = parse_ranges(found.slots)
    if not ranges:
        log.info("resource %s has no slot settings: working hours are offered", resource_id)
        return None
    taken = busy_from_bookings(
        (span_ for booking_id, span_ in found.bookings.items() if booking_id != own_booking), tz
    )
    return free_times(calendar, when, duration, now=now, busy=[*busy, *taken],
                      starts=resource_starts(ranges, calendar, tz),
                      until=local_at(found.complete_until, tz), last_day=last_day)  # fmt: skip


def offer_times(
    services: Services,
    client: Any,
    member_id: str,
    portal_id: int,
    calendar: WorkCalendar,
    when: When,
    duration: int,
    *,
    now: dt.datetime,
    resource_id: int = 0,
    step: int = 60,
    claimed: Sequence[Interval] = (),
    exclude_dialog: int | None = None,
    exclude_appointment: int | None = None,
    own_booking: int | None = None,
    last_day: dt.date | None = None,
) -> list[dt.datetime]:
    """The one answer to "which times are free" (local naive, soonest first): the assistant's
    offers, a move in the reminder chat (``b24app.appointments.reschedule``).

    With a Booking resource: its slot ranges minus its bookings (``own_booking`` aside) and the
    other dialogs' pre-bookings; when the portal does not answer or the resource has no slot
    settings, the working hours stepped by ``step`` minus every appointment the app knows
    (``exclude_dialog``'s pre-booking and ``exclude_appointment`` aside). ``claimed``: the
    times other chats are taking right now (``b24app.assistant.claims``).
    """
    tz = calendar.time_zone
    if resource_id:
        with services.db() as session:
            known = _busy_intervals(session, portal_id, tz, exclude_dialog, prebookings_only=True)
        times = _resource_times(services, client, member_id, resource_id, calendar, when,
                                duration, now=now, busy=[*known, *claimed],
                                own_booking=own_booking, last_day=last_day)  # fmt: skip
        if times is not None:
            return times
    with services.db() as session:
        known = _busy_intervals(session, portal_id, tz, exclude_dialog,
                                exclude_appointment=exclude_appointment)  # fmt: skip
    return free_times(calendar, when, duration, now=now, busy=[*known, *claimed], step=step,
                      last_day=last_day)  # fmt: skip


def still_free(
    client: Any,
    resource_id: int,
    start: dt.datetime,
    end: dt.datetime,
    tz: dt.tzinfo,
    taken: Sequence[Interval] = (),
) -> bool:
    """Whether ``[start, end)`` (local naive) of the resource is free right now: the bookings
    Bitrix24 has over it, read fresh (never the cache: this decides who gets a freed time),
    and ``taken``, the times other chats are claiming."""
    span = [int(m.replace(tzinfo=tz).timestamp()) for m in (start, end)]
    page = client.call_raw(
        "booking.v1.booking.list", {"filter": {"within": {"dateFrom": span[0], "dateTo": span[1]}}}
    )
    for row in (page.get("result") or {}).get("booking") or []:
        if isinstance(row, dict) and holds(row, resource_id):
            return False
    return all(end <= b_start or start >= b_end for b_start, b_end in taken)
