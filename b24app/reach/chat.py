"""The client's open-line chat as a channel (``imopenlines.crm.chat.get`` / ``.message.add``).

Which chat: the open-line chat bound to the first of ``targets`` (deal, then lead, then
contact) that has an **active** one — ``imopenlines.crm.chat.get`` with the default
``ACTIVE_ONLY=Y``: whether a message into a chat whose session is closed reaches the messenger
is not documented, so an inactive chat counts as "no chat" and the next channel (an SMS
workflow) takes over. The sender (a user who can see the CRM item) must be a chat member:
it is added with ``imopenlines.crm.chat.user.add`` (``WRONG_REQUEST`` = already a member, fine).

Requests: the look-up, the join and the send go in **one** ``batch`` for the first target
(``CHAT_ID=$result[chat][0][CHAT_ID]``), with ``chat.get`` of the other targets alongside; a
second batch only when the first target had no chat but another one does. A chat already used
for this client (``known``) gets the message directly: one request, and a look-up again only
if that send is refused.
"""

from __future__ import annotations

from typing import Any

from b24app.bitrix.client import BitrixClient
from b24app.bitrix.errors import BitrixError
from b24app.reach import Delivery
from b24app.reach import error_code
from b24app.reach import is_transient


def _send_params(target: tuple[str, int], sender: int, chat: Any, text: str) -> dict[str, Any]:
    return {
        "CRM_ENTITY_TYPE": target[0],
        "CRM_ENTITY": target[1],
        "USER_ID": sender,
        "CHAT_ID": chat,
        "MESSAGE": text,
    }


def send_chat(
    client: BitrixClient,
    targets: list[tuple[str, int]],
    sender: int,
    text: str,
    *,
    known: tuple[str, int, int] | None = None,
) -> Delivery:
    """Write ``text`` into the client's chat as ``sender``; ``known`` = (type, id, chat id)."""
    if known is not None:
        try:
            client.call(
                "imopenlines.crm.message.add", _send_params(known[:2], sender, known[2], text)
            )
            return Delivery(True, detail=f"chat {known[2]}", chat_id=known[2])
        except BitrixError as exc:
            if is_transient(exc):
                raise  # otherwise refused: look the chat up again below
    if not targets:
        return Delivery(False, error="no_crm_item")
    first = targets[0]
    ref = "$result[chat0][0][CHAT_ID]"
    commands: dict[str, tuple[str, dict[str, Any]]] = {}
    for i, (kind, item_id) in enumerate(targets):
        commands[f"chat{i}"] = (
            "imopenlines.crm.chat.get",
            {"CRM_ENTITY_TYPE": kind, "CRM_ENTITY": item_id, "ACTIVE_ONLY": "Y"},
        )
        if i == 0:
            commands["join"] = (
                "imopenlines.crm.chat.user.add",
                {"CRM_ENTITY_TYPE": kind, "CRM_ENTITY": item_id, "USER_ID": sender,
                 "CHAT_ID": ref},
            )  # fmt: skip
            commands["send"] = (
                "imopenlines.crm.message.add",
                _send_params(first, sender, ref, text),
            )
    result = client.batch(commands)
    chats = result.results.get("chat0") or []
    if result.results.get("send") is not None and chats:
        chat_id = int(chats[0]["CHAT_ID"])
        return Delivery(True, detail=f"chat {chat_id}", chat_id=chat_id)
    if chats:  # the first target has a chat, but the send was refused
        return Delivery(False, error=error_code(result.errors.get("send") or {}))
    for i, target in enumerate(targets[1:], start=1):
        found = result.results.get(f"chat{i}") or []
        if not found:
            continue
        chat_id = int(found[0]["CHAT_ID"])
        second = client.batch(
            {
                "join": (
                    "imopenlines.crm.chat.user.add",
                    {
                        "CRM_ENTITY_TYPE": target[0],
                        "CRM_ENTITY": target[1],
                        "USER_ID": sender,
                        "CHAT_ID": chat_id,
                    },
                ),  # fmt: skip
                "send": (
                    "imopenlines.crm.message.add",
                    _send_params(target, sender, chat_id, text),
                ),
            }
        )
        if second.results.get("send") is not None:
            return Delivery(True, detail=f"chat {chat_id}", chat_id=chat_id)
        return Delivery(False, error=error_code(second.errors.get("send") or {}))
    lookup_errors = [result.errors[k] for k in result.errors if k.startswith("chat")]
    if lookup_errors:
        return Delivery(False, error=error_code(lookup_errors[0]))
    return Delivery(False, error="no_active_chat")
