"""A client's «СТОП» read back from a chat, whichever read brought it: the reminder's replies
(b24app/appointments/replies.py) and a freed time's offer (b24app/appointments/refill.py, an
advertising message that says how to stop them). Recorded, and confirmed once in the chat
(b24app/consent/optout.py)."""

from __future__ import annotations

from b24app.appointments.store import active_portal
from b24app.bitrix.chat_history import ClientMessage
from b24app.bitrix.chat_history import crm_target
from b24app.consent.contact import contact_of_chat
from b24app.consent.optout import opt_out_in_chat
from b24app.context import Services
from b24app.settings import load_settings


def opt_out_from_chat(services: Services, member_id: str, message: ClientMessage) -> str:
    """«СТОП» in a chat: the client (the chat's CRM contact, else the chat and its author)
    hears one confirmation, in the chat, about its deal / lead / contact."""
    chat = message.chat
    contact = contact_of_chat(chat.entity_data2, chat.id, message.author_id)
    target = crm_target(chat.entity_data2)
    with services.db() as session:
        portal = active_portal(session, member_id)
        if portal is None:
            return "portal_inactive"
        portal_id, lang = portal.id, portal.lang or "ru"
        sender = int(load_settings(session, portal_id)["appointments"].get("sender_user_id")
                     or portal.installer_user_id or 1)  # fmt: skip
    return opt_out_in_chat(
        services, services.bitrix(member_id), portal_id, contact, target=target, sender=sender,
        lang=lang, channel=chat.entity_id.split("|", 1)[0], text=message.text,
    )  # fmt: skip
