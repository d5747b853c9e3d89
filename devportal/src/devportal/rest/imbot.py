"""Chatbots 2.0 (``imbot.v2.*``) and the Open Lines session methods a bot uses
(``imopenlines.bot.session.*``). State lives in :mod:`devportal.imbot`.

Only the app that registered a bot may act as it (``BOT_ID_ERROR`` otherwise). Errors use the
documented string codes. Method names are case-insensitive (the server lower-cases them), so
they are registered lower-case: ``imbot.v2.Bot.register`` is ``imbot.v2.bot.register``. The session methods refuse frame auth in Bitrix24
(``WRONG_AUTH_TYPE``); here every caller is OAuth, so that case does not arise.
"""

from __future__ import annotations

import time
from typing import Any

from devportal.errors import RestError
from devportal.imbot import Session
from devportal.openlines import OpenLineChat
from devportal.rest import as_dict
from devportal.rest import as_list
from devportal.rest import bot_commands
from devportal.rest import Ctx
from devportal.rest import method

BOT_TYPES = ("bot", "supervisor", "personal", "openline")
MAX_MESSAGE = 20000


def _truthy(value: Any) -> bool:
    return str(value).lower() in ("1", "y", "true", "yes")


def _public(bot: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in bot.items() if k != "app"}


def _bot(ctx: Ctx) -> dict[str, Any]:
    raw = ctx.param("botId", "BOT_ID")
    try:
        bot = ctx.portal.imbot.bots.get(int(str(raw)))
    except (TypeError, ValueError):
        bot = None
    if bot is None:
        raise RestError(400, "BOT_ID_ERROR", "Bot not found")
    return bot


def _chat_of_dialog(ctx: Ctx) -> OpenLineChat:
    dialog = str(ctx.param("dialogId", "DIALOG_ID") or "")
    if not dialog:
        raise RestError(400, "DIALOG_ID_EMPTY", "Dialog ID can't be empty")
    chat = None
    if dialog.startswith("chat") and dialog[4:].isdigit():
        chat = ctx.portal.chats.lines.chats.get(int(dialog[4:]))
    if chat is None:
        raise RestError(400, "DIALOG_ID_ERROR", "Dialog not found")
    return chat


def _chat(ctx: Ctx) -> OpenLineChat:
    raw = ctx.param("CHAT_ID", "chatId")
    if raw in (None, ""):
        raise RestError(400, "CHAT_ID_EMPTY", "Chat ID can't be empty")
    try:
        chat = ctx.portal.chats.lines.chats.get(int(str(raw)))
    except ValueError:
        chat = None
    if chat is None:
        raise RestError(400, "CHAT_ID_EMPTY", "Chat not found")
    return chat


@method("imbot.v2.bot.register")
def bot_register(ctx: Ctx) -> dict[str, Any]:
    fields = as_dict(ctx.param("fields"))
    code = str(fields.get("code") or "")
    if not code:
        raise RestError(400, "BOT_CODE_ERROR", "Bot code is required")
    kind = str(fields.get("type") or "bot")
    if kind not in BOT_TYPES:
        raise RestError(400, "BOT_INVALID_TYPE", "Invalid bot type")
    mode = str(fields.get("eventMode") or "fetch")
    if mode not in ("webhook", "fetch"):
        raise RestError(400, "BOT_INVALID_EVENT_MODE", "Invalid event mode")
    if mode == "webhook" and not fields.get("webhookUrl"):
        raise RestError(400, "BOT_WEBHOOK_URL_REQUIRED", "webhookUrl is required")
    imbot = ctx.portal.imbot
    if imbot.by_code(code) is not None:
        raise RestError(400, "BOT_CODE_ERROR", "Bot with this code already exists")
    if len(imbot.bots) >= 100:
        raise RestError(400, "BOT_LIMIT_EXCEEDED", "Bot limit exceeded")
    bot: dict[str, Any] = {
        "id": imbot.next_bot_id,
        "code": code,
        "type": kind,
        "isSupportOpenline": kind == "openline" or _truthy(fields.get("isSupportOpenline")),
        "eventMode": mode,
        "webhookUrl": str(fields.get("webhookUrl") or ""),
        "properties": as_dict(fields.get("properties")),
        "app": ctx.portal.emu.client_id,
    }
    imbot.bots[bot["id"]] = bot
    imbot.next_bot_id += 1
    return {"bot": _public(bot)}


@method("imbot.v2.bot.update")
def bot_update(ctx: Ctx) -> bool:
    bot = _bot(ctx)
    fields = as_dict(ctx.param("fields"))
    for key in ("type", "eventMode", "webhookUrl", "isSupportOpenline"):
        if key in fields:
            bot[key] = fields[key]
    if "properties" in fields:
        bot["properties"] = {**bot["properties"], **as_dict(fields["properties"])}
    return True


