"""The assistant as an Open Lines chatbot (imbot.v2): what install registers, and the calls
it makes as the bot. No Flask here.

Chatbots 2.0 (``imbot.v2.*``) is the current API; v1 (``imbot.*``) is deprecated and a v1 bot
never receives ``ONIMBOTV2*`` events. The bot is registered by the app
(OAuth), so no ``botToken`` is passed: "with OAuth the bot is tied to the app through
``client_id``". ``type=openline`` makes it an Open Lines bot; ``eventMode=webhook`` makes
Bitrix24 POST ``ONIMBOTV2MESSAGEADD``/``ONIMBOTV2JOINCHAT`` (form-encoded, every scalar a
string) to ``/assistant/events``.

Assumed where the docs are silent (docs pages not in our copy): ``imbot.v2.Bot.list`` returns
the bots as a list or under ``bots``; ``imbot.v2.Bot.register`` returns the new bot as an id,
``{"id"}`` or ``{"bot": {"id"}}`` — all accepted; the avatar goes as base64 in
``properties.avatar``; keyboard buttons use the documented ``TEXT``/``ACTION``/
``ACTION_VALUE`` keys (``ACTION=SEND``: a tap sends the text as the client's message).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from b24app.i18n import translate

BOT_CODE = "b24app_assistant"
EVENTS_PATH = "/assistant/events"
# A 1×1 green PNG: a placeholder avatar until the vendor draws one.
AVATAR_PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d4944415478da63d0f9cf000003de01c1cd1d4a1a0000000049454e44ae426082"
    )
).decode()


def bot_fields(public_url: str, lang: str) -> dict[str, Any]:
    """``fields`` of ``imbot.v2.Bot.register`` (also used for ``update``)."""
    return {
        "code": BOT_CODE,
        "type": "openline",
        "eventMode": "webhook",
        "webhookUrl": public_url.rstrip("/") + EVENTS_PATH,
        "properties": {
            "name": translate(lang, "assistant.bot_name"),
            "workPosition": translate(lang, "assistant.bot_position"),
            "color": "GREEN",
            "avatar": AVATAR_PNG,
        },
    }


def fields_hash(fields: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def bots_of(result: Any) -> list[dict[str, Any]]:
    if isinstance(result, dict):
        result = result.get("bots", result.get("items", list(result.values())))
    return [b for b in result or [] if isinstance(b, dict)]


def find_bot(result: Any) -> dict[str, Any] | None:
    """Our bot in an ``imbot.v2.Bot.list`` result."""
    return next((b for b in bots_of(result) if b.get("code") == BOT_CODE), None)


def int_id(result: Any, wrapper: str | None = None) -> int | None:
    """An id answered as a bare integer, ``{"id": N}`` or ``{wrapper: {"id": N}}``."""
    if isinstance(result, dict):
        result = result.get(wrapper, result) if wrapper else result
        if isinstance(result, dict):
            result = result.get("id")
    try:
        return int(result) if result is not None else None
    except (TypeError, ValueError):
        return None


def bot_id_of(result: Any) -> int | None:
    """The bot id in an ``imbot.v2.Bot.register`` result (or a listed bot)."""
    return int_id(result, "bot")


def plan(
    listed: Any, public_url: str, lang: str, previous: dict[str, Any]
) -> tuple[dict[str, tuple[str, dict[str, Any]]], int | None, str]:
    """The writes that bring the bot to its registered state, the known bot id and the hash.

    Nothing to write when our bot exists with the same definition (a reinstall); an app update
    that changed the definition (name, handler URL) updates it in place.
    """
    fields = bot_fields(public_url, lang)
    digest = fields_hash(fields)
    existing = find_bot(listed)
    if existing is None:
        return {"bot:register": ("imbot.v2.Bot.register", {"fields": fields})}, None, digest
    bot_id = bot_id_of(existing)
    known = (previous.get("assistant_bot") or {}).get("hash")
    if known != digest or existing.get("webhookUrl") not in (None, fields["webhookUrl"]):
        update = {k: v for k, v in fields.items() if k != "code"}
        return (
            {"bot:update": ("imbot.v2.Bot.update", {"botId": bot_id, "fields": update})},
            bot_id,
            digest,
        )
    return {}, bot_id, digest


def keyboard(buttons: list[str], bot_id: int) -> dict[str, Any] | None:
    """Buttons that send their text back as the client's message, one per row."""
    if not buttons:
        return None
    rows: list[dict[str, Any]] = []
    for text in buttons:
        if rows:
            rows.append({"TYPE": "NEWLINE"})
        rows.append({"TEXT": text, "ACTION": "SEND", "ACTION_VALUE": text, "DISPLAY": "LINE"})
    return {"BOT_ID": bot_id, "BUTTONS": rows}
