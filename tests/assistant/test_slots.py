"""The slot arithmetic of a Booking resource (pure): weekly slot ranges in their own time zone,
steps of ``slotSize``, a service spanning slots, DST gaps, holidays, bookings taken away and a
window known only up to a point; and the one batch that reads a resource's availability."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from b24app.appointments.resources import fetch
from b24app.appointments.resources import PAGE
from b24app.appointments.resources import PAGES
from b24app.assistant.slots import busy_from_bookings
from b24app.assistant.slots import free_times
from b24app.assistant.slots import offered_since
from b24app.assistant.slots import parse_ranges
from b24app.assistant.slots import range_starts
from b24app.assistant.slots import resource_starts
from b24app.assistant.understanding import When
from b24app.bitrix.client import BatchResult
from b24app.sla.worktime import WorkCalendar

MSK = ZoneInfo("Europe/Moscow")
BERLIN = ZoneInfo("Europe/Berlin")
MONDAY = dt.date(2026, 11, 30)


def rows(*ranges: tuple[list[str], int, int, int, str]) -> list[dict[str, Any]]:
    return [{"id": i, "weekDays": days, "from": a, "to": b, "slotSize": size, "timezone": tz}
            for i, (days, a, b, size, tz) in enumerate(ranges, 1)]  # fmt: skip


def hhmm(times: list[dt.datetime]) -> list[str]:
    return [t.strftime("%H:%M") for t in times]


def calendar(country: str | None = None) -> WorkCalendar:
    return WorkCalendar.from_settings(
        {"time_zone": "Europe/Moscow", "holidays": {"country": country}}
    )


def test_steps_of_the_slot_size_while_the_service_fits() -> None:
    ranges = parse_ranges(rows((["Mon", "Tue"], 540, 720, 30, "Europe/Moscow")))
    assert hhmm(range_starts(ranges, MONDAY, 30, MSK)) == [
        "09:00", "09:30", "10:00", "10:30", "11:00", "11:30"
    ]  # fmt: skip
    # a 90-minute service spans three slots and must end by 12:00
    assert hhmm(range_starts(ranges, MONDAY, 90, MSK)) == ["09:00", "09:30", "10:00", "10:30"]
    assert range_starts(ranges, MONDAY + dt.timedelta(days=2), 30, MSK) == []  # Wednesday


def test_several_ranges_a_day_and_different_weekdays() -> None:
    ranges = parse_ranges(rows(
        (["Mon"], 600, 780, 60, "Europe/Moscow"),  # 10-13
        (["Mon"], 960, 1140, 60, "Europe/Moscow"),  # 16-19
        (["Sat"], 600, 720, 60, "Europe/Moscow"),
    ))  # fmt: skip
    assert hhmm(range_starts(ranges, MONDAY, 60, MSK)) == [
        "10:00", "11:00", "12:00", "16:00", "17:00", "18:00"
    ]  # fmt: skip
    assert hhmm(range_starts(ranges, MONDAY, 120, MSK)) == ["10:00", "11:00", "16:00", "17:00"]
    assert hhmm(range_starts(ranges, dt.date(2026, 12, 5), 60, MSK)) == ["10:00", "11:00"]


def test_a_range_in_another_time_zone_is_converted() -> None:
    # Berlin is UTC+1 in winter, Moscow UTC+3: 09:00 in Berlin is 11:00 in Moscow
    ranges = parse_ranges(rows((["Mon"], 540, 660, 60, "Europe/Berlin")))
    assert hhmm(range_starts(ranges, MONDAY, 60, MSK)) == ["11:00", "12:00"]
    # a late Berlin evening is the next day in Moscow: Monday 22:00-24:00 Berlin → Tuesday
    late = parse_ranges(rows((["Mon"], 1320, 1440, 60, "Europe/Berlin")))
    assert range_starts(late, MONDAY, 60, MSK) == []
    tuesday = range_starts(late, MONDAY + dt.timedelta(days=1), 60, MSK)
    assert tuesday == [dt.datetime(2026, 12, 1, 0), dt.datetime(2026, 12, 1, 1)]
    # and a range far east ends up the previous local day: Tue 06:00 Vladivostok = Mon 23:00
    east = parse_ranges(rows((["Tue"], 360, 420, 60, "Asia/Vladivostok")))
    assert range_starts(east, MONDAY, 60, MSK) == [dt.datetime(2026, 11, 30, 23)]


def test_daylight_saving_gap_and_overlap() -> None:
    spring = dt.date(2027, 3, 28)  # Berlin: 02:00 → 03:00, a Sunday
    ranges = parse_ranges(rows((["Sun"], 60, 240, 30, "Europe/Berlin")))
    assert hhmm(range_starts(ranges, spring, 30, BERLIN)) == ["01:00", "01:30", "03:00", "03:30"]
    # in Moscow (no DST) the same starts follow each other: 01:30 CET and 03:00 CEST are
    # 00:30 and 01:00 UTC
    assert hhmm(range_starts(ranges, spring, 30, MSK)) == ["03:00", "03:30", "04:00", "04:30"]
    autumn = dt.date(2026, 10, 25)  # Berlin: 03:00 → 02:00; 02:xx happens twice, offered once
    ranges = parse_ranges(rows((["Sun"], 60, 240, 60, "Europe/Berlin")))
    assert hhmm(range_starts(ranges, autumn, 60, BERLIN)) == ["01:00", "02:00", "03:00"]


def test_unusable_rows_are_skipped() -> None:
    ranges = parse_ranges([
        {"weekDays": ["Mon"], "from": 600, "to": 600, "slotSize": 60, "timezone": "UTC"},
        {"weekDays": ["Xyz"], "from": 600, "to": 700, "slotSize": 60, "timezone": "UTC"},
        {"weekDays": ["Mon"], "from": 600, "to": 700, "slotSize": 60, "timezone": "Mars/Base"},
        {"weekDays": ["Mon"], "from": 600, "to": 700, "slotSize": 0, "timezone": "UTC"},
        {"weekDays": ["Mon"], "from": "600", "to": "720", "slotSize": "60", "timezone": "UTC"},
        "garbage",
    ])  # fmt: skip
    assert len(ranges) == 1 and (ranges[0].start, ranges[0].end) == (600, 720)


def test_free_times_from_a_resource_minus_its_bookings() -> None:
    cal = calendar()
    ranges = parse_ranges(rows((["Mon", "Tue"], 600, 840, 60, "Europe/Moscow")))  # 10-14
    booked = dt.datetime(2026, 11, 30, 11, tzinfo=MSK).timestamp()
    busy = busy_from_bookings([(int(booked), int(booked) + 3600)], MSK)
    assert busy == [(dt.datetime(2026, 11, 30, 11), dt.datetime(2026, 11, 30, 12))]
    now = dt.datetime(2026, 11, 28, 12)  # Saturday
    times = free_times(cal, When(MONDAY), 60, now=now, busy=busy,
                       starts=resource_starts(ranges, cal, MSK), limit=5)  # fmt: skip
    assert hhmm(times) == ["10:00", "12:00", "13:00"]
    # nothing free on the wished day: the next day the resource works, same window
    full = busy_from_bookings([(int(booked) - 3600, int(booked) + 3 * 3600)], MSK)
    times = free_times(cal, When(MONDAY, earliest=dt.time(12)), 60, now=now, busy=full,
                       starts=resource_starts(ranges, cal, MSK))  # fmt: skip
    assert times == [dt.datetime(2026, 12, 1, 12), dt.datetime(2026, 12, 1, 13)]
    # the bookings are known only until Monday 12:00: nothing ending later is offered
    times = free_times(cal, When(MONDAY), 60, now=now, busy=busy, until=dt.datetime(2026, 11, 30, 12),
                       starts=resource_starts(ranges, cal, MSK))  # fmt: skip
    assert times == [dt.datetime(2026, 11, 30, 10)]


def test_the_salons_holidays_close_a_resource_too() -> None:
    ranges = parse_ranges(rows((["Fri"], 600, 720, 60, "Europe/Moscow")))
    new_year = dt.date(2027, 1, 1)  # a Friday and a public holiday in Russia
    assert range_starts(ranges, new_year, 60, MSK)
    assert resource_starts(ranges, calendar("RU"), MSK)(new_year, 60) == []
    assert resource_starts(ranges, calendar(None), MSK)(new_year, 60)


class PagedClient:
    """A stand-in for the REST client's ``batch``: the window holds ``count`` bookings of
    resources 1 and 2 alternately, an hour apart, 50 a page."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.batches: list[dict[str, Any]] = []

    def batch(self, commands: dict[str, Any], halt: bool = False) -> BatchResult:
        self.batches.append(commands)
        out = BatchResult()
        out.results["slots"] = {"slots": rows((["Mon"], 600, 1200, 60, "Europe/Moscow"))}
        for cmd, (method, params) in commands.items():
            if method != "booking.v1.booking.list":
                continue
            start = params["start"]
            out.results[cmd] = {"booking": [
                {"id": i, "resourceIds": [1 + i % 2],
                 "datePeriod": {"from": {"timestamp": 1000 + i * 3600, "timezone": "UTC"},
                                "to": {"timestamp": 1000 + i * 3600 + 1800, "timezone": "UTC"}}}
                for i in range(start, min(start + PAGE, self.count))
            ]}  # fmt: skip
        return out


