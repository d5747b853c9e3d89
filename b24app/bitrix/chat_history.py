"""Verify a client's open-line message by reading it back from Bitrix24 (issue 19).

A chat event (``ONIMBOTV2MESSAGEADD``, ``ONIMBOTV2JOINCHAT``, ``ONOPENLINEMESSAGEADD``) is
authenticated only by ``application_token``, which every employee's frame receives: anyone on
the portal can post one naming any chat, lead, dialog and text. So the event is a hint (its
chat id and message id) and this module is the one place that turns the hint into facts, from
ONE request made with the app's own token:

``imopenlines.session.history.get`` with ``CHAT_ID`` (``imopenlines/openlines/sessions/
imopenlines-session-history-get.md``) returns the chat's current session: ``message``
(``id``, ``senderid``, ``text``), ``users`` (``connector``: the client of the open line;
``bot``) and ``chat.<id>`` (``entityType``, ``entityId`` = ``connector|line|chat|user``,
``entityData2`` = ``LEAD|id|COMPANY|id|CONTACT|id|DEAL|id``), ``userInChat``. The docs say it
works without being a chat member ("any user"), unlike ``im.dialog.messages.get`` (a chat
participant only, which the admin's token is not), and it brings the CRM binding in the same
answer, so ``imopenlines.dialog.get`` is not needed.

A message counts as the client's when it is in that chat's history, its sender is not 0
(system) and the sender is a connector user that is not a bot (operators and bots are
``connector: false``). The text, the author and the CRM binding used afterwards are the ones
read here, never the event's; replies go to ``chat<id>`` of the chat read.

Why not Chatbots 2.0 fetch mode (``imbot.v2.Event.get``, events pulled with the app's token,
so unforgeable by construction): it needs a poller per portal running all the time (a request
every second or two per portal even when nobody writes, from a budget of 2 a second), adds
the poll interval to every answer (the 3 s target), and ``ONOPENLINEMESSAGEADD`` has no fetch
mode anyway. Re-reading costs one request per client message and rides in the turn's first
request (with the typing indicator), so the webhook path stays and both paths share this rule.

Assumptions where the docs are silent: without ``SESSION_ID`` the method reads the chat's last
session (documented), so a message of an older session does not verify (its event is late:
nothing is lost but a stale action); ``users.<id>.bot`` is printed in the sample but not in the
field table (missing counts as not a bot); a message's ``senderid`` of a client equals
``users.<id>.id`` with ``connector: true``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from typing import Protocol

from b24app.bitrix.errors import PortalUnavailable
from b24app.bitrix.errors import RateLimited
from b24app.bitrix.errors import TransportError

log = logging.getLogger(__name__)

HISTORY = "imopenlines.session.history.get"
READ = "chat_history"  # the command's name in the caller's batch
MAX_TEXT = 4000  # a client's text is bounded before anything reads it


class Batcher(Protocol):
    def batch(self, commands: Mapping[str, tuple[str, Mapping[str, Any] | None]],
              halt: bool = False) -> Any: ...  # fmt: skip


@dataclass(frozen=True)
class ChatMessage:
    id: int
    sender_id: int  # 0: a system message
    text: str
    sent_at: dt.datetime | None  # naive UTC; None when the date is missing or unreadable
    # The connector's mark on a message sent into the chat (:func:`delivery_mark`):
    # "delivered", "failed" or "" (none yet); ``error`` the connector's reason when failed.
    delivery: str = ""
    error: str = ""


@dataclass(frozen=True)
class Chat:
    """An open-line chat as Bitrix24 reports it (its current session)."""

    id: int
    entity_type: str
    entity_id: str  # connector|line|connector chat|connector user
    entity_data2: str  # LEAD|id|COMPANY|id|CONTACT|id|DEAL|id
    members: frozenset[int]
    messages: Mapping[int, ChatMessage]
    clients: Mapping[int, str]  # connector users (not bots) → name

    @property
    def dialog_id(self) -> str:
        return f"chat{self.id}"


@dataclass(frozen=True)
class ClientMessage:
    """A message Bitrix24 says the chat's client wrote, with the chat it is in."""

    chat: Chat
    id: int
    text: str
    author_id: int
    author_name: str
    sent_at: dt.datetime | None  # naive UTC


def history_command(chat_id: int) -> tuple[str, dict[str, Any]]:
    return HISTORY, {"CHAT_ID": int(chat_id)}


def _int(value: Any) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return 0


def _date(value: Any) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None  # a date without its offset cannot be placed in time
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "y", "true")


def delivery_mark(params: Any) -> tuple[str, str]:
    """``(mark, reason)`` from a message's ``params``. The docs print ``params`` but not the
    keys a connector sets; assumed here (and in the emulator, ``devportal.connectors``) are
    the messenger's own message parameters: ``IS_ERROR: "Y"`` (with the connector's reason
    in ``ERROR``) when the connector could not deliver, ``IS_DELIVERED: "Y"`` or a
    ``CONNECTOR_MID`` (the message's id in the messenger) when it did; none yet: ""."""
    if not isinstance(params, Mapping):
        return "", ""
    if _truthy(params.get("IS_ERROR")):
        return "failed", str(params.get("ERROR") or "undelivered")[:64]
    if _truthy(params.get("IS_DELIVERED")) or params.get("CONNECTOR_MID"):
        return "delivered", ""
    return "", ""


