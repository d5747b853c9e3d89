"""Open-line chats of an emulated portal and what happens in them: a client writes in from a
messenger, answers, an operator replies. The chats and messages are :mod:`devportal.openlines`;
the bots that answer a line are :mod:`devportal.imbot`."""

from __future__ import annotations

import time
from typing import Any
from typing import TYPE_CHECKING

import requests

from b24app.bitrix.payload import flatten_php_form
from devportal import imbot
from devportal.openlines import ChatMessage
from devportal.openlines import OpenLineChat
from devportal.openlines import OpenLines

if TYPE_CHECKING:
    from devportal.portal import Portal


class Chats:
    """The open-line chats of one portal (:attr:`lines`) and people's actions in them."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal
        self.lines = OpenLines()

    def open_chat(
        self, bindings: list[tuple[str, int]], *, connector_id: str = "telegrambot",
        members: list[int] | None = None,
    ) -> OpenLineChat:  # fmt: skip
        """A client writes in from a messenger: an open-line chat bound to CRM items."""
        p = self.portal
        with p.lock:
            chat = self.lines.open_chat(bindings, connector_id=connector_id, members=members)
            out = imbot.join_event(p, chat)  # a bot on the line joins and greets
        p.bus.send(out)
        return chat

    def client_writes(self, chat_id: int, text: str) -> int:
        """The client answers in the messenger: a message, ``ONIMBOTV2MESSAGEADD`` to the bot
        holding the chat, ``ONOPENLINEMESSAGEADD`` only on the app's own connector's lines."""
        p = self.portal
        with p.lock:
            chat = self.lines.chats[chat_id]
            message = self.lines.add_message(chat, chat.client_user_id, "client", text)
            out = imbot.message_event(p, chat, message)
            if self.lines.reaches_app(chat):
                out += p.bus.deliveries(
                    "ONOPENLINEMESSAGEADD", self.lines.event_data(chat, message), None
                )
        p.bus.send(out)
        return message.id

    def operator_writes(self, chat_id: int, user_id: int, text: str) -> int:
        """An operator answers in the chat (after the bot handed it off)."""
        with self.portal.lock:
            chat = self.lines.chats[chat_id]
            chat.members.add(user_id)
            return self.lines.add_message(chat, user_id, "operator", text).id

    def employee_posts(self, url: str, payload: dict[str, Any]) -> requests.Response:
        """An employee posts a hand-made event to the app (a FORGED event): any employee's
        app frame holds the portal's ``application_token``, so the form carries the right
        token and the event's usual shape, with whatever chat, message, lead or text the
        employee chose. Sent at once, form-encoded as Bitrix24 sends events, outside the
        delivery queue and without any trace in the portal's own state."""
        form = flatten_php_form(payload)
        return requests.post(url, data=form, timeout=10)

    def message_events(
        self, chat_id: int, message_id: int, text: str, *, author_id: int | None = None
    ) -> dict[str, tuple[str, dict[str, Any]]]:
        """Event name → (URL, payload) of the events a message would cause in the chat
        (``ONOPENLINEMESSAGEADD``, ``ONIMBOTV2MESSAGEADD`` to the bot holding it), for a
        message that need NOT be in the chat: material for :meth:`employee_posts`."""
        p = self.portal
        with p.lock:
            chat = self.lines.chats[chat_id]
            message = ChatMessage(message_id, chat.id, author_id or chat.client_user_id,
                                  "client", text, time.time())  # fmt: skip
            out = p.bus.deliveries(
                "ONOPENLINEMESSAGEADD", self.lines.event_data(chat, message), None
            )
            out += imbot.message_event(p, chat, message)
        return {payload["event"]: (url, payload) for url, payload in out}

    def chat_messages(self, chat_id: int) -> list[dict[str, Any]]:
        with self.portal.lock:
            return self.lines.transcript(chat_id)
