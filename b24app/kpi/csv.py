"""Every dashboard table as CSV: the same rows the page shows, raw numbers, localized headers.

Semicolon-separated with a UTF-8 BOM, decimal comma for Russian (what Excel expects in a
Russian locale), decimal point for English. Text cells that a spreadsheet would run as a
formula (``=``, ``+``, ``-``, ``@`` — campaign names come from UTM tags anyone can set) are
prefixed with an apostrophe.

Sources, channels and employees are named as the page names them (the portal's own names
from :mod:`b24app.directory`, the translated channel names); sources and employees keep
their code in the next column, for joining with other exports.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from b24app.directory import Names
from b24app.i18n import translate
from b24app.kpi.metrics import Counts
from b24app.kpi.metrics import Dashboard
from b24app.kpi.metrics import iter_dimension

# A column: header key, header suffix, the record field or a function of the record.
Column = tuple[str, str, "str | Callable[[dict[str, Any]], Any]"]

TABLES = ("summary", "trend", "sources", "campaigns", "channels", "employees", "ai")

COUNT_COLUMNS = (
    ("leads", "kpi.leads"),
    ("bookings", "kpi.bookings"),
    ("conversion_pct", "kpi.conversion"),
    ("confirmed", "kpi.confirmed"),
    ("confirmed_pct", "kpi.confirmed_rate"),
    ("no_shows", "kpi.no_show"),
    ("no_show_pct", "kpi.no_show"),
    ("sla_pct", "kpi.sla"),
    ("paid_visits", "kpi.paid_visits"),
    ("revenue", "kpi.revenue"),
    ("aov", "kpi.aov"),
)


def _cell(value: Any, lang: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float | Decimal):
        text = str(value)
        return text.replace(".", ",") if lang == "ru" else text
    text = str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def _header(lang: str, key: str, suffix: str = "") -> str:
    return translate(lang, key) + suffix


def _count_headers(lang: str) -> list[str]:
    out = []
    for name, key in COUNT_COLUMNS:
        out.append(_header(lang, key, ", %" if name.endswith("_pct") else ""))
    return out


def _count_cells(counts: Counts) -> list[Any]:
    data = counts.as_dict()
    return [data[name] for name, _ in COUNT_COLUMNS]


def label(dimension: str, key: Any, lang: str, names: Names) -> str:
    """A row's name as the page shows it (the template's ``dim_label``)."""
    if dimension == "channel":
        return translate(lang, f"channel.{key}")
    if dimension == "manager":
        return names.user(None if key is None else int(key))
    if key is None or key == "":
        return translate(lang, "group.none")
    if dimension == "source":
        return names.source(str(key))
    return str(key)


def table(
    dashboard: Dashboard, name: str, lang: str, names: Names | None = None
) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows of one table (``name`` in :data:`TABLES`); ``names``: the portal's
    names (none known: codes, as a portal whose directory is not loaded yet shows them)."""
    known = names or Names(lang)
    builders: dict[str, Callable[[Dashboard, str], tuple[list[str], list[list[Any]]]]] = {
        "summary": _summary,
        "trend": _trend,
        "sources": lambda d, lg: _dimension(d, lg, "source", "col.source", known),
        "campaigns": lambda d, lg: _campaigns(d, lg, known),
        "channels": lambda d, lg: _dimension(d, lg, "channel", "col.channel", known),
        "employees": lambda d, lg: _employees(d, lg, known),
        "ai": _ai,
    }
    return builders[name](dashboard, lang)


def _summary(d: Dashboard, lang: str) -> tuple[list[str], list[list[Any]]]:
    headers = [
        _header(lang, "period.from"),
        _header(lang, "period.to"),
        *_count_headers(lang),
        _header(lang, "kpi.reply_median", ", s"),
        _header(lang, "kpi.reply_p90", ", s"),
    ]
    row = [
        d.period.first_day.isoformat(),
        d.period.last_day.isoformat(),
        *_count_cells(d.total),
        d.replies.median_s,
        d.replies.p90_s,
    ]
    return headers, [row]


