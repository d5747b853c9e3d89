"""``imopenlines.crm.chat.get`` / ``getLastId`` / ``user.add`` and ``imopenlines.crm.message.add``
(CLIENT-LOOP §2.1). Errors have string codes here; ``CHAT_ID`` comes out as a string."""

from __future__ import annotations

from devportal.errors import argument_error
from devportal.errors import RestError
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
    chat = ctx.portal.openlines.chats.get(chat_id)
    if chat is None or (crm_type, crm_id) not in chat.bindings:
        raise RestError(
            400, "CHAT_NOT_IN_CRM", "Chat does not belong to the CRM entity being checked"
        )
    return chat


@method("imopenlines.crm.chat.get")
def chat_get(ctx: Ctx) -> list[dict[str, str]]:
    crm_type, crm_id = _item(ctx)
    active_only = str(ctx.param("ACTIVE_ONLY") or "Y").upper() != "N"
    chats = ctx.portal.openlines.for_item(crm_type, crm_id, active_only=active_only)
    return [c.as_rest() for c in chats]


@method("imopenlines.crm.chat.getlastid")
def chat_last_id(ctx: Ctx) -> int:
    crm_type, crm_id = _item(ctx, empty_code="CRM_CHAT_EMPTY_CRM_DATA")
    chats = ctx.portal.openlines.for_item(crm_type, crm_id, active_only=False)
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
        chats = ctx.portal.openlines.for_item(crm_type, crm_id, active_only=False)
        if not chats:
            return 0
        chat = max(chats, key=lambda c: c.id)
    else:
        chat = _chat(ctx, crm_type, crm_id)
    if user_id not in ctx.portal.users:
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
    if user_id not in chat.members or user_id not in ctx.portal.users:
        raise RestError(403, "CANCELED", "You cannot send messages to the specified chat")
    kind = "bot" if ctx.portal.users[user_id].get("IS_BOT") else "operator"
    message = ctx.portal.openlines.add_message(chat, user_id, kind, str(ctx.param("MESSAGE")))
    ctx.emit("ONOPENLINEMESSAGEADD", ctx.portal.openlines.event_data(chat, message))
    return message.id
