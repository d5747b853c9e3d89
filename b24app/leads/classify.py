"""Which leads are AI-leads, and which channel a lead came through. Pure functions.

AI-lead rules
=============

A lead is an **AI-lead** when it came through an AI assistant or chatbot channel. The rules
are per portal (``load_settings(session, portal_id)["ai_rules"]``, edited by the portal admin
on the settings page); a lead is an AI-lead as soon as **any** rule matches, checked in this
order, all comparisons case-insensitive:

1. ``source_ids`` — patterns for the lead's ``SOURCE_ID``, where ``*`` stands for any text.
   Open-line leads get the source ``<line id>|<TYPE>`` (``1|OPENLINE``, ``2|TELEGRAM``), so
   ``*|TELEGRAM`` matches the Telegram connector of every open line.
2. ``utm_sources`` — values of ``UTM_SOURCE`` (``utm_source=ai_bot`` on the bot's links).
3. ``markers`` — a text the bot or the form puts in ``SOURCE_DESCRIPTION``, ``COMMENTS`` or
   ``TITLE`` (found anywhere in them).

Defaults (``b24app.settings.DEFAULTS["ai_rules"]``), which work without any setup:

* source ids ``*|OPENLINE``, ``*|TELEGRAM``, ``*|TELEGRAMBOT``, ``*|WHATSAPP``,
  ``*|WHATSAPPBYTWILIO``, ``*|WHATSAPPBYEDNA``, ``*|INSTAGRAM``, ``*|FBINSTAGRAMDIRECT``,
  ``*|VK``, ``*|AVITO`` — every open line with a chat connector;
* UTM sources ``ai_bot``, ``ai-bot``, ``chatbot``, ``ai_assistant``, ``gpt``;
* markers ``#ai``, ``[AI]``, ``AI-lead``, ``AI-ассистент``, ``ИИ-ассистент``, ``чат-бот``.

The AI channel (``telegram``, ``whatsapp``, ``instagram``, ``vk``, ``avito``, ``openline``,
``website``, ``other`` — the options of the "Mark as AI-lead" robot) comes from the connector
part of the source id; a lead matched by UTM or marker only is ``other`` unless its source
names a connector.

Lead channel
============

Every lead (AI or not) also gets a **channel** that decides its SLA policy:
``chat`` (open-line sources ``N|TYPE``, chat connector names, or an ``imol|…`` IM contact),
``call`` (``CALL``, ``CALLBACK``, telephony sources), ``webform`` (``WEBFORM``, ``WEB``,
``STORE``), ``email`` (``EMAIL``), else ``other``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from b24app.leads.snapshot import LeadSnapshot

CHAT = "chat"
CALL = "call"
WEBFORM = "webform"
EMAIL = "email"
OTHER = "other"

# Connector TYPE (the part after "|" of an open-line source, or a bare source id) -> AI channel.
CONNECTOR_CHANNELS: dict[str, str] = {
    "TELEGRAM": "telegram",
    "TELEGRAMBOT": "telegram",
    "WHATSAPP": "whatsapp",
    "WHATSAPPBYTWILIO": "whatsapp",
    "WHATSAPPBYEDNA": "whatsapp",
    "WHATSAPPBYBITRIX24": "whatsapp",
    "INSTAGRAM": "instagram",
    "FBINSTAGRAM": "instagram",
    "FBINSTAGRAMDIRECT": "instagram",
    "VK": "vk",
    "VKGROUP": "vk",
    "AVITO": "avito",
    "OPENLINE": "openline",
    "LIVECHAT": "website",
    "FACEBOOK": "other",
    "VIBER": "other",
    "BITRIX24": "other",
}
# Human labels of the AI channels, for the lead field and the timeline comment.
CHANNEL_LABELS: dict[str, dict[str, str]] = {
    "telegram": {"ru": "Telegram", "en": "Telegram"},
    "whatsapp": {"ru": "WhatsApp", "en": "WhatsApp"},
    "instagram": {"ru": "Instagram", "en": "Instagram"},
    "vk": {"ru": "ВКонтакте", "en": "VK"},
    "avito": {"ru": "Авито", "en": "Avito"},
    "openline": {"ru": "Открытая линия", "en": "Open line"},
    "website": {"ru": "Чат на сайте", "en": "Website chat"},
    "phone_bot": {"ru": "Голосовой бот", "en": "Voice bot"},
    "other": {"ru": "Другой канал", "en": "Other"},
}
CALL_SOURCES = frozenset({"CALL", "CALLBACK", "TELEPHONY", "VOXIMPLANT", "PHONE"})
WEBFORM_SOURCES = frozenset({"WEBFORM", "WEB", "STORE", "WEBSITE"})
EMAIL_SOURCES = frozenset({"EMAIL", "E-MAIL", "MAIL"})
_OPEN_LINE = re.compile(r"^\d+\|([A-Z0-9_]+)$")


@dataclass(frozen=True)
class Classification:
    """The verdict on one lead: AI or not, its AI channel, and the rule that decided."""

    is_ai: bool
    channel: str  # an AI channel code (see CHANNEL_LABELS); "" when not an AI-lead
    reason: str


def _connector(source_id: str) -> str:
    """``TELEGRAM`` for ``2|TELEGRAM``; the id itself for a bare source id."""
    upper = source_id.strip().upper()
    match = _OPEN_LINE.match(upper)
    return match.group(1) if match else upper


def ai_channel_of(source_id: str) -> str:
    """The AI channel a source id names (``2|TELEGRAM`` → ``telegram``), else ``other``."""
    return CONNECTOR_CHANNELS.get(_connector(source_id), "other")


def channel_label(channel: str, lang: str) -> str:
    """``Telegram``, ``ВКонтакте`` / ``VK``…; an unknown code is shown as it is."""
    labels = CHANNEL_LABELS.get(channel)
    if labels is None:
        return channel
    return labels["ru"] if lang.startswith("ru") else labels["en"]


def pattern_matches(pattern: str, value: str) -> bool:
    """Case-insensitive match of a source-id pattern where ``*`` is any text (nothing else is
    special: ``|``, ``[``, ``.`` are literal).

    No regular expression (a ``.*`` regex backtracks exponentially on patterns such as
    ``*a*a*a*…b``): the literal parts between the stars are found left to right with
    ``str.find``, each from where the previous one ended — taking the leftmost occurrence of
    each part is always safe, so nothing is ever retried. Cost: one forward scan of the value
    per part.
    """
    parts = pattern.strip().casefold().split("*")
    text = value.strip().casefold()
    if len(parts) == 1:
        return text == parts[0]
    first, last = parts[0], parts[-1]
    if len(text) < len(first) + len(last) or not text.startswith(first):
        return False
    if not text.endswith(last):
        return False
    pos, end = len(first), len(text) - len(last)
    for part in parts[1:-1]:
        if not part:
            continue
        found = text.find(part, pos, end)
        if found < 0:
            return False
        pos = found + len(part)
    return True


def _strings(values: Any) -> list[str]:
    if not isinstance(values, Iterable) or isinstance(values, str | bytes):
        return []
    return [str(v) for v in values if str(v).strip()]


def classify(lead: LeadSnapshot, rules: Mapping[str, Any]) -> Classification:
    """Apply the portal's ``ai_rules`` to a lead (see the module docstring)."""
    for pattern in _strings(rules.get("source_ids")):
        if lead.source_id and pattern_matches(pattern, lead.source_id):
            return Classification(True, ai_channel_of(lead.source_id), f"source_id:{pattern}")
    utm = lead.utm_source.strip().casefold()
    if utm:
        for value in _strings(rules.get("utm_sources")):
            if utm == value.strip().casefold():
                return Classification(True, ai_channel_of(lead.source_id), f"utm_source:{value}")
    texts = [lead.source_description, lead.comments, lead.title]
    haystack = "\n".join(t for t in texts if t).casefold()
    if haystack:
        for marker in _strings(rules.get("markers")):
            if marker.strip().casefold() in haystack:
                return Classification(True, ai_channel_of(lead.source_id), f"marker:{marker}")
    return Classification(False, "", "no rule matched")


def channel_of(source_id: str) -> str:
    """The channel a source id alone names: ``chat`` / ``call`` / ``webform`` / ``email`` /
    ``other`` (see the module docstring)."""
    upper = source_id.strip().upper()
    if _OPEN_LINE.match(upper) or upper in CONNECTOR_CHANNELS:
        return CHAT
    if upper in CALL_SOURCES or "CALL" in upper.split("_") or upper.startswith("TELEPHONY"):
        return CALL
    if upper in WEBFORM_SOURCES or upper.startswith("WEBFORM"):
        return WEBFORM
    if upper in EMAIL_SOURCES:
        return EMAIL
    return OTHER


def lead_channel(lead: LeadSnapshot) -> str:
    """The lead's channel: :func:`channel_of` its source, or ``chat`` for an ``other`` source
    when its contact is an open-line (``imol|…``) client."""
    channel = channel_of(lead.source_id)
    if channel == OTHER and any(value.startswith("imol|") for value in lead.im_values):
        return CHAT
    return channel
