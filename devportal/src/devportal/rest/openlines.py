"""``imopenlines.crm.chat.get`` / ``getLastId`` / ``user.add`` and ``imopenlines.crm.message.add``
(the client's chat bound to a CRM item), and ``imopenlines.session.history.get`` (how the app
reads a chat's messages and their authors back). Errors have string codes here; ``CHAT_ID``
comes out as a string."""

from __future__ import annotations

from typing import Any

from devportal.errors import argument_error
from devportal.errors import RestError
from devportal.imbot import entity_data2
from devportal.imbot import entity_id
from devportal.openlines import CRM_TYPES
from devportal.openlines import OpenLineChat
from devportal.rest import Ctx
from devportal.rest import method


def _item(ctx: Ctx, *, empty_code: str = "ERROR_ARGUMENT") -> tuple[str, int]:
    crm_type = str(ctx.param("CRM_ENTITY_TYPE") or "").lower()
    raw = ctx.param("CRM_ENTITY")
    if not crm_type or raw in (None, ""):
        if empty_code == "CRM_CHAT_EMPTY_CRM_DATA":
            raise RestError(400, empty_code, "Empty CRM data")
        raise argument_error("CRM_ENTITY_TYPE" if not crm_type else "CRM_ENTITY")
    if crm_type not in CRM_TYPES:
        raise argument_error("CRM_ENTITY_TYPE", "Wrong CRM entity type")
    try:
        return crm_type, int(str(raw))
    except ValueError:
        raise argument_error("CRM_ENTITY", "CRM_ENTITY must be an integer") from None


def _chat(ctx: Ctx, crm_type: str, crm_id: int) -> OpenLineChat:
    try:
        chat_id = int(str(ctx.param("CHAT_ID")))
    except (TypeError, ValueError):
        raise argument_error("CHAT_ID") from None
    chat = ctx.portal.chats.lines.chats.get(chat_id)
    if chat is None or (crm_type, crm_id) not in chat.bindings:
        raise RestError(
            400, "CHAT_NOT_IN_CRM", "Chat does not belong to the CRM entity being checked"
        )
    return chat


@method("imopenlines.crm.chat.get")
def chat_get(ctx: Ctx) -> list[dict[str, str]]:
    crm_type, crm_id = _item(ctx)
    active_only = str(ctx.param("ACTIVE_ONLY") or "Y").upper() != "N"
    chats = ctx.portal.chats.lines.for_item(crm_type, crm_id, active_only=active_only)
    return [c.as_rest() for c in chats]


@method("imopenlines.crm.chat.getlastid")
def chat_last_id(ctx: Ctx) -> int:
    crm_type, crm_id = _item(ctx, empty_code="CRM_CHAT_EMPTY_CRM_DATA")
    chats = ctx.portal.chats.lines.for_item(crm_type, crm_id, active_only=False)
    if not chats:
        raise RestError(400, "CRM_CHAT_EMPTY_CRM_DATA", "Could not find CRM object")
    return max(c.id for c in chats)


@method("imopenlines.crm.chat.user.add")
def chat_user_add(ctx: Ctx) -> int:
    crm_type, crm_id = _item(ctx)
    try:
        user_id = int(str(ctx.param("USER_ID")))
    except (TypeError, ValueError):
        raise argument_error("USER_ID") from None
    if ctx.param("CHAT_ID") in (None, ""):
        chats = ctx.portal.chats.lines.for_item(crm_type, crm_id, active_only=False)
        if not chats:
            return 0
        chat = max(chats, key=lambda c: c.id)
    else:
        chat = _chat(ctx, crm_type, crm_id)
    if user_id not in ctx.portal.people.users:
        raise RestError(400, "CRM_CHAT_USER_NOT_ACTIVE", "User is not active")
    if user_id in chat.members:
        raise RestError(400, "WRONG_REQUEST", "User is already a member of the chat")
    chat.members.add(user_id)
    return chat.id


@method("imopenlines.crm.message.add")
def message_add(ctx: Ctx) -> int:
    crm_type, crm_id = _item(ctx)
    for name in ("USER_ID", "CHAT_ID", "MESSAGE"):
        if ctx.param(name) in (None, ""):
            raise argument_error(name)
    chat = _chat(ctx, crm_type, crm_id)
    user_id = int(str(ctx.param("USER_ID")))
    if user_id not in chat.members or user_id not in ctx.portal.people.users:
        raise RestError(403, "CANCELED", "You cannot send messages to the specified chat")
    kind = "bot" if ctx.portal.people.users[user_id].get("IS_BOT") else "operator"
    message = ctx.portal.chats.lines.add_message(chat, user_id, kind, str(ctx.param("MESSAGE")))
    ctx.portal.chats.lines.connectors.on_send(chat, message)  # delivered or not: marked later
    if ctx.portal.chats.lines.reaches_app(chat):  # only the app's own connector's lines
        ctx.emit("ONOPENLINEMESSAGEADD", ctx.portal.chats.lines.event_data(chat, message))
    return message.id


