"""Quiet hours: no client message between ``from`` and ``to`` (default 21:00–09:00) in the
client's local time — the booking's own time zone (``datePeriod.timezone``), else the
portal's. A reminder due inside moves to the nearer of the evening before (a minute before
the quiet hours begin) and the morning (when they end), of those still ahead and before the
visit; when neither is, it is not sent. Plain functions over times (naive UTC)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

DEFAULT_FROM, DEFAULT_TO = "21:00", "09:00"
_MARGIN = dt.timedelta(minutes=1)


def _clock(value: str, default: str) -> dt.time:
    try:
        return dt.time.fromisoformat(value or default)
    except ValueError:
        return dt.time.fromisoformat(default)


def zone(name: str | None, fallback: str | None = None) -> ZoneInfo:
    """The first valid of ``name`` and ``fallback``; Moscow if neither."""
    for candidate in (name, fallback):
        try:
            if candidate:
                return ZoneInfo(candidate)
        except (ValueError, KeyError):
            continue
    return ZoneInfo("Europe/Moscow")


def is_quiet(local: dt.time, start: dt.time, end: dt.time) -> bool:
    if start == end:
        return False  # no quiet hours
    if start > end:  # across midnight: 21:00–09:00
        return local >= start or local < end
    return start <= local < end


def out_of_quiet(
    due: dt.datetime, starts_at: dt.datetime, now: dt.datetime, tz: ZoneInfo,
    quiet_from: str = DEFAULT_FROM, quiet_to: str = DEFAULT_TO,
) -> dt.datetime | None:  # fmt: skip
    """``due`` itself when outside the quiet hours, else the moved time, or None (no time
    left: ahead of ``now``, before ``starts_at``)."""
    start, end = _clock(quiet_from, DEFAULT_FROM), _clock(quiet_to, DEFAULT_TO)
    local = due.replace(tzinfo=dt.UTC).astimezone(tz)
    if not is_quiet(local.timetz().replace(tzinfo=None), start, end):
        return due
    # The quiet period holding ``due``: it began on the evening of ``began`` (local date).
    began = local.date() if local.time() >= start else local.date() - dt.timedelta(days=1)
    if start < end:
        began = local.date()
    evening = dt.datetime.combine(began, start, tz) - _MARGIN
    morning_day = began + dt.timedelta(days=1) if start > end else began
    morning = dt.datetime.combine(morning_day, end, tz)
    candidates = [t.astimezone(dt.UTC).replace(tzinfo=None) for t in (evening, morning)]
    valid = [t for t in candidates if now <= t < starts_at]
    if not valid:
        return None
    return min(valid, key=lambda t: abs(t - due))
