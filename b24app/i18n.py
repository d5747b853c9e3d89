"""Interface strings in Russian (first) and English, and number/time formatting per language.

The language comes from the ``LANG`` Bitrix24 sends with every frame: Russian for ``ru`` and
the CIS interface languages, English for everything else. A missing key falls back to
Russian, then to the key itself, so a page never crashes on a typo. The strings are gettext
catalogs (:mod:`b24app.i18n_catalog`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from b24app.i18n_catalog import load_compiled

LANGS = ("ru", "en")
RUSSIAN_UI = {"ru", "ua", "by", "kz"}
DASH = "—"

# The strings live in gettext catalogs, b24app/translations/<lang>/LC_MESSAGES/messages.po
# (edit those; ``python -m b24app.i18n_catalog compile`` then ``check``), loaded compiled.
STRINGS: dict[str, dict[str, str]] = load_compiled()


def lang_from(value: str | None) -> str:
    """``ru`` for Russian-speaking interfaces (and when unknown), ``en`` otherwise."""
    code = (value or "").strip().lower()[:2]
    if not code or code in RUSSIAN_UI:
        return "ru"
    return "en"


def translate(lang: str, key: str, **params: Any) -> str:
    """The string ``key`` in ``lang`` (Russian, then the key itself as fallbacks)."""
    text = STRINGS.get(lang, {}).get(key) or STRINGS["ru"].get(key) or key
    return text.format(**params) if params else text


def _group_digits(integer: str, sep: str) -> str:
    sign = "-" if integer.startswith("-") else ""
    digits = integer.lstrip("-")
    groups: list[str] = []
    while len(digits) > 3:
        groups.insert(0, digits[-3:])
        digits = digits[:-3]
    groups.insert(0, digits)
    return sign + sep.join(groups)


def fmt_number(value: float | int | Decimal | None, lang: str, decimals: int = 0) -> str:
    """``12 345,6`` (ru, narrow no-break space) / ``12,345.6`` (en); ``—`` for ``None``."""
    if value is None:
        return DASH
    text = f"{float(value):.{decimals}f}"
    integer, _, fraction = text.partition(".")
    if lang == "ru":
        out = _group_digits(integer, "\u202f")
        return out + ("," + fraction if fraction else "")
    out = _group_digits(integer, ",")
    return out + ("." + fraction if fraction else "")


def fmt_pct(value: float | Decimal | None, lang: str) -> str:
    """A percentage with one decimal, or ``—``."""
    if value is None:
        return DASH
    return fmt_number(value, lang, 1) + "\u00a0%"


def fmt_money(value: Decimal | float | None, lang: str, currency: str = "₽") -> str:
    """Whole currency units with the sign (₽ by default), or ``—``."""
    if value is None:
        return DASH
    return fmt_number(value, lang, 0) + "\u00a0" + currency


def fmt_duration(seconds: float | None, lang: str) -> str:
    """``2 мин 05 с`` / ``1 ч 10 мин`` / ``45 с``; ``—`` for ``None``."""
    if seconds is None:
        return DASH
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    h, m, s = translate(lang, "unit.h"), translate(lang, "unit.min"), translate(lang, "unit.s")
    if hours:
        return f"{hours}\u00a0{h} {minutes:02d}\u00a0{m}"
    if minutes:
        return f"{minutes}\u00a0{m} {secs:02d}\u00a0{s}"
    return f"{secs}\u00a0{s}"
