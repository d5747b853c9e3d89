"""Who a client is, for consent: every identifier the app may know of one person.

The key (docs/privacy.md): the CRM contact id when known; else the open-line chat and its
client (the connector user Bitrix24 shows as the chat's author); and the phone, normalised to
E.164 (region RU). A record is stored with all the identifiers known when it was made, and a
look-up matches a record that shares ANY of them: a «СТОП» written in a Telegram chat bound to
contact 5 stops the reminders of every appointment of contact 5, whichever chat or SMS
workflow they would take, and an SMS-only client is still found by phone.
"""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers
from sqlalchemy import ColumnElement
from sqlalchemy import false
from sqlalchemy import or_

from b24app.bitrix.chat_history import parse_bindings
from b24app.storage.models import ConsentRecord


def normalise_phone(raw: str | None) -> str | None:
    """``raw`` as E.164 (``+79161234567``), or None when it is no valid number."""
    text = (raw or "").strip()[:64]
    if not text:
        return None
    try:
        number = phonenumbers.parse(text, "RU")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@dataclass(frozen=True)
class Contact:
    """The identifiers of one client known at a send or a record (any may be None)."""

    contact_id: int | None = None
    chat_id: int | None = None
    chat_user_id: int | None = None
    phone: str | None = None  # E.164, see normalise_phone

    @property
    def known(self) -> bool:
        return any((self.contact_id, self.chat_id, self.chat_user_id, self.phone))

    def where(self) -> ColumnElement[bool]:
        """Records of this client: those sharing any identifier with it."""
        parts = []
        if self.contact_id:
            parts.append(ConsentRecord.contact_id == self.contact_id)
        if self.chat_id:
            parts.append(ConsentRecord.chat_id == self.chat_id)
        if self.chat_user_id:
            parts.append(ConsentRecord.chat_user_id == self.chat_user_id)
        if self.phone:
            parts.append(ConsentRecord.phone == self.phone)
        return or_(*parts) if parts else false()


def contact_of_chat(entity_data2: str, chat_id: int, chat_user_id: int | None) -> Contact:
    """The client of an open-line chat as Bitrix24 reads it back (``entityData2`` =
    ``LEAD|id|COMPANY|id|CONTACT|id|DEAL|id``, b24app/bitrix/chat_history.py)."""
    contact_id = parse_bindings(entity_data2).get("CONTACT")
    return Contact(contact_id=contact_id, chat_id=int(chat_id), chat_user_id=chat_user_id)
