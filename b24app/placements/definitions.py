"""Widgets bound at install with ``placement.bind`` (HANDLER = ``{PUBLIC_URL}/app/<path>``)."""

from __future__ import annotations

from typing import Any

PLACEMENTS: list[dict[str, Any]] = [
    {
        "PLACEMENT": "CRM_ANALYTICS_MENU",
        "path": "dashboard",
        "TITLE": "KPI салона",
        "LANG_ALL": {
            "ru": {"TITLE": "KPI: заявки и записи"},
            "en": {"TITLE": "KPI: leads and bookings"},
        },
    },
    {
        "PLACEMENT": "CRM_LEAD_DETAIL_TAB",
        "path": "lead-tab",
        "TITLE": "SLA и KPI",
        "LANG_ALL": {"ru": {"TITLE": "SLA и KPI"}, "en": {"TITLE": "SLA & KPI"}},
    },
    {
        "PLACEMENT": "CRM_DEAL_DETAIL_TAB",
        "path": "deal-tab",
        "TITLE": "SLA и KPI",
        "LANG_ALL": {"ru": {"TITLE": "SLA и KPI"}, "en": {"TITLE": "SLA & KPI"}},
    },
]
