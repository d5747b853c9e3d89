"""Bitrix24 list filters (``>=DATE_CREATE``, ``@ID``, ``!STATUS_ID``…), ordering and paging.

One engine serves every list method. Rows are plain dicts; values are compared as numbers
when both sides look numeric, as datetimes when both look like dates, else as strings —
which is how the portal's SQL ends up behaving for the string-typed REST values.

Paging follows EN:``list-methods-pecularities.md``: 50 rows, ``total`` and ``next``.
With ``start=-1`` the emulator returns **no** ``total`` and no ``next`` (the caller pages by
``>ID`` and stops at a short page); the docs only say ``-1`` skips the count.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from datetime import tzinfo
from typing import Any

PAGE = 50
# Longest first so that ``>=`` wins over ``>``.
_OPS = ("!@", "!=%", "!%=", "!=", "!%", "=%", "%=", ">=", "<=", ">", "<", "@", "%", "=", "!")
_NUM = re.compile(r"^-?\d+(\.\d+)?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2})?)?")


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: Any


def parse_filter(
    raw: Mapping[str, Any] | None, rename: Callable[[str], str] | None = None
) -> list[Condition]:
    """``{">=ID": 5, "STATUS_ID": "NEW"}`` → conditions; ``rename`` maps field names."""
    out: list[Condition] = []
    if not isinstance(raw, Mapping):
        return out
    for key, value in raw.items():
        key = str(key)
        op = ""
        for candidate in _OPS:
            if key.startswith(candidate):
                op = candidate
                break
        name = key[len(op) :]
        if rename is not None:
            name = rename(name)
        out.append(Condition(name, op or "=", value))
    return out


def _as_datetime(value: str, tz: tzinfo | None) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.replace(" ", "T", 1))
    except ValueError:
        return None
    if parsed.tzinfo is None and tz is not None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed


def _pair(a: Any, b: Any, tz: tzinfo | None) -> tuple[Any, Any] | None:
    """Both sides made comparable, or None when one side is empty."""
    if a is None or a == "" or b is None:
        return None
    if isinstance(a, bool) or isinstance(b, bool):
        return str(a), str(b)
    sa, sb = str(a), str(b)
    if (isinstance(a, int | float) or _NUM.match(sa)) and (
        isinstance(b, int | float) or _NUM.match(sb)
    ):
        return float(sa), float(sb)
    if _DATE.match(sa) and _DATE.match(sb):
        da, db = _as_datetime(sa, tz), _as_datetime(sb, tz)
        if da is not None and db is not None:
            try:
                da < db  # noqa: B015 - naive/aware mix raises here
                return da, db
            except TypeError:
                pass
    return sa, sb


def _eq(a: Any, b: Any, tz: tzinfo | None) -> bool:
    if isinstance(a, list):
        return any(_eq(x, b, tz) for x in a)
    if a is None or a == "":
        return b is None or b == "" or b is False
    pair = _pair(a, b, tz)
    return pair is not None and pair[0] == pair[1]


def matches(row: Mapping[str, Any], conds: Sequence[Condition], tz: tzinfo | None = None) -> bool:
    for cond in conds:
        value = row.get(cond.field)
        op, want = cond.op, cond.value
        if op in ("@", "!@"):
            items = want if isinstance(want, list | tuple) else [want]
            hit = any(_eq(value, w, tz) for w in items)
            if hit != (op == "@"):
                return False
        elif op in ("=", "!", "!="):
            if isinstance(want, list | tuple):
                hit = any(_eq(value, w, tz) for w in want)
            else:
                hit = _eq(value, want, tz)
            if hit != (op == "="):
                return False
        elif op in ("%", "=%", "%=", "!%", "!=%", "!%="):
            text = "" if value is None else str(value).lower()
            needle = str(want).lower()
            if op in ("%", "!%"):
                hit = needle in text
            elif op in ("=%", "!=%"):
                hit = text.startswith(needle.rstrip("%"))
            else:
                hit = text.endswith(needle.lstrip("%"))
            if hit != (not op.startswith("!")):
                return False
        else:
            pair = _pair(value, want, tz)
            if pair is None:
                return False
            a, b = pair
            if op == ">" and not a > b:
                return False
            if op == ">=" and not a >= b:
                return False
            if op == "<" and not a < b:
                return False
            if op == "<=" and not a <= b:
                return False
    return True


def parse_order(raw: Any, rename: Callable[[str], str] | None = None) -> list[tuple[str, bool]]:
    """``{"ID": "DESC"}`` → ``[("ID", True)]`` (True = descending)."""
    out: list[tuple[str, bool]] = []
    if isinstance(raw, Mapping):
        for key, direction in raw.items():
            name = rename(str(key)) if rename else str(key)
            out.append((name, str(direction).upper() == "DESC"))
    return out


def sort_key(value: Any) -> tuple[int, Any]:
    if value is None or value == "":
        return (0, 0)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (1, float(value))
    text = str(value)
    if _NUM.match(text):
        return (1, float(text))
    return (2, text)


@dataclass
class Page:
    rows: list[dict[str, Any]]
    total: int | None
    next: int | None


def parse_start(raw: Any) -> int:
    try:
        start = int(str(raw)) if raw not in (None, "") else 0
    except ValueError:
        start = 0
    return -1 if start < 0 else start


def select_page(
    ids: Sequence[int],
    get: Callable[[int], dict[str, Any] | None],
    conds: Sequence[Condition],
    order: Sequence[tuple[str, bool]],
    start: int,
    *,
    id_field: str = "ID",
    tz: tzinfo | None = None,
) -> Page:
    """Filter + order + one page over rows kept in ascending-``ids`` order.

    When the order is by the id (or absent) the scan starts at the ``>ID``/``>=ID`` bound
    found by bisection and, with ``start=-1``, stops after one page — so exporting 20 000
    leads by ``>ID`` costs O(page) per call.
    """
    by_id = not order or (len(order) == 1 and order[0][0] == id_field)
    desc = bool(order and order[0][1])
    if by_id:
        lo, hi = 0, len(ids)
        for cond in conds:
            if cond.field != id_field or not _NUM.match(str(cond.value)):
                continue
            bound = int(float(str(cond.value)))
            if cond.op == ">":
                lo = max(lo, bisect.bisect_right(ids, bound))
            elif cond.op == ">=":
                lo = max(lo, bisect.bisect_left(ids, bound))
            elif cond.op == "<":
                hi = min(hi, bisect.bisect_left(ids, bound))
            elif cond.op == "<=":
                hi = min(hi, bisect.bisect_right(ids, bound))
        span: Iterable[int] = (
            (ids[i] for i in range(hi - 1, lo - 1, -1)) if desc else (ids[i] for i in range(lo, hi))
        )
        rows: list[dict[str, Any]] = []
        total = 0
        offset = max(start, 0)
        for row_id in span:
            row = get(row_id)
            if row is None or not matches(row, conds, tz):
                continue
            if start == -1:
                rows.append(row)
                if len(rows) >= PAGE:
                    break
                continue
            if offset <= total < offset + PAGE:
                rows.append(row)
            total += 1
        if start == -1:
            return Page(rows, None, None)
        nxt = offset + PAGE if total > offset + PAGE else None
        return Page(rows, total, nxt)
    matched = [r for r in (get(i) for i in ids) if r is not None and matches(r, conds, tz)]
    for name, is_desc in reversed(order):
        matched.sort(key=lambda r, n=name: sort_key(r.get(n)), reverse=is_desc)  # type: ignore[misc]
    if start == -1:
        return Page(matched[:PAGE], None, None)
    total = len(matched)
    nxt = start + PAGE if total > start + PAGE else None
    return Page(matched[start : start + PAGE], total, nxt)
