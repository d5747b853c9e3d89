"""The messengers behind open-line chats and their rules: what reaches the client.

A chat's connector (``OpenLineChat.connector_id``, the ids of ``imconnector.list``:
``whatsappbytwilio``, ``whatsappbyedna``, ``fbinstagramdirect``, ``facebook``, ``telegrambot``,
``vkgroup``, ``livechat``…) decides whether a message an operator, a bot or an app writes with
``imopenlines.crm.message.add`` reaches the client:

* **WhatsApp, Instagram, Facebook** — only within 24 h of the client's last message in the
  chat (Bitrix24 helpdesk "Messaging rules for Facebook, Instagram, and WhatsApp"); the
  operators' messages do not reopen the window. Outside it the send is **accepted** (the
  method answers the message id) and the message is marked undelivered **later**.
* **Telegram** — a client who blocked the bot: accepted, undelivered later (Telegram's 403);
  a WhatsApp client the messenger cannot reach (Meta's 131026) likewise.
* **VK** — a user who has not allowed the community's messages: accepted, undelivered later
  with VK's error 901.
* Anything else is delivered.

Assumptions where the docs are silent (also in docs/emulator.md): a send into a closed window
is accepted, not refused (the docs do not say which); the outcome shows in the message's
``params`` in ``imopenlines.session.history.get`` after :attr:`Connectors.mark_delay`
seconds — ``IS_DELIVERED: "Y"`` with ``CONNECTOR_MID`` (the message's id in the messenger)
when delivered, ``IS_ERROR: "Y"`` with ``ERROR`` (``window_closed``, ``403``, ``901``) when
not — the messenger's own message parameters, whose REST exposure is not documented; before
that the params are empty (no mark yet).

State is per portal (``OpenLines.connectors``); nothing here knows of the product.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Protocol

WINDOW_SECONDS = 24 * 3600
WINDOW_CONNECTORS = ("whatsapp", "instagram", "facebook")
TITLES = {
    "whatsappbytwilio": "WhatsApp (Twilio)",
    "whatsappbyedna": "WhatsApp (Edna)",
    "fbinstagramdirect": "Instagram Direct",
    "facebook": "Facebook: Messages",
    "vkgroup": "VK",
    "telegrambot": "Telegram",
    "livechat": "Live Chat",
}


class _Message(Protocol):
    id: int
    kind: str
    created: float


class _Chat(Protocol):
    id: int
    connector_id: str
    client_user_id: int
    messages: list[Any]


@dataclass
class Outcome:
    """What the messenger does with one message: ``error`` "" = delivered; known at ``at``."""

    at: float
    error: str = ""


@dataclass
class Connectors:
    """The messengers' side of every chat of a portal."""

    mark_delay: float = 1.0  # seconds until the messenger's mark shows
    blocked: set[int] = field(default_factory=set)  # chats whose client refuses the sender
    outcomes: dict[int, Outcome] = field(default_factory=dict)  # by message id

    def refuse(self, chat_id: int) -> None:
        """The chat's client blocked the bot (Telegram) / never allowed messages (VK)."""
        self.blocked.add(int(chat_id))

    def on_send(self, chat: _Chat, message: _Message) -> None:
        """An operator's, bot's or app's message was accepted into ``chat``."""
        error = self.verdict(chat, message.created)
        self.outcomes[message.id] = Outcome(message.created + self.mark_delay, error)

    def verdict(self, chat: _Chat, at: float) -> str:
        """ "" (delivered) or the messenger's reason for not delivering at ``at``."""
        connector = chat.connector_id.lower()
        if any(c in connector for c in WINDOW_CONNECTORS):
            last = max((m.created for m in chat.messages if m.kind == "client"), default=None)
            if last is None or at - last >= WINDOW_SECONDS:
                return "window_closed"
        if chat.id in self.blocked:
            # VK: "user has not allowed messages"; Telegram: "bot was blocked by the user";
            # WhatsApp (Meta): 131026 "message undeliverable"
            return "901" if "vk" in connector else "403" if "telegram" in connector else "131026"
        return ""

    def params(self, message_id: int, now: float | None = None) -> dict[str, Any]:
        """The message's ``params`` in the chat history (module docstring)."""
        outcome = self.outcomes.get(int(message_id))
        if outcome is None or (now if now is not None else time.time()) < outcome.at:
            return {}
        if outcome.error:
            return {"IS_ERROR": "Y", "ERROR": outcome.error}
        return {"IS_DELIVERED": "Y", "CONNECTOR_MID": [f"wamid.{message_id}"]}

    def reached_client(self, message_id: int) -> bool:
        """Whether the client got the message (the messenger's verdict, mark shown or not)."""
        outcome = self.outcomes.get(int(message_id))
        return outcome is not None and not outcome.error


def backdate_client(chat: _Chat, seconds_ago: float) -> None:
    """The chat's client messages were written ``seconds_ago`` (a client silent since)."""
    moment = time.time() - seconds_ago
    for message in chat.messages:
        if message.kind == "client":
            message.created = moment
