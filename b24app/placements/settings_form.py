"""The settings page's flat HTML form ↔ the nested settings document and campaign costs.

The form is a whole document (every field is shown), so an unticked checkbox means ``False``.
Values go to :func:`b24app.settings.save_settings` mostly as typed strings: its schema does the
validation and names the errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from decimal import InvalidOperation
from typing import Any

from b24app import i18n
from b24app import templating
from b24app.appointments.config import form_to_changes as appointment_form_to_changes
from b24app.appointments.config import settings_to_form as appointment_settings_to_form
from b24app.assistant import settings_form as assistant_form
from b24app.consent.config import form_to_changes as consent_form_to_changes
from b24app.consent.config import settings_to_form as consent_settings_to_form
from b24app.settings import MAX_AI_RULES
from b24app.settings import MAX_PATTERN_LENGTH
from b24app.settings import WEEKDAYS

POLICIES = ("first_reply", "confirmation", "callback")
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
MAX_COST_LINES = 500


@dataclass(frozen=True)
class CostLine:
    utm_campaign: str
    month: str
    cost: Decimal


def _lines(value: Any) -> list[str]:
    return [line.strip() for line in str(value or "").splitlines() if line.strip()]


def _checked(form: dict[str, Any], name: str) -> bool:
    return str(form.get(name, "")).lower() in {"on", "1", "true", "y", "yes"}


def _number(value: Any) -> Any:
    text = str(value or "").strip().replace(",", ".")
    return text if text else None


def form_to_changes(form: dict[str, Any]) -> dict[str, Any]:
    """The settings document the form describes (validated later by ``save_settings``)."""
    hours: dict[str, list[str] | None] = {}
    for day in WEEKDAYS:
        span = str(form.get(f"wh_{day}", "")).strip()
        hours[day] = [part.strip() for part in span.split("-", 1)] if span else None
    sla: dict[str, Any] = {
        "create_task": _checked(form, "sla_create_task"),
        "timeline_comment": _checked(form, "sla_timeline_comment"),
    }
    for policy in POLICIES:
        sla[policy] = {
            "enabled": _checked(form, f"sla_{policy}_enabled"),
            "minutes": _number(form.get(f"sla_{policy}_minutes")),
            "escalate_minutes": _number(form.get(f"sla_{policy}_escalate")),
            "working_time": _checked(form, f"sla_{policy}_working_time"),
        }
    owner = str(form.get("owner_user_id", "")).strip()
    country = str(form.get("country", "")).strip().upper()
    from b24app.placements import deal_stages_form

    assistant = assistant_form.form_to_changes(form)
    consent = consent_form_to_changes(form)
    return {
        **deal_stages_form.form_to_changes(form),
        **({"consent": consent} if consent else {}),
        **({"assistant": assistant} if assistant is not None else {}),
        "time_zone": str(form.get("time_zone", "")).strip(),
        "owner_user_id": owner or None,
        "working_hours": hours,
        "holidays": {
            "country": country or None,
            "extra_days_off": _lines(form.get("days_off")),
            "extra_workdays": _lines(form.get("workdays")),
        },
        "sla": sla,
        "ai_rules": {
            "source_ids": _lines(form.get("ai_sources")),
            "utm_sources": _lines(form.get("ai_utm")),
            "markers": _lines(form.get("ai_markers")),
        },
        "reminders": {
            "business_name": str(form.get("business_name", "")).strip(),
            "offsets": [
                part.strip() for part in str(form.get("offsets", "")).split(",") if part.strip()
            ],
            "templates": {
                "default": {
                    "ru": str(form.get("tpl_ru", "")).strip(),
                    "en": str(form.get("tpl_en", "")).strip(),
                }
            },
        },
        "targets": {
            "no_show_max_pct": _number(form.get("target_no_show")),
            "conversion_min_pct": _number(form.get("target_conversion")),
            "first_reply_max_min": _number(form.get("target_reply")),
        },
        "appointments": appointment_form_to_changes(form),
        "reports": {
            "enabled": _checked(form, "reports_enabled"),
            "daily_at": str(form.get("daily_at", "")).strip(),
            "weekly_day": str(form.get("weekly_day", "")).strip(),
            "weekly_at": str(form.get("weekly_at", "")).strip(),
        },
    }


def parse_costs(text: Any) -> tuple[list[CostLine], list[str]]:
    """``campaign;YYYY-MM;amount`` lines → cost lines, and the errors by line number."""
    costs: dict[tuple[str, str], CostLine] = {}
    errors: list[str] = []
    lines = _lines(text)
    if len(lines) > MAX_COST_LINES:
        return [], [f"at most {MAX_COST_LINES} lines"]
    for number, line in enumerate(lines, start=1):
        parts = [p.strip() for p in line.split(";")]
        if len(parts) != 3:
            errors.append(f"line {number}: expected campaign;YYYY-MM;amount")
            continue
        campaign, month, amount = parts
        if not campaign or len(campaign) > 255:
            errors.append(f"line {number}: campaign name is required (up to 255 characters)")
            continue
        if not _MONTH.match(month):
            errors.append(f"line {number}: month must be YYYY-MM")
            continue
        try:
            cost = Decimal(amount.replace(" ", "").replace("\u00a0", "").replace(",", "."))
        except InvalidOperation:
            errors.append(f"line {number}: amount is not a number")
            continue
        if not cost.is_finite() or cost < 0 or cost >= Decimal(10**12):
            errors.append(f"line {number}: amount must be between 0 and 10^12")
            continue
        costs[(campaign, month)] = CostLine(campaign, month, cost.quantize(Decimal("0.01")))
    return list(costs.values()), errors


def costs_to_text(lines: list[CostLine]) -> str:
    return "\n".join(f"{c.utm_campaign};{c.month};{c.cost}" for c in lines)


def flatten_errors(messages: Any, prefix: str = "") -> list[str]:
    """marshmallow's nested messages as ``path: message`` lines."""
    if isinstance(messages, dict):
        out: list[str] = []
        for key, value in messages.items():
            out.extend(flatten_errors(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(messages, list):
        out = []
        for item in messages:
            out.extend(flatten_errors(item, prefix))
        return out
    return [f"{prefix}: {messages}" if prefix else str(messages)]


def explain(errors: list[str], lang: str) -> list[str]:
    """A plain-language line (``lang``) in front of template and AI-rule errors."""
    out: list[str] = []
    if any(e.startswith("reminders.templates") for e in errors):
        names = ", ".join("{" + p + "}" for p in sorted(templating.PLACEHOLDERS))
        out.append(i18n.translate(lang, "settings.template_invalid", placeholders=names))
    if any(e.startswith("ai_rules") for e in errors):
        out.append(
            i18n.translate(
                lang,
                "settings.ai_rules_invalid",
                count=MAX_AI_RULES,
                length=MAX_PATTERN_LENGTH,
            )
        )
    return out


def settings_to_form(settings: dict[str, Any]) -> dict[str, Any]:
    """Effective settings → the values the form shows."""
    values: dict[str, Any] = {
        "time_zone": settings["time_zone"],
        "owner_user_id": settings.get("owner_user_id") or "",
        "country": settings["holidays"].get("country") or "",
        "days_off": "\n".join(settings["holidays"].get("extra_days_off") or []),
        "workdays": "\n".join(settings["holidays"].get("extra_workdays") or []),
        "sla_create_task": settings["sla"].get("create_task"),
        "sla_timeline_comment": settings["sla"].get("timeline_comment"),
        "ai_sources": "\n".join(settings["ai_rules"].get("source_ids") or []),
        "ai_utm": "\n".join(settings["ai_rules"].get("utm_sources") or []),
        "ai_markers": "\n".join(settings["ai_rules"].get("markers") or []),
        "business_name": settings["reminders"].get("business_name") or "",
        "offsets": ", ".join(settings["reminders"].get("offsets") or []),
        "tpl_ru": settings["reminders"]["templates"].get("default", {}).get("ru", ""),
        "tpl_en": settings["reminders"]["templates"].get("default", {}).get("en", ""),
        "target_no_show": settings["targets"]["no_show_max_pct"],
        "target_conversion": settings["targets"]["conversion_min_pct"],
        "target_reply": settings["targets"]["first_reply_max_min"],
        "reports_enabled": settings["reports"]["enabled"],
        "daily_at": settings["reports"]["daily_at"],
        "weekly_day": settings["reports"]["weekly_day"],
        "weekly_at": settings["reports"]["weekly_at"],
        **appointment_settings_to_form(settings),
        **consent_settings_to_form(settings),
    }
    values.update(assistant_form.settings_to_form(settings))
    for day in WEEKDAYS:
        span = settings["working_hours"].get(day)
        values[f"wh_{day}"] = f"{span[0]}-{span[1]}" if span else ""
    for policy in POLICIES:
        rule = settings["sla"][policy]
        values[f"sla_{policy}_enabled"] = rule.get("enabled")
        values[f"sla_{policy}_minutes"] = rule.get("minutes")
        values[f"sla_{policy}_escalate"] = rule.get("escalate_minutes")
        values[f"sla_{policy}_working_time"] = rule.get("working_time")
    return values