@method("imbot.v2.bot.unregister")
def bot_unregister(ctx: Ctx) -> bool:
    bot = _bot(ctx)
    del ctx.portal.imbot.bots[bot["id"]]
    return True


@method("imbot.v2.bot.list")
def bot_list(ctx: Ctx) -> dict[str, Any]:
    return {"bots": [_public(b) for b in ctx.portal.imbot.bots.values()]}


@method("imbot.v2.chat.message.send")
def message_send(ctx: Ctx) -> dict[str, Any]:
    bot = _bot(ctx)
    if str(ctx.param("dialogId", "DIALOG_ID") or "").isdigit():
        return bot_commands.personal_send(ctx, bot)  # a user's personal dialog with the bot
    chat = _chat_of_dialog(ctx)
    fields = as_dict(ctx.param("fields"))
    text = str(fields.get("message") or "").strip()
    if not text:
        raise RestError(400, "MESSAGE_EMPTY", "Message can't be empty")
    if len(text) > MAX_MESSAGE:
        text = text[:MAX_MESSAGE] + " (...)"
    portal = ctx.portal
    message = portal.chats.lines.add_message(chat, int(bot["id"]), "bot", text)
    keyboard = fields.get("keyboard")
    if keyboard:
        buttons = as_list(as_dict(keyboard).get("BUTTONS") if isinstance(keyboard, dict)
                          else keyboard)  # fmt: skip
        for button in buttons:
            if not isinstance(button, dict):
                raise RestError(400, "KEYBOARD_ERROR", "Wrong keyboard")
        portal.imbot.keyboards[message.id] = {"BUTTONS": buttons}
    if _truthy(fields.get("system")):
        portal.imbot.system.add(message.id)
    portal.imbot.sent.append(
        {"chat_id": chat.id, "message_id": message.id, "at": time.time(), "text": text}
    )
    return {"id": message.id, "uuidMap": {}}


@method("imbot.v2.chat.inputaction.notify")
def input_action(ctx: Ctx) -> bool:
    _bot(ctx)
    chat = _chat_of_dialog(ctx)
    ctx.portal.imbot.typing.setdefault(chat.id, []).append(time.time())
    return True


def _bot_session(ctx: Ctx, chat: OpenLineChat) -> Session:
    session = ctx.portal.imbot.session(chat)
    if session.holder != "bot":
        raise RestError(400, "WRONG_CHAT", "Operator is not a bot")
    return session


def _hand_to(ctx: Ctx, chat: OpenLineChat, session: Session, operator: int | None,
             queue: int | None) -> None:  # fmt: skip
    portal = ctx.portal
    session.holder = "operator"
    session.operator_id = operator
    session.queue_id = queue
    session.handed_off_at = time.time()
    if operator:
        chat.members.add(operator)
        who = portal.people.users.get(operator, {}).get("NAME", str(operator))
        text = f"Диалог передан оператору: {who}"
    else:
        text = f"Диалог передан в очередь линии {queue}"
    portal.chats.lines.add_message(chat, 0, "system", text)


@method("imopenlines.bot.session.operator")
def session_operator(ctx: Ctx) -> bool:
    chat = _chat(ctx)
    session = _bot_session(ctx, chat)
    operators = ctx.portal.imbot.operators
    _hand_to(ctx, chat, session, operators[0] if operators else None, None)
    return True


@method("imopenlines.bot.session.transfer")
def session_transfer(ctx: Ctx) -> bool:
    chat = _chat(ctx)
    session = _bot_session(ctx, chat)
    user = ctx.param("USER_ID")
    queue = ctx.param("QUEUE_ID")
    target = str(ctx.param("TRANSFER_ID") or "")
    if user not in (None, ""):
        _hand_to(ctx, chat, session, int(str(user)), None)
    elif queue not in (None, ""):
        _hand_to(ctx, chat, session, None, int(str(queue)))
    elif target:
        if target.startswith("queue"):
            _hand_to(ctx, chat, session, None, int(target[5:]))
        else:
            _hand_to(ctx, chat, session, int(target), None)
    else:
        raise RestError(400, "TRANSFER_ID_EMPTY", "Transfer target can't be empty")
    return True


@method("imopenlines.bot.session.finish")
def session_finish(ctx: Ctx) -> bool:
    chat = _chat(ctx)
    session = ctx.portal.imbot.session(chat)
    session.holder = "closed"
    chat.active = False
    return True


@method("imopenlines.bot.session.message.send")
def session_message_send(ctx: Ctx) -> bool:
    chat = _chat(ctx)
    text = str(ctx.param("MESSAGE") or "")
    if str(ctx.param("NAME") or "DEFAULT").upper() == "DEFAULT" and text:
        ctx.portal.chats.lines.add_message(chat, 0, "system", text)
    return True
