"""Open-line chats of an emulated portal, bound to CRM items.

A chat has a numeric id (REST gives it out as the **string** ``CHAT_ID`` from
``imopenlines.crm.chat.get``), a connector (``telegrambot``, ``whatsapp``, ``livechat``…),
the CRM items it is bound to (lead, deal, contact, company), its members (employees and bots
allowed to write), a client user (the connector's guest user) and its messages, each from the
``client``, an ``operator`` or a ``bot``. A chat is *active* while its session is open; the
default ``ACTIVE_ONLY=Y`` of ``crm.chat.get`` hides the others.

Events: every message added to a chat (by the client through :meth:`Portal.client_writes`, or
by ``imopenlines.crm.message.add``) fires ``ONOPENLINEMESSAGEADD`` with the documented
``data[DATA][0][connector|chat|message]`` shape (``on-open-line-message-add.md``) — but, as
that page says, only for the lines of a connector *added by the application*
(``OpenLines.app_connectors``, what ``imconnector.register`` would add; none by default): a
Telegram, WhatsApp, VK or web-chat client's message reaches the app only through an open-line
bot in the chat (``ONIMBOTV2MESSAGEADD``) or by reading the chat's history.

Kept apart from the product, and reusable by a later chatbot (issue 13): the model knows
nothing of reminders.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from devportal.connectors import Connectors
from devportal.connectors import TITLES

CONNECTOR_TITLES = {**TITLES, "whatsapp": "WhatsApp"}
CRM_TYPES = ("lead", "deal", "contact", "company")


@dataclass
class ChatMessage:
    id: int
    chat_id: int
    author_id: int
    kind: str  # client / operator / bot / system
    text: str
    created: float


@dataclass
class OpenLineChat:
    id: int
    connector_id: str
    line_id: int
    client_user_id: int
    external_chat_id: str
    bindings: set[tuple[str, int]] = field(default_factory=set)
    members: set[int] = field(default_factory=set)
    messages: list[ChatMessage] = field(default_factory=list)
    active: bool = True
    session_id: int = 0  # the chat's Open Lines session (one per chat here)

    def as_rest(self) -> dict[str, str]:
        return {
            "CHAT_ID": str(self.id),
            "CONNECTOR_ID": self.connector_id,
            "CONNECTOR_TITLE": CONNECTOR_TITLES.get(self.connector_id, self.connector_id),
        }


@dataclass
class OpenLines:
    """Every open-line chat of a portal, and their messages."""

    chats: dict[int, OpenLineChat] = field(default_factory=dict)
    next_chat_id: int = 1763
    next_message_id: int = 19880117
    next_guest_id: int = 1985
    next_session_id: int = 321
    # connectors the app itself added (``imconnector.register``): only their lines' messages
    # fire ``ONOPENLINEMESSAGEADD`` to the app (on-open-line-message-add.md)
    app_connectors: set[str] = field(default_factory=set)
    connectors: Connectors = field(default_factory=Connectors)  # the messengers' rules

    def open_chat(
        self,
        bindings: list[tuple[str, int]],
        *,
        connector_id: str = "telegrambot",
        line_id: int = 1,
        members: list[int] | None = None,
    ) -> OpenLineChat:
        chat = OpenLineChat(
            id=self.next_chat_id,
            connector_id=connector_id,
            line_id=line_id,
            client_user_id=self.next_guest_id,
            external_chat_id=str(209607941 + self.next_chat_id),
            bindings={(t.lower(), int(i)) for t, i in bindings},
            members=set(members or []),
            session_id=self.next_session_id,
        )
        self.next_session_id += 1
        chat.members.add(chat.client_user_id)
        self.chats[chat.id] = chat
        self.next_chat_id += 1
        self.next_guest_id += 1
        return chat

    def for_item(self, crm_type: str, crm_id: int, *, active_only: bool) -> list[OpenLineChat]:
        key = (crm_type.lower(), int(crm_id))
        return [
            c for c in self.chats.values() if key in c.bindings and (c.active or not active_only)
        ]

    def add_message(self, chat: OpenLineChat, author_id: int, kind: str, text: str) -> ChatMessage:
        message = ChatMessage(self.next_message_id, chat.id, author_id, kind, text, time.time())
        self.next_message_id += 1
        chat.messages.append(message)
        return message

    def reaches_app(self, chat: OpenLineChat) -> bool:
        """Whether the chat's messages fire ``ONOPENLINEMESSAGEADD`` to the app."""
        return chat.connector_id in self.app_connectors

    def event_data(self, chat: OpenLineChat, message: ChatMessage) -> dict[str, Any]:
        """``data`` of ``ONOPENLINEMESSAGEADD`` (documented shape; ``chat.id`` = Bitrix24 chat)."""
        return {
            "DATA": [
                {
                    "connector": {
                        "connector_id": chat.connector_id,
                        "line_id": str(chat.line_id),
                        "chat_id": chat.external_chat_id,
                        "user_id": str(chat.client_user_id),
                    },
                    "chat": {"id": str(chat.id)},
                    "message": {
                        "id": str(message.id),
                        "date": "",
                        "text": message.text,
                        "files": [],
                        "attach": "",
                        "system": "Y" if message.kind == "system" else "N",
                        "user_id": str(message.author_id),
                    },
                    "ref": [],
                    "extra": {"EXTRA_URL": ""},
                }
            ]
        }

    def transcript(self, chat_id: int) -> list[dict[str, Any]]:
        chat = self.chats[chat_id]
        return [
            {"id": m.id, "author_id": m.author_id, "kind": m.kind, "text": m.text,
             "created": m.created}
            for m in chat.messages
        ]  # fmt: skip
