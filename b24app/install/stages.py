"""Our lifecycle stages as the portal's CRM shows them: the lead status or deal stage we create
when the portal has none, the names that make an existing one count as ours, and how to read a
status' semantics. Shared by the lead side (:mod:`b24app.install.registration`) and the deal
side (:mod:`b24app.install.deal_registration`) of the registration."""

from __future__ import annotations

from typing import Any

# Our lifecycle stages, the status we create when the portal has none, and the names that
# make an existing status count as ours (admins often created "Пришёл" themselves).
STAGES: dict[str, dict[str, Any]] = {
    "qualified": {
        "status_id": "B24APP_QUALIFIED",
        "name": {"ru": "Квалифицирован", "en": "Qualified"},
        "aliases": {"квалифицирован", "квалифицирована", "qualified", "квалификация"},
    },
    "confirmed": {
        "status_id": "B24APP_CONFIRMED",
        "name": {"ru": "Запись подтверждена", "en": "Booking confirmed"},
        "aliases": {
            "запись подтверждена",
            "подтверждена",
            "подтвержден",
            "confirmed",
            "booking confirmed",
        },
    },
    "came": {
        "status_id": "B24APP_CAME",
        "name": {"ru": "Пришёл", "en": "Came"},
        "aliases": {"пришёл", "пришел", "пришла", "came", "visited", "визит состоялся"},
    },
    "no_show": {
        "status_id": "B24APP_NO_SHOW",
        "name": {"ru": "Не пришёл", "en": "No-show"},
        "aliases": {"не пришёл", "не пришел", "не пришла", "no-show", "no show", "noshow"},
    },
}


def semantics(item: dict[str, Any]) -> str:
    """A lead status' or deal stage's semantics: ``P`` (in progress), ``S`` (success) or
    ``F`` (failure); Bitrix24 answers it as ``SEMANTICS`` or ``EXTRA.SEMANTICS``."""
    extra = item.get("EXTRA") or {}
    sem = item.get("SEMANTICS") or (extra.get("SEMANTICS") if isinstance(extra, dict) else None)
    return {"success": "S", "failure": "F", "process": "P"}.get(str(sem), str(sem or "P"))