def test_one_batch_reads_slots_and_the_windows_bookings() -> None:
    client = PagedClient(count=30)
    found = fetch(client, 1, 0, 10**9)
    assert len(client.batches) == 1
    (commands,) = client.batches
    assert commands["slots"] == ("booking.v1.resource.slots.list", {"resourceId": 1})
    assert commands["b0"][1]["filter"] == {"within": {"dateFrom": 0, "dateTo": 10**9}}
    assert len(found.slots) == 1
    assert sorted(found.bookings) == list(range(0, 30, 2))  # only those holding resource 1
    assert found.complete_until == 10**9


def test_a_window_with_more_bookings_than_the_pages_is_known_up_to_the_last_one() -> None:
    client = PagedClient(count=PAGES * PAGE + 7)
    found = fetch(client, 2, 0, 10**9)
    last = PAGES * PAGE - 1
    assert found.complete_until == 1000 + last * 3600
    assert max(found.bookings) == last  # resource 2 holds the odd ones


def test_no_day_beyond_the_last_day_and_no_overflow() -> None:
    """A wish near ``date.max`` ends the search instead of raising OverflowError, and nothing
    after ``last_day`` (the assistant's horizon) is offered."""
    cal = calendar()
    every_day = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    starts = resource_starts(parse_ranges(rows((every_day, 600, 840, 60, "Europe/Moscow"))),
                             cal, MSK)  # fmt: skip
    now = dt.datetime(2026, 12, 1, 10, 0)
    far = When(day=dt.date(9999, 12, 31), earliest=dt.time(12, 0))
    assert hhmm(free_times(cal, far, 60, now=now, starts=starts)) == ["12:00", "13:00"]
    assert free_times(cal, far, 60, now=now, starts=starts, last_day=dt.date(2027, 1, 30)) == []
    assert free_times(cal, When(day=dt.date.max), 60, now=now) == []  # working hours
    soon = When(day=dt.date(2026, 12, 2), earliest=dt.time(12, 0))
    full = [(dt.datetime(2026, 12, 2), dt.datetime(2026, 12, 3))]  # the wished day is taken
    offered = free_times(cal, soon, 60, now=now, busy=full, starts=starts)
    assert offered[0] == dt.datetime(2026, 12, 3, 12)
    assert free_times(cal, soon, 60, now=now, busy=full, starts=starts,
                      last_day=dt.date(2026, 12, 2)) == []  # fmt: skip


