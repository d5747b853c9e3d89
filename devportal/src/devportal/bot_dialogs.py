"""A bot's personal dialogs with employees and its commands — the state behind
``imbot.v2.Chat.Message.send`` with ``dialogId`` = a user id, ``imbot.v2.Command.register``
and ``ONIMBOTV2COMMANDADD`` (a tap: :mod:`devportal.bot_taps`) (Chatbots 2.0 docs: ``imbot.v2/messages/message-keyboards.md``,
``imbot.v2/commands/command-register.md``, ``imbot.v2/events/events.md``).

A keyboard button with ``COMMAND`` (and ``COMMAND_PARAMS``) brings the bot one
``ONIMBOTV2COMMANDADD`` per tap, ``command.context = "keyboard"``, when the command is
registered for that bot; ``BLOCK=Y`` makes the button answer once. Assumed where the docs are
silent: the event's ``message`` is the message that holds the keyboard, its ``chat`` the
personal dialog (``dialogId`` = the user's id as the bot sees it, ``type`` ``private``), its
``user`` the employee who tapped; ``command.command`` carries the leading ``/``.
Only the dialog's own user can tap (:func:`tap`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from devportal.errors import RestError

FIRST_MESSAGE_ID = 900_000  # apart from the open-line chats' ids
FIRST_CHAT_ID = 700_000


@dataclass
class PersonalDialogs:
    """Messages the bots sent to employees, their keyboards and the bots' commands."""

    messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    commands: dict[tuple[int, str], dict[str, Any]] = field(default_factory=dict)
    taps: list[dict[str, Any]] = field(default_factory=list)
    next_message_id: int = FIRST_MESSAGE_ID
    next_command_id: int = 40

    def register_command(self, bot_id: int, fields: dict[str, Any]) -> dict[str, Any]:
        """Idempotent per bot and command, as the docs say."""
        name = str(fields.get("command") or "").strip().lstrip("/")
        if not name:
            raise RestError(400, "COMMAND_REQUIRED", "Command is required")
        found = self.commands.get((bot_id, name))
        if found is None:
            found = {"id": self.next_command_id, "botId": bot_id, "command": f"/{name}",
                     "common": bool(fields.get("common")), "hidden": bool(fields.get("hidden")),
                     "extranetSupport": False}  # fmt: skip
            self.next_command_id += 1
            self.commands[(bot_id, name)] = found
        return found

    def send(self, bot_id: int, user_id: int, text: str, keyboard: list[Any]) -> int:
        message_id = self.next_message_id
        self.next_message_id += 1
        self.messages[message_id] = {
            "id": message_id, "bot_id": bot_id, "user_id": user_id, "text": text,
            "keyboard": keyboard, "pressed": set(), "at": time.time(),
        }  # fmt: skip
        return message_id

    def to_user(self, user_id: int) -> list[dict[str, Any]]:
        """What an employee sees from the bots, oldest first."""
        return [m for m in self.messages.values() if m["user_id"] == user_id]
