"""The assistant's bot events: ``POST /assistant/events`` (the bot's ``webhookUrl``).

Parse → validate → authenticate the portal (``auth[application_token]``) → check the bot is
the one this app registered on that portal → enqueue one job on the ``assistant`` queue (a
queue nothing slow shares) under a deterministic id → answer 200 at once. The event is a
claim (any employee can post one with the ``application_token``): the job reads the message,
its author and the chat's CRM binding back from Bitrix24 before anything changes
(:func:`b24app.assistant.service.verified_turn`). Bitrix24 does not promise to retry a v2
webhook delivery, so the view never does slow work.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint
from flask.typing import ResponseReturnValue

from b24app import logs
from b24app.appointments import question
from b24app.assistant import jobs
from b24app.assistant.schemas import BotEventSchema
from b24app.assistant.turns import Turn
from b24app.errors import ApiError
from b24app.web import authenticate
from b24app.web import read_form
from b24app.web import services

log = logging.getLogger(__name__)

bp = Blueprint("assistant", __name__)


@bp.post("/events")
def event() -> ResponseReturnValue:
    """Accept one bot event; 200 ``{"status": "queued" | "duplicate" | "ignored"}``.

    :raise 400: malformed form or payload. :raise 401: missing credentials.
    :raise 403: unknown portal or wrong ``application_token`` (one answer for both).
    :raise 404: not this app's bot on the (authenticated) portal.
    """
    received = time.time()
    payload = BotEventSchema().load(read_form())
    auth = payload["auth"]
    portal = authenticate(auth["member_id"], auth["application_token"])
    data = payload["data"]
    bot = data["bot"]
    ours = ((portal.registration or {}).get("assistant_bot") or {}).get("id")
    bot_member = (bot.get("auth") or {}).get("member_id")
    if not ours or int(ours) != bot["id"] or (bot_member and bot_member != portal.member_id):
        raise ApiError(404, "Unknown bot.")
    chat = data["chat"]
    if payload["event"] == "ONIMBOTV2COMMANDADD":
        return {"status": _command(portal.member_id, data)}
    if chat["entityType"] != "LINES":
        return {"status": "ignored"}  # the assistant only serves Open Lines chats
    user = data["user"]
    if payload["event"] == "ONIMBOTV2MESSAGEADD":
        message = data.get("message")
        if message is None:
            raise ApiError(400, "data[message] is required.", {"data": {"message": ["missing"]}})
        if user.get("bot") in ("1", "Y", "true") or user.get("connector") in ("0", "N", "false"):
            return {"status": "ignored"}  # our own, another bot's or an operator's message
        message_id, text = message["id"], message["text"]
    else:
        message_id, text = 0, ""  # the bot joined the chat: greet
    turn = Turn(
        member_id=portal.member_id,
        bot_id=bot["id"],
        chat_id=str(chat["id"]),
        dialog_id=chat.get("dialogId") or f"chat{chat['id']}",
        message_id=message_id,
        text=text,
        user_id=int(user.get("id") or 0),
        user_name=str(user.get("name") or ""),
        entity_id=chat["entityId"],
        entity_data2=chat["entityData2"],
        received_at=received,
    )
    with logs.bind(member_id=portal.member_id, chat_id=turn.chat_id):
        queued = jobs.enqueue_turn(services(), turn)
    return {"status": "queued" if queued else "duplicate"}


def _command(member_id: str, data: dict[str, Any]) -> str:
    """A button of the outcome question (b24app/appointments/question.py): queued with the
    pressing user, the message and the params; the job checks it answers a question asked."""
    command, message = data.get("command") or {}, data.get("message") or {}
    if str(command.get("command") or "").lstrip("/") != question.COMMAND or not message:
        return "ignored"
    queued = question.enqueue_answer(services(), member_id, int((data["user"] or {}).get("id") or 0),
                                     int(message["id"]), str(command.get("params") or ""))  # fmt: skip
    return "queued" if queued else "duplicate"