def test_an_offered_time_is_rechecked_from_when_it_was_offered_never_into_the_past() -> None:
    """19:00 offered at 17:59 (the soonest: an hour ahead) and picked at 18:01 is still free;
    a button tapped two days later lets no time already past through."""
    cal = WorkCalendar.from_settings(
        {"time_zone": "Europe/Moscow", "working_hours": {"tue": ["09:00", "21:00"]}}
    )
    offered_at = dt.datetime(2026, 12, 1, 17, 59)  # a Tuesday
    picked = dt.datetime(2026, 12, 1, 19, 0)
    when = When(day=picked.date(), at=picked.time())
    now = offered_at + dt.timedelta(minutes=2)
    assert picked not in free_times(cal, when, 60, now=now, step=60)  # the lead from the answer
    since = offered_since(now, offered_at.isoformat())
    assert since == offered_at and picked in free_times(cal, when, 60, now=since, step=60)
    assert offered_since(now, None) == now and offered_since(now, "not a time") == now
    two_days = picked + dt.timedelta(days=2)
    assert offered_since(two_days, offered_at.isoformat()) == two_days - dt.timedelta(hours=1)
    assert picked not in free_times(cal, when, 60, now=offered_since(two_days, str(offered_at)),
                                    step=60)  # fmt: skip
