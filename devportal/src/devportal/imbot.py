"""Chatbots 2.0 of an emulated portal: bots registered by the app, what they say in open-line
chats (with keyboards), typing, and the Open Lines session (bot → operator).

Builds on the open-line chats of :mod:`devportal.openlines`. A bot answers a line
only once attached to it (:meth:`ImBots.attach`, what the admin does in the line's settings:
there is no REST call for that); chats of other lines go to operators. While
the session of a chat is held by the bot, every client message is also delivered to the bot's
``webhookUrl`` as ``ONIMBOTV2MESSAGEADD`` — form-encoded, every scalar a string, the bot's own
tokens in ``data[bot][auth]`` and the event's ``auth`` carrying ``application_token``; a new
chat on a line with a bot sends ``ONIMBOTV2JOINCHAT``. The payload follows Bitrix24's v2 event docs
(``data.bot``, ``data.message``, ``data.chat``, ``data.user``, camelCase); fields the docs do
not show (``chat.entityData2`` etc.) mirror the v1 event's ``CHAT_ENTITY_*``.

``imopenlines.bot.session.operator`` hands the chat to the line's first free operator
(a system message says so), ``transfer`` to a user or a queue, ``finish`` closes it; after a
hand-off the bot receives nothing more from that chat.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import TYPE_CHECKING

from devportal.bot_dialogs import PersonalDialogs
from devportal.openlines import ChatMessage
from devportal.openlines import OpenLineChat

if TYPE_CHECKING:
    from devportal.portal import Portal

DEFAULT_OPERATORS = [2, 3]  # the reception of the default users


@dataclass
class Session:
    """Who holds an open-line chat: ``bot`` (with ``bot_id``), ``operator`` or ``closed``."""

    holder: str = "bot"
    bot_id: int | None = None
    operator_id: int | None = None
    queue_id: int | None = None
    handed_off_at: float | None = None


@dataclass
class ImBots:
    bots: dict[int, dict[str, Any]] = field(default_factory=dict)
    next_bot_id: int = 567
    sessions: dict[int, Session] = field(default_factory=dict)
    keyboards: dict[int, dict[str, Any]] = field(default_factory=dict)  # message id → keyboard
    system: set[int] = field(default_factory=set)  # bot messages sent as "system"
    typing: dict[int, list[float]] = field(default_factory=dict)  # chat id → times
    sent: list[dict[str, Any]] = field(default_factory=list)  # every send, for benchmarks
    operators: list[int] = field(default_factory=lambda: list(DEFAULT_OPERATORS))
    lines: dict[int, int] = field(default_factory=dict)  # open line id → attached bot id
    personal: PersonalDialogs = field(default_factory=PersonalDialogs)  # bots ↔ employees

    def by_code(self, code: str) -> dict[str, Any] | None:
        return next((b for b in self.bots.values() if b["code"] == code), None)

    def attach(self, line_id: int = 1, code: str | None = None) -> dict[str, Any]:
        """What the admin does in the open line's settings: the line's chats go to the bot."""
        bot = next(
            b for b in self.bots.values()
            if (code is None and b["type"] in ("openline", "O")) or b["code"] == code
        )  # fmt: skip
        self.lines[line_id] = int(bot["id"])
        return bot

    def line_bot(self, line_id: int) -> dict[str, Any] | None:
        """The bot attached to the open line, if any (and still registered)."""
        return self.bots.get(self.lines.get(line_id, 0))

    def session(self, chat: OpenLineChat) -> Session:
        found = self.sessions.get(chat.id)
        if found is None:
            bot = self.line_bot(chat.line_id)
            found = Session(holder="bot" if bot else "operator", bot_id=bot["id"] if bot else None)
            self.sessions[chat.id] = found
        return found


def entity_id(chat: OpenLineChat) -> str:
    return f"{chat.connector_id}|{chat.line_id}|{chat.external_chat_id}|{chat.client_user_id}"


def entity_data2(chat: OpenLineChat) -> str:
    ids = {t: i for t, i in chat.bindings}
    return "|".join(f"{t.upper()}|{ids.get(t, 0)}" for t in ("lead", "company", "contact", "deal"))


def bot_auth(portal: Portal, bot: dict[str, Any]) -> dict[str, str]:
    """``data[bot][auth]``: the bot's own OAuth credentials (the event's ``auth`` is the user's)."""
    pair = portal.tokens_for(portal.admin_user_id)
    return {
        "access_token": pair.access_token,
        "expires": str(int(pair.expires_at)),
        "expires_in": str(pair.expires_in(time.time())),
        "scope": portal.scope,
        "domain": portal.domain,
        "server_endpoint": portal.server_endpoint,
        "status": portal.app_status,
        "client_endpoint": portal.client_endpoint,
        "member_id": portal.member_id,
        "refresh_token": pair.refresh_token,
        "user_id": str(bot["id"]),
        "client_id": portal.emu.client_id,
        "application_token": portal.app.application_token,
    }


def _event(
    portal: Portal, bot: dict[str, Any], name: str, chat: OpenLineChat, data: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    payload = {
        "event": name,
        "data": {
            "bot": {"id": str(bot["id"]), "code": bot["code"], "auth": bot_auth(portal, bot)},
            "chat": {
                "id": str(chat.id),
                "dialogId": f"chat{chat.id}",
                "type": "lines",
                "entityType": "LINES",
                "entityId": entity_id(chat),
                "entityData1": "",
                "entityData2": entity_data2(chat),
                "entityData3": "N",
            },
            "user": {
                "id": str(chat.client_user_id),
                "name": f"Guest {chat.client_user_id}",
                "bot": "0",
                "connector": "1",
                "extranet": "0",
            },
            **data,
        },
        "ts": str(int(time.time())),
        "auth": {
            "domain": portal.domain,
            "client_endpoint": portal.client_endpoint,
            "server_endpoint": portal.server_endpoint,
            "member_id": portal.member_id,
            "application_token": portal.app.application_token,
        },
    }
    return bot["webhookUrl"], payload


def message_event(
    portal: Portal, chat: OpenLineChat, message: ChatMessage
) -> list[tuple[str, dict[str, Any]]]:
    """``ONIMBOTV2MESSAGEADD`` to the bot holding the chat (none after a hand-off)."""
    state = portal.imbot.session(chat)
    bot = portal.imbot.bots.get(state.bot_id or 0)
    if state.holder != "bot" or bot is None or bot.get("eventMode") != "webhook":
        return []
    chat.members.add(int(bot["id"]))  # the bot holding the session is in the chat
    data = {
        "message": {
            "id": str(message.id),
            "chatId": str(chat.id),
            "authorId": str(message.author_id),
            "text": message.text,
            "date": portal.now_str(message.created),
        }
    }
    return [_event(portal, bot, "ONIMBOTV2MESSAGEADD", chat, data)]


def join_event(portal: Portal, chat: OpenLineChat) -> list[tuple[str, dict[str, Any]]]:
    """``ONIMBOTV2JOINCHAT`` when a new chat starts on a line with a bot."""
    state = portal.imbot.session(chat)
    bot = portal.imbot.bots.get(state.bot_id or 0)
    if state.holder != "bot" or bot is None or bot.get("eventMode") != "webhook":
        return []
    chat.members.add(int(bot["id"]))
    return [_event(portal, bot, "ONIMBOTV2JOINCHAT", chat, {})]
