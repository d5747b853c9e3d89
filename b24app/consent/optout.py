"""A client's «СТОП» read in a chat: recorded, and confirmed to the client once.

Called with a message Bitrix24 confirmed as the client's (the reply path of the reminders,
b24app/appointments/replies.py; the assistant's turn, b24app/assistant/service.py): the event
itself is only a claim. The confirmation is claimed in the database before it is sent, so two
workers reading two «СТОП» of one client send one; a send that fails for a reason a retry may
cure releases the claim and raises (the caller's job retries).
"""

from __future__ import annotations

import logging

from b24app import i18n
from b24app.bitrix.client import BitrixClient
from b24app.consent.contact import Contact
from b24app.consent.records import claim_confirmation
from b24app.consent.records import record_opt_out
from b24app.consent.records import release_confirmation
from b24app.context import Services
from b24app.reach import is_transient
from b24app.reach.chat import send_chat

log = logging.getLogger(__name__)


def confirmation_text(lang: str) -> str:
    return i18n.translate("en" if lang.startswith("en") else "ru", "consent.optout_confirm")


def opt_out(
    services: Services, portal_id: int, contact: Contact, *, channel: str, text: str
) -> int | None:
    """Record the opt-out (or find the standing one) and claim its confirmation: the record
    id when this caller is to confirm it, None when it was confirmed already."""
    with services.db() as session:
        record = record_opt_out(session, portal_id, contact, source="chat", channel=channel,
                                text=text)  # fmt: skip
        record_id = record.id
        claimed = claim_confirmation(session, record_id)
    return record_id if claimed else None


def unclaim(services: Services, record_id: int) -> None:
    """The confirmation was not sent: the next try sends it."""
    with services.db() as session:
        release_confirmation(session, record_id)


def opt_out_in_chat(
    services: Services, client: BitrixClient, portal_id: int, contact: Contact, *,
    target: tuple[str, int] | None, sender: int, lang: str, channel: str, text: str,
) -> str:  # fmt: skip
    """The reminders' reply path: record, then write the one confirmation into the chat
    (``imopenlines.crm.message.add`` as ``sender``, about CRM item ``target``; a chat bound
    to no CRM item cannot be written to that way: recorded, not confirmed)."""
    assert contact.chat_id is not None
    record_id = opt_out(services, portal_id, contact, channel=channel, text=text)
    if record_id is None:
        return "already_opted_out"
    if target is None:
        unclaim(services, record_id)
        return "opted_out_unconfirmed"
    try:
        sent = send_chat(client, [target], sender, confirmation_text(lang),
                         known=(target[0], target[1], contact.chat_id))  # fmt: skip
    except Exception as exc:
        if is_transient(exc):
            unclaim(services, record_id)
        raise
    if not sent.ok:
        log.info("opt-out recorded, its confirmation refused: %s", sent.error)
    return "opted_out"
