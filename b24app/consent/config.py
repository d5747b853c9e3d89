"""The ``consent`` section of the portal settings: defaults and validation.

* ``text`` — the advertising consent as the client is shown it (per language); recorded with
  every consent given in the CRM tab, so the record proves what was agreed to.
* ``reinvite`` — one re-invitation ``after_days`` after a no-show (advertising: only to a
  client with a recorded consent, b24app/appointments/reinvite.py); off by default.
"""

from __future__ import annotations

from typing import Any

from marshmallow import fields
from marshmallow import RAISE
from marshmallow import Schema
from marshmallow import validate

AFTER_DAYS = (1, 365)

DEFAULTS: dict[str, Any] = {
    "text": {
        "ru": "Согласен(на) получать сообщения о свободном времени для записи и акциях "
        "в мессенджерах и по SMS. Отказаться можно в любой момент, написав «СТОП».",
        "en": "I agree to receive messages about free times and offers by messenger and SMS. "
        "I can stop them at any time by writing STOP.",
    },
    "reinvite": {"enabled": False, "after_days": 14},
}


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class _Text(_Strict):
    ru = fields.String(validate=validate.Length(min=1, max=1000))
    en = fields.String(validate=validate.Length(min=1, max=1000))


class _Reinvite(_Strict):
    enabled = fields.Boolean()
    after_days = fields.Integer(validate=validate.Range(*AFTER_DAYS))


class ConsentSchema(_Strict):
    text = fields.Nested(_Text)
    reinvite = fields.Nested(_Reinvite)


def form_to_changes(form: dict[str, Any]) -> dict[str, Any]:
    """The settings page's ``consent_*`` fields → the ``consent`` section (validated later);
    ``{}`` (no change) when the form has none of them."""
    if not any(str(key).startswith("consent_") for key in form):
        return {}
    days = str(form.get("consent_reinvite_days") or "").strip()
    reinvite: dict[str, Any] = {
        "enabled": str(form.get("consent_reinvite") or "").lower() in ("on", "1", "true", "y"),
    }
    if days:  # blank: the days stored stay
        reinvite["after_days"] = days
    return {
        "text": {
            "ru": str(form.get("consent_text_ru") or "").strip(),
            "en": str(form.get("consent_text_en") or "").strip(),
        },
        "reinvite": reinvite,
    }


def settings_to_form(settings: dict[str, Any]) -> dict[str, Any]:
    section = settings["consent"]
    return {
        "consent_text_ru": section["text"].get("ru") or "",
        "consent_text_en": section["text"].get("en") or "",
        "consent_reinvite": bool(section["reinvite"].get("enabled")),
        "consent_reinvite_days": section["reinvite"].get("after_days") or "",
    }
