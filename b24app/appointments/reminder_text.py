"""The text of an appointment reminder: its offsets (``"24h"``, ``"2h"``, ``"30m"``) and the
portal's template rendered for the client.

The template is ``settings["reminders"]["templates"][template][lang]`` with ``{client_name}``,
``{service}``, ``{date}``, ``{time}`` (portal time zone) and ``{business_name}``; a stored
template that no longer renders falls back to the default text, with one warning per text.
Delivery is :mod:`b24app.appointments.remind`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from b24app import templating
from b24app.settings import DEFAULTS

log = logging.getLogger(__name__)

_OFFSET = re.compile(r"^(\d{1,4})([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_offset(offset: str) -> dt.timedelta:
    """``"24h"`` → 24 hours, ``"30m"`` → 30 minutes, ``"1d"`` → 1 day."""
    match = _OFFSET.match(offset.strip())
    if not match:
        raise ValueError(f"bad reminder offset: {offset!r}")
    return dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def render_reminder(
    settings: dict[str, Any],
    *,
    template: str,
    lang: str,
    client_name: str,
    service: str,
    appointment_at: dt.datetime,
    rewrite: Callable[[str, str], str] | None = None,
    template_text: str | None = None,
) -> str:
    """The reminder text in ``lang`` from the portal's template (default template as fallback;
    ``template_text`` instead of the portal's template when given). Without a business name,
    the sentence naming it is left out (no «в 11:24.  ждёт вас!»).

    ``rewrite(template, lang)`` may replace the template before rendering (the optional
    model rephrasing, :mod:`b24app.reach.rephrase`, which answers the template on any doubt).
    """
    templates = (settings.get("reminders") or {}).get("templates") or {}
    chosen = templates.get(template) or templates.get("default") or {}
    text = template_text or chosen.get(lang) or chosen.get("ru") or chosen.get("en") or ""
    if rewrite is not None and text:
        text = rewrite(text, lang)
    business = (settings.get("reminders") or {}).get("business_name", "")
    if not str(business).strip():
        text = without_placeholder_sentence(text, "business_name")
    local = appointment_at.replace(tzinfo=dt.UTC).astimezone(
        ZoneInfo(settings.get("time_zone") or "Europe/Moscow")
    )
    values = {
        "client_name": client_name,
        "service": service,
        "date": local.strftime("%d.%m.%Y"),
        "time": local.strftime("%H:%M"),
        "business_name": (settings.get("reminders") or {}).get("business_name", ""),
    }
    try:
        return templating.render(text, values).strip()
    except templating.TemplateError as exc:
        # Saved before templates were validated: the default text, and one warning per text.
        fallback = DEFAULTS["reminders"]["templates"]["default"]
        key = hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()
        if key not in _WARNED:
            _WARNED.add(key)
            log.warning(
                "reminder template %r (%s) is invalid, the default text is used: %s",
                template,
                lang,
                "; ".join(exc.problems),
            )
        default = fallback.get(lang) or fallback["ru"]
        if not str(values["business_name"]).strip():
            default = without_placeholder_sentence(default, "business_name")
        return templating.render(default, values).strip()


_WARNED: set[str] = set()
_SENTENCES = re.compile(r"[^.!?…]*[.!?…]+\s*|[^.!?…]+$")


def without_placeholder_sentence(text: str, name: str) -> str:
    """``text`` without the sentences that use ``{name}`` (its value is empty); ``text`` as
    it is when that would leave no other placeholder (one long sentence)."""
    marker = "{" + name + "}"
    if marker not in text:
        return text
    kept = "".join(part for part in _SENTENCES.findall(text) if marker not in part).strip()
    return kept if templating.placeholders(kept) else text