def _history_user(ctx: Ctx, chat: OpenLineChat, user_id: int) -> dict[str, Any]:
    """``users.<id>`` of ``session.history.get``: the client is the connector user."""
    bot = ctx.portal.imbot.bots.get(user_id)
    user = ctx.portal.people.users.get(user_id) or {}
    if user_id == chat.client_user_id:
        name, first, last = f"Guest {user_id}", "Guest", ""
    elif bot is not None:
        title = str((bot.get("properties") or {}).get("name") or bot["code"])
        name, first, last = title, title, ""
    else:
        first, last = str(user.get("NAME") or ""), str(user.get("LAST_NAME") or "")
        name = f"{first} {last}".strip() or str(user_id)
    client = user_id == chat.client_user_id
    is_bot = bot is not None or bool(user.get("IS_BOT"))
    return {
        "id": str(user_id), "name": name, "active": True, "firstName": first, "lastName": last,
        "workPosition": None, "color": "#4ba984", "avatar": "", "avatarId": None,
        "birthday": "", "gender": "", "phoneDevice": False, "phones": False,
        "extranet": client, "network": False, "bot": is_bot, "connector": client,
        "profile": f"/company/personal/user/{user_id}/",
        "externalAuthId": "imconnector" if client else ("bot" if is_bot else "socservices"),
        "status": None, "idle": False, "lastActivityDate": ctx.portal.now_str(),
        "mobileLastDate": False, "desktopLastDate": False, "departments": [], "absent": False,
        "type": "bot" if is_bot else "user", "services": None,
        "botData": {"code": bot["code"], "type": bot["type"]} if bot is not None else None,
    }  # fmt: skip


@method("imopenlines.session.history.get")
def session_history_get(ctx: Ctx) -> dict[str, Any]:
    """The chat's (only) session, in the documented shape (``imopenlines-session-history-
    get.md``): messages keyed by id with ``senderid`` (0 = system), the authors in ``users``
    (``connector: true`` for the client, ``bot: true`` for bots), the chat's ``entityData*``.
    The caller need not be a chat member ("any user")."""
    session_raw, chat_raw = ctx.param("SESSION_ID"), ctx.param("CHAT_ID")
    if session_raw in (None, "") and chat_raw in (None, ""):
        raise RestError(400, "MISSING_REQUIRED_PARAM", "Session ID or Chat ID must be provided")
    chats = ctx.portal.chats.lines.chats
    try:
        if session_raw not in (None, ""):
            wanted = int(str(session_raw))
            chat = next((c for c in chats.values() if c.session_id == wanted), None)
        else:
            chat = chats.get(int(str(chat_raw)))
    except ValueError:
        chat = None
    if chat is None:
        raise RestError(
            400, "INVALID_SESSION_ID", "Unable to determine session ID from provided parameters"
        )
    key = f"chat{chat.id}"
    messages: dict[str, dict[str, Any]] = {
        str(m.id): {
            "id": str(m.id), "chatid": str(chat.id),
            "senderid": "0" if m.kind == "system" else str(m.author_id),
            "recipientid": key, "date": ctx.portal.now_str(m.created),
            "text": m.text, "textlegacy": m.text,
            "params": ctx.portal.openlines.connectors.params(m.id) or [],
        }
        for m in chat.messages
    }  # fmt: skip
    authors = {m.author_id for m in chat.messages if m.kind != "system" and m.author_id}
    users = {str(u): _history_user(ctx, chat, u) for u in sorted(authors | chat.members)}
    ids = {t: i for t, i in chat.bindings}
    data1 = (f"Y|{'LEAD' if 'lead' in ids else 'NONE'}|{ids.get('lead', 0)}|N|N|"
             f"{chat.session_id}|{int(chat.messages[0].created) if chat.messages else 0}|0|0|0")  # fmt: skip
    return {
        "chatId": chat.id, "canJoin": "Y", "canVoteHead": "N", "sessionId": chat.session_id,
        "sessionVoteHead": 0, "sessionCommentHead": None, "userId": key,
        "message": messages, "usersMessage": {key: list(reversed(messages))}, "users": users,
        "openlines": {"canvoteashead": {str(chat.line_id): False}},
        "userInGroup": [], "woUserInGroup": [],
        "chat": {str(chat.id): {
            "id": str(chat.id), "parentChatId": 0, "parentMessageId": 0,
            "name": f"Guest {chat.client_user_id}", "owner": "0", "color": "#ba9c7b",
            "extranet": False, "avatar": "", "call": "0", "callNumber": "",
            "entityType": "LINES", "entityId": entity_id(chat), "entityData1": data1,
            "entityData2": entity_data2(chat), "entityData3": "",
            "messageCount": len(chat.messages), "public": "",
            "muteList": {str(u): False for u in sorted(chat.members)},
            "managerList": [], "dateCreate": ctx.portal.now_str(
                chat.messages[0].created if chat.messages else None),
            "type": "lines", "entityLink": {"type": "LINES", "url": "", "id": entity_id(chat)},
            "permissions": {"manageUsersAdd": "member", "manageUsersDelete": "manager",
                            "manageUi": "member", "manageSettings": "owner",
                            "manageMessages": "member", "canPost": "member"},
            "textFieldEnabled": True, "backgroundId": None, "messageType": "L", "isNew": False,
        }},
        "userBlockChat": {str(chat.id): {str(u): False for u in sorted(chat.members)}},
        "userInChat": {str(chat.id): sorted(chat.members)},
        "files": [],
    }  # fmt: skip
