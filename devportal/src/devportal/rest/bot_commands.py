"""``imbot.v2.Command.register`` and a bot's messages to an employee's personal dialog
(``imbot.v2.Chat.Message.send`` with a numeric ``dialogId``, reached from
:func:`devportal.rest.imbot.message_send`). State: :mod:`devportal.bot_dialogs`.
"""

from __future__ import annotations

from typing import Any

from devportal.errors import RestError
from devportal.rest import as_dict
from devportal.rest import as_list
from devportal.rest import Ctx
from devportal.rest import method


def _own_bot(ctx: Ctx) -> dict[str, Any]:
    try:
        bot = ctx.portal.imbot.bots.get(int(str(ctx.param("botId", "BOT_ID"))))
    except (TypeError, ValueError):
        bot = None
    if bot is None:
        raise RestError(400, "BOT_NOT_FOUND", "Bot not found")
    if bot.get("app") != ctx.portal.emu.client_id:
        raise RestError(403, "BOT_OWNERSHIP_ERROR", "Bot is registered by another application")
    return bot


@method("imbot.v2.command.register")
def command_register(ctx: Ctx) -> dict[str, Any]:
    bot = _own_bot(ctx)
    fields = as_dict(ctx.param("fields"))
    return {"command": dict(ctx.portal.imbot.personal.register_command(int(bot["id"]), fields))}


def personal_send(ctx: Ctx, bot: dict[str, Any]) -> dict[str, Any]:
    """A message with an optional keyboard to user ``dialogId`` (an unknown user: an error)."""
    user_id = int(str(ctx.param("dialogId", "DIALOG_ID")))
    if user_id not in ctx.portal.users:
        raise RestError(400, "DIALOG_ID_ERROR", "Dialog not found")
    fields = as_dict(ctx.param("fields"))
    text = str(fields.get("message") or "").strip()
    if not text:
        raise RestError(400, "MESSAGE_EMPTY", "Message can't be empty")
    keyboard = fields.get("keyboard")
    raw = as_dict(keyboard).get("BUTTONS") if isinstance(keyboard, dict) else keyboard
    buttons = as_list(raw)
    if any(not isinstance(b, dict) for b in buttons):
        raise RestError(400, "KEYBOARD_ERROR", "Wrong keyboard")
    message_id = ctx.portal.imbot.personal.send(int(bot["id"]), user_id, text[:20000], buttons)
    return {"id": message_id, "uuidMap": {}}
