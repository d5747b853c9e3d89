"""Which messenger a chat runs on, and whether free text can reach its client now.

Bitrix24 names a chat's connector in ``imopenlines.crm.chat.get`` (``CONNECTOR_ID``) and in
the chat's ``entityId`` (``connector|line|connector chat|connector user``) of
``imopenlines.session.history.get``; the ids are those of ``imconnector.list``
(``whatsappbytwilio``, ``whatsappbyedna``, ``fbinstagramdirect``, ``facebook``,
``telegrambot``, ``vkgroup``, ``livechat``…). The rules per kind (Bitrix24 helpdesk
"Messaging rules for Facebook, Instagram, and WhatsApp"; Meta's and VK's rules, summarised in
``docs/channels.md``):

* **WhatsApp, Instagram, Facebook** — free text is delivered only within 24 h of the client's
  last message; the app's and the operators' messages do not reopen the window.
* **Telegram** — a bot cannot write first; an open-line chat exists only once the client has
  written to the bot, so a chat found is a chat the client opened (a client who blocked the
  bot later is a late "not delivered", like VK's).
* **VK** — a community cannot write to a user who has not allowed messages (VK error 901):
  once a message came back undelivered with 901, the chat is refused until the client writes.
* **Others** (web chat, MAX, Viber, Avito…) — no rule known to the app: free text goes.

Plain functions over values; nothing here reads Bitrix24 or the database.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

WINDOW = dt.timedelta(hours=24)
WINDOW_KINDS = ("whatsapp", "instagram", "facebook")
# Kinds whose "not delivered" comes back after the send was accepted: their sends are checked.
LATE_FAILURE_KINDS = (*WINDOW_KINDS, "vk", "telegram")
KINDS = ("whatsapp", "instagram", "facebook", "telegram", "vk", "max", "livechat", "other")
# Connector id fragments → kind, first match wins (ids of imconnector.list; MAX is assumed
# to be spelled "max…" — the list in the docs predates it).
_FRAGMENTS = (
    ("whatsapp", "whatsapp"),
    ("instagram", "instagram"),
    ("facebook", "facebook"),
    ("fbmessenger", "facebook"),
    ("telegram", "telegram"),
    ("vkgroup", "vk"),
    ("livechat", "livechat"),
    ("max", "max"),
)


def connector_kind(connector_id: str) -> str:
    """``whatsappbytwilio`` → ``whatsapp``; an unknown connector → ``other``."""
    lowered = (connector_id or "").strip().lower()
    for fragment, kind in _FRAGMENTS:
        if lowered.startswith(fragment) or fragment in lowered.split("|", 1)[0]:
            return kind
    return "other"


def connector_of(entity_id: str) -> str:
    """The connector id of a chat's ``entityId`` (``connector|line|chat|user``)."""
    return (entity_id or "").split("|", 1)[0][:32]


@dataclass(frozen=True)
class Reach:
    """Whether free text can reach the client now; ``reason`` (a short code) when not."""

    ok: bool
    reason: str = ""


def free_text_reach(
    kind: str, last_inbound_at: dt.datetime | None, now: dt.datetime, refused: str = ""
) -> Reach:
    """THE rule (module docstring); times naive UTC. ``refused``: a connector error the chat
    answered since the client last wrote (``vk_901``)."""
    if kind in WINDOW_KINDS:
        if last_inbound_at is None:
            return Reach(False, "window_unknown")
        if now - last_inbound_at >= WINDOW:
            return Reach(False, "window_closed")
        return Reach(True)
    if kind == "vk" and refused:
        return Reach(False, refused)
    return Reach(True)


def window_closes(kind: str, last_inbound_at: dt.datetime | None) -> dt.datetime | None:
    """When the kind's 24 h window closes (None: the kind has no window or it never opened)."""
    if kind not in WINDOW_KINDS or last_inbound_at is None:
        return None
    return last_inbound_at + WINDOW
