"""The client's open-line chat as a channel: find it, read it, write into it.

Which chat: the open-line chat bound to the first of ``targets`` (deal, then lead, then
contact) that has an **active** one — ``imopenlines.crm.chat.get`` with the default
``ACTIVE_ONLY=Y``: whether a message into a chat whose session is closed reaches the messenger
is not documented, so an inactive chat counts as "no chat" and the next channel takes over.

Two steps, so the caller can apply the messenger's rules (:mod:`.channels`) between them:

* :func:`find_chat` — ONE ``batch``: ``chat.get`` of every target and, chained on each found
  chat, ``imopenlines.session.history.get`` (its connector, its members, when its client last
  wrote, the marks on sent messages; :mod:`b24app.bitrix.chat_history`). :func:`read_known`
  reads a chat already known the same way (one request).
* :func:`send_chat` — both, for the one-off messages that are not reminders.
* :func:`post` — ONE request: the sender (a user who can see the CRM item) joins with
  ``imopenlines.crm.chat.user.add`` unless the read showed them a member, and
  ``imopenlines.crm.message.add`` sends. Both always with the chat's id: an empty ``CHAT_ID``
  means "the item's last chat" in the docs, which may be an old closed one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from b24app.bitrix.chat_history import Chat
from b24app.bitrix.chat_history import history_command
from b24app.bitrix.chat_history import last_client_message_at
from b24app.bitrix.chat_history import parse_history
from b24app.bitrix.chat_history import read_chat
from b24app.bitrix.client import BatchResult
from b24app.bitrix.client import BitrixClient
from b24app.bitrix.errors import BitrixError
from b24app.reach import Delivery
from b24app.reach import error_code
from b24app.reach import is_transient
from b24app.reach.channels import connector_kind
from b24app.reach.channels import connector_of
from b24app.reach.channels import free_text_reach


@dataclass(frozen=True)
class FoundChat:
    """An active chat of the client: the CRM item it was found on, its id, connector id and
    the history read (None when Bitrix24 did not show it)."""

    target: tuple[str, int]
    chat_id: int
    connector: str
    history: Chat | None


def lookup_commands(
    targets: list[tuple[str, int | str]], prefix: str = ""
) -> dict[str, tuple[str, dict[str, Any]]]:
    """``batch`` commands: each target's active chat (``imopenlines.crm.chat.get``) and,
    chained on it, the chat's history. An id may be a ``$result[…]`` reference to an earlier
    command of the caller's batch (the booking's read: ``b24app/appointments/booking.py``)."""
    commands: dict[str, tuple[str, dict[str, Any]]] = {}
    method, _ = history_command(0)
    for i, (kind, item_id) in enumerate(targets):
        commands[f"{prefix}chat{i}"] = (
            "imopenlines.crm.chat.get",
            {"CRM_ENTITY_TYPE": kind, "CRM_ENTITY": item_id, "ACTIVE_ONLY": "Y"},
        )
        commands[f"{prefix}read{i}"] = (
            method,
            {"CHAT_ID": f"$result[{prefix}chat{i}][0][CHAT_ID]"},
        )
    return commands


def found_in(
    result: BatchResult, targets: list[tuple[str, int] | None], prefix: str = ""
) -> FoundChat | None:
    """The first target's chat in the answers to :func:`lookup_commands`; a None target (a
    chained id that was not that item's) is passed over."""
    for i, target in enumerate(targets):
        found = result.results.get(f"{prefix}chat{i}") or []
        if target is None or not isinstance(found, list) or not found:
            continue
        chat_id = int(found[0]["CHAT_ID"])
        history = parse_history(result.results.get(f"{prefix}read{i}"), chat_id)
        return FoundChat(target, chat_id, str(found[0].get("CONNECTOR_ID") or ""), history)
    return None


def find_chat(client: BitrixClient, targets: list[tuple[str, int]]) -> FoundChat | Delivery:
    """The first target's active chat with its history (one request), or why none."""
    if not targets:
        return Delivery(False, error="no_crm_item")
    result = client.batch(lookup_commands(list(targets)))
    found = found_in(result, list(targets))
    if found is not None:
        return found
    lookup_errors = [result.errors[k] for k in result.errors if k.startswith("chat")]
    if lookup_errors:
        return Delivery(False, error=error_code(lookup_errors[0]))
    return Delivery(False, error="no_active_chat")


def read_known(client: BitrixClient, chat_id: int) -> Chat | None:
    """A known chat's current session (one request); None when not shown to the app."""
    chat, _ = read_chat(client, chat_id)
    return chat


def post(
    client: BitrixClient, target: tuple[str, int], sender: int, chat_id: int, text: str,
    *, member: bool = False,
) -> Delivery:  # fmt: skip
    """Write ``text`` into chat ``chat_id`` (bound to ``target``) as ``sender``; one request.
    ``member``: the sender is known to be in the chat (no join)."""
    params = {"CRM_ENTITY_TYPE": target[0], "CRM_ENTITY": target[1], "USER_ID": sender,
              "CHAT_ID": chat_id}  # fmt: skip
    send = ("imopenlines.crm.message.add", {**params, "MESSAGE": text})
    if member:
        try:
            message_id = client.call(*send)
        except BitrixError as exc:
            if is_transient(exc):
                raise
            return Delivery(False, error=error_code(exc), chat_id=chat_id)
    else:
        # WRONG_REQUEST from the join = already a member: fine, the send still goes.
        result = client.batch({"join": ("imopenlines.crm.chat.user.add", params), "send": send})
        message_id = result.results.get("send")
        if message_id is None:
            return Delivery(False, error=error_code(result.errors.get("send") or {}),
                            chat_id=chat_id)  # fmt: skip
    return Delivery(True, detail=f"chat {chat_id}", chat_id=chat_id,
                    message_id=_int(message_id))  # fmt: skip


def _int(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def send_chat(
    client: BitrixClient,
    targets: list[tuple[str, int]],
    sender: int,
    text: str,
    *,
    known: tuple[str, int, int] | None = None,
    now: dt.datetime | None = None,
) -> Delivery:
    """A one-off message (an opt-out's confirmation, a reschedule talk, a freed time's offer,
    a re-invitation) into the client's active chat, when its messenger lets free text reach
    the client now (:func:`.channels.free_text_reach`; ``error`` names the rule that stopped
    it). ``known`` = (type, id, chat id) of the chat the client writes in: read, not looked
    up. Two requests: the read (connector, members, the client's last message), the send."""
    moment = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    if known is not None:
        history = read_known(client, known[2])
        if history is not None:
            found = FoundChat(known[:2], known[2], connector_of(history.entity_id), history)
            return _post_found(client, found, sender, text, moment)
    looked_up = find_chat(client, targets)
    if isinstance(looked_up, Delivery):
        return looked_up
    return _post_found(client, looked_up, sender, text, moment)


def _post_found(
    client: BitrixClient, found: FoundChat, sender: int, text: str, now: dt.datetime
) -> Delivery:
    history = found.history
    connector = found.connector or (connector_of(history.entity_id) if history else "")
    inbound = last_client_message_at(history) if history is not None else None
    reach = free_text_reach(connector_kind(connector), inbound, now)
    if not reach.ok:
        return Delivery(False, error=reach.reason, chat_id=found.chat_id)
    member = history is not None and sender in history.members
    return post(client, found.target, sender, found.chat_id, text, member=member)