def last_client_message_at(chat: Chat) -> dt.datetime | None:
    """When the chat's client last wrote (naive UTC), by the history read; None: not in it."""
    times = [m.sent_at for m in chat.messages.values()
             if m.sender_id in chat.clients and m.sent_at is not None]  # fmt: skip
    return max(times) if times else None


def parse_history(result: Any, chat_id: int) -> Chat | None:
    """The chat from a ``imopenlines.session.history.get`` result; None when the answer is not
    about an open-line chat ``chat_id``."""
    if not isinstance(result, Mapping) or _int(result.get("chatId")) != int(chat_id):
        return None
    chats = result.get("chat")
    about = chats.get(str(chat_id)) if isinstance(chats, Mapping) else None
    if not isinstance(about, Mapping) or str(about.get("entityType") or "") != "LINES":
        return None
    raw_messages = result.get("message")
    messages: dict[int, ChatMessage] = {}
    if isinstance(raw_messages, Mapping):
        for item in raw_messages.values():
            if not isinstance(item, Mapping) or _int(item.get("chatid")) != int(chat_id):
                continue
            message_id = _int(item.get("id"))
            if message_id > 0:
                messages[message_id] = ChatMessage(
                    message_id,
                    _int(item.get("senderid")),
                    str(item.get("text") or "")[:MAX_TEXT],
                    _date(item.get("date")),
                    *delivery_mark(item.get("params")),
                )
    clients: dict[int, str] = {}
    users = result.get("users")
    if isinstance(users, Mapping):
        for key, user in users.items():
            if not isinstance(user, Mapping):
                continue
            if _truthy(user.get("connector")) and not _truthy(user.get("bot")):
                clients[_int(user.get("id") or key)] = str(user.get("name") or "")[:255]
    in_chat = result.get("userInChat")
    members = in_chat.get(str(chat_id)) if isinstance(in_chat, Mapping) else None
    return Chat(
        id=int(chat_id),
        entity_type="LINES",
        entity_id=str(about.get("entityId") or ""),
        entity_data2=str(about.get("entityData2") or ""),
        members=frozenset(_int(m) for m in members or [] if _int(m)),
        messages=messages,
        clients=clients,
    )


def parse_bindings(entity_data2: str) -> dict[str, int]:
    """``LEAD|1209|COMPANY|0|CONTACT|0|DEAL|0`` → ``{"LEAD": 1209}`` (0 means none)."""
    parts = (entity_data2 or "").split("|")
    out: dict[str, int] = {}
    for kind, value in zip(parts[::2], parts[1::2], strict=False):
        if value.isdigit() and int(value) > 0:
            out[kind.upper()] = int(value)
    return out


def crm_target(entity_data2: str) -> tuple[str, int] | None:
    """The CRM item a chat is bound to, the deal first, then the lead, then the contact:
    ``("deal", 77)``; None when unbound."""
    bound = parse_bindings(entity_data2)
    return next(((k.lower(), bound[k]) for k in ("DEAL", "LEAD", "CONTACT") if k in bound), None)


def client_message(chat: Chat, message_id: int) -> ClientMessage | None:
    """THE rule: message ``message_id`` is in ``chat`` and its client wrote it (not an
    operator, not a bot, not the system)."""
    message = chat.messages.get(int(message_id))
    if message is None or message.sender_id <= 0 or message.sender_id not in chat.clients:
        return None
    return ClientMessage(chat, message.id, message.text, message.sender_id,
                         chat.clients[message.sender_id], message.sent_at)  # fmt: skip


def read_chat(
    client: Batcher,
    chat_id: int,
    also: Mapping[str, tuple[str, Mapping[str, Any] | None]] | None = None,
) -> tuple[Chat | None, Any]:
    """Read the chat (one ``batch``, with the caller's ``also`` commands after the read):
    the chat, or None when Bitrix24 does not show it to the app; and the batch result.

    :raise BitrixError: the portal could not answer now (rate limit, transport, unavailable):
        the caller's job retries; a refusal (access, no such session) is None instead.
    """
    result = client.batch({READ: history_command(chat_id), **(also or {})}, halt=False)
    error = result.error(READ)
    if error is not None:
        if isinstance(error, RateLimited | PortalUnavailable | TransportError):
            raise error
        log.info("chat %s not readable: %s", chat_id, error.code)
        return None, result
    return parse_history(result.results.get(READ), chat_id), result


def verify_client_message(client: Batcher, chat_id: int, message_id: int) -> ClientMessage | None:
    """The client's message ``message_id`` of chat ``chat_id`` as Bitrix24 has it, or None."""
    chat, _ = read_chat(client, chat_id)
    return client_message(chat, message_id) if chat is not None else None