_TREND = (
    ("col.date", "", "label"),
    ("kpi.leads", "", "leads"),
    ("kpi.bookings", "", "bookings"),
    ("kpi.confirmed", "", "confirmed"),
    ("kpi.no_show", "", "no_shows"),
    ("kpi.conversion", ", %", "conversion_pct"),
    ("kpi.no_show", ", %", "no_show_pct"),
)


def _trend(d: Dashboard, lang: str) -> tuple[list[str], list[list[Any]]]:
    return _table(lang, _TREND, d.trend)


def _dimension(
    d: Dashboard, lang: str, dimension: str, label_key: str, names: Names
) -> tuple[list[str], list[list[Any]]]:
    coded = dimension == "source"
    headers = [
        _header(lang, label_key),
        *([_header(lang, "col.code")] if coded else []),
        *_count_headers(lang),
    ]
    rows = [
        [label(dimension, key, lang, names), *([key] if coded else []), *_count_cells(counts)]
        for key, counts in iter_dimension(d, dimension)
    ]
    return headers, rows


def _ai(d: Dashboard, lang: str) -> tuple[list[str], list[list[Any]]]:
    headers = [_header(lang, "col.group"), *_count_headers(lang)]
    rows = []
    for flag, key in ((True, "group.ai"), (False, "group.other")):
        rows.append([translate(lang, key), *_count_cells(d.by["ai"].get(flag, Counts()))])
    return headers, rows


_CAMPAIGN = (
    ("kpi.leads", "", "leads"),
    ("kpi.bookings", "", "bookings"),
    ("kpi.conversion", ", %", "conversion_pct"),
    ("kpi.revenue", "", "revenue"),
    ("col.cost", "", "cost"),
    ("col.cpl", "", "cpl"),
    ("col.roi", ", %", "roi_pct"),
)

_EMPLOYEE = (
    ("col.user_id", "", "manager"),
    ("kpi.leads", "", "leads"),
    ("kpi.reply_median", ", s", "reply_median_s"),
    ("kpi.reply_p90", ", s", "reply_p90_s"),
    ("kpi.sla", ", %", "sla_pct"),
    ("kpi.breaches", "", "breaches"),
    ("kpi.escalations", "", "escalations"),
    ("kpi.bookings", "", "bookings"),
    ("kpi.conversion", ", %", "conversion_pct"),
    ("kpi.no_show", ", %", "no_show_pct"),
    ("kpi.paid_visits", "", "paid_visits"),
    ("kpi.revenue", "", "revenue"),
    ("kpi.aov", "", "aov"),
)


def _campaigns(d: Dashboard, lang: str, names: Names) -> tuple[list[str], list[list[Any]]]:
    def name(r: dict[str, Any]) -> str:
        return label("campaign", r["campaign"], lang, names)

    return _table(lang, (("col.campaign", "", name), *_CAMPAIGN), d.marketing())


def _employees(d: Dashboard, lang: str, names: Names) -> tuple[list[str], list[list[Any]]]:
    def name(r: dict[str, Any]) -> str:
        return label("manager", r["manager"], lang, names)

    return _table(lang, (("col.manager", "", name), *_EMPLOYEE), d.employees())


def _table(
    lang: str, columns: tuple[Column, ...], records: Iterable[dict[str, Any]]
) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows of a table whose columns each name a header and a field (or a function)."""
    headers = [_header(lang, key, suffix) for key, suffix, _ in columns]
    rows = [[v(r) if callable(v) else r[v] for _, _, v in columns] for r in records]
    return headers, rows


def to_csv(headers: list[str], rows: list[list[Any]], lang: str) -> str:
    """The CSV text (with a BOM) of one table."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow([_cell(h, lang) for h in headers])
    for row in rows:
        writer.writerow([_cell(v, lang) for v in row])
    return out.getvalue()
