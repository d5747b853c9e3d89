"""An employee taps a command button under a bot's message in their personal dialog: the
bot gets ``ONIMBOTV2COMMANDADD`` (what is assumed of its shape: :mod:`devportal.bot_dialogs`).
"""

from __future__ import annotations

import time
from typing import Any
from typing import TYPE_CHECKING

from devportal.bot_dialogs import FIRST_CHAT_ID
from devportal.imbot import bot_auth

if TYPE_CHECKING:
    from devportal.portal import Portal


def _event(portal: Portal, bot: dict[str, Any], message: dict[str, Any], user_id: int,
           command: dict[str, Any], params: str) -> dict[str, Any]:  # fmt: skip
    return {
        "event": "ONIMBOTV2COMMANDADD",
        "data": {
            "bot": {"id": str(bot["id"]), "code": bot["code"], "auth": bot_auth(portal, bot)},
            "command": {
                "id": str(command["id"]),
                "command": command["command"],
                "params": params,
                "context": "keyboard",
            },  # fmt: skip
            "message": {
                "id": str(message["id"]),
                "chatId": str(FIRST_CHAT_ID + user_id),
                "authorId": str(bot["id"]),
                "text": message["text"],
            },  # fmt: skip
            "chat": {
                "id": str(FIRST_CHAT_ID + user_id),
                "dialogId": str(user_id),
                "type": "private",
                "entityType": "",
            },  # fmt: skip
            "user": {
                "id": str(user_id),
                "name": f"User {user_id}",
                "bot": "0",
                "connector": "0",
                "extranet": "0",
            },  # fmt: skip
        },
        "ts": str(int(time.time())),
        "auth": {
            "domain": portal.domain,
            "client_endpoint": portal.client_endpoint,
            "server_endpoint": portal.server_endpoint,
            "member_id": portal.member_id,
            "application_token": portal.application_token,
        },  # fmt: skip
    }


def tap(portal: Portal, user_id: int, message_id: int, text: str) -> bool:
    """Employee ``user_id`` taps the button ``text`` under message ``message_id`` of their
    personal dialog with a bot; True when an event went to the bot."""
    with portal.lock:
        dialogs = portal.imbot.personal
        message = dialogs.messages.get(message_id)
        if message is None or message["user_id"] != user_id:
            return False  # one sees (and taps) only one's own dialogs
        button = next((b for b in message["keyboard"]
                       if isinstance(b, dict) and b.get("TEXT") == text), None)  # fmt: skip
        bot = portal.imbot.bots.get(message["bot_id"])
        if button is None or bot is None or not button.get("COMMAND"):
            return False
        name = str(button["COMMAND"]).lstrip("/")
        command = dialogs.commands.get((int(bot["id"]), name))
        if command is None or bot.get("eventMode") != "webhook":
            return False
        if str(button.get("BLOCK") or "N").upper() == "Y":
            if message["pressed"]:
                return False
            message["pressed"].add(text)
        dialogs.taps.append({"user_id": user_id, "message_id": message_id, "text": text})
        payload = _event(portal, bot, message, user_id, command,
                         str(button.get("COMMAND_PARAMS") or ""))  # fmt: skip
    portal.send_events([(bot["webhookUrl"], payload)])
    return True
