"""Writing a client's consent and opt-out, and reading them back for the CRM tab.

Records are appended, never edited (the proof of what the client agreed to and when): an
advertising consent carries the text the client was shown, an opt-out the words the client
wrote (bounded, never interpreted). The one exception is ``confirmed_at`` of an opt-out, set
once when its single confirmation is claimed (:func:`claim_confirmation`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from b24app.consent.contact import Contact
from b24app.consent.policy import decide
from b24app.consent.policy import latest
from b24app.storage.db import rows_affected
from b24app.storage.models import ConsentKind
from b24app.storage.models import ConsentRecord
from b24app.storage.models import utc_now

MAX_TEXT = 1000  # a consent's wording or a client's «СТОП» message, as stored


def _record(session: Session, portal_id: int, kind: str, contact: Contact, *, source: str,
            channel: str, text: str, by: int | None, now: dt.datetime) -> ConsentRecord:  # fmt: skip
    row = ConsentRecord(
        portal_id=portal_id, kind=kind, contact_id=contact.contact_id, chat_id=contact.chat_id,
        chat_user_id=contact.chat_user_id, phone=contact.phone, source=source[:16],
        channel=channel[:64], text=text[:MAX_TEXT], recorded_by=by, recorded_at=now,
    )  # fmt: skip
    session.add(row)
    session.flush()
    return row


def record_opt_out(
    session: Session, portal_id: int, contact: Contact, *, source: str, channel: str = "",
    text: str = "", by: int | None = None, now: dt.datetime | None = None,
) -> ConsentRecord:  # fmt: skip
    """The client's opt-out: recorded when the client is not opted out already; otherwise
    the standing opt-out is returned (a second «СТОП» changes nothing, is not confirmed
    again)."""
    moment = now or utc_now()
    if decide(latest(session, portal_id, contact), "service"):
        return _record(session, portal_id, ConsentKind.OPT_OUT, contact, source=source,
                       channel=channel, text=text, by=by, now=moment)  # fmt: skip
    standing = session.scalar(
        select(ConsentRecord)
        .where(
            ConsentRecord.portal_id == portal_id,
            ConsentRecord.kind == ConsentKind.OPT_OUT,
            contact.where(),
        )  # fmt: skip
        .order_by(ConsentRecord.recorded_at.desc(), ConsentRecord.id.desc())
        .limit(1)
    )
    assert standing is not None  # decide() said opted out: an opt-out exists
    return standing


def record_consent(
    session: Session, portal_id: int, contact: Contact, *, source: str, text: str,
    channel: str = "", by: int | None = None, now: dt.datetime | None = None,
) -> ConsentRecord:  # fmt: skip
    """The client's advertising consent, with the ``text`` the client was shown."""
    if not contact.known:
        raise ValueError("a consent needs a client: a contact, a chat or a phone")
    if not text.strip():
        raise ValueError("a consent needs the text the client was shown")
    return _record(session, portal_id, ConsentKind.ADVERTISING, contact, source=source,
                   channel=channel, text=text, by=by, now=now or utc_now())  # fmt: skip


def claim_confirmation(session: Session, record_id: int, now: dt.datetime | None = None) -> bool:
    """Claim the one confirmation of opt-out ``record_id`` (True: this caller sends it).
    Commit before sending; :func:`release_confirmation` when the send must be retried."""
    claimed = session.execute(
        update(ConsentRecord)
        .where(ConsentRecord.id == record_id, ConsentRecord.confirmed_at.is_(None))
        .values(confirmed_at=now or utc_now())
        .execution_options(synchronize_session=False)
    )
    return rows_affected(claimed) == 1


def release_confirmation(session: Session, record_id: int) -> None:
    session.execute(
        update(ConsentRecord)
        .where(ConsentRecord.id == record_id)
        .values(confirmed_at=None)
        .execution_options(synchronize_session=False)
    )


def history(session: Session, portal_id: int, contact: Contact) -> list[ConsentRecord]:
    """The client's records, newest first (the CRM tab, the export)."""
    if not contact.known:
        return []
    return list(
        session.scalars(
            select(ConsentRecord)
            .where(ConsentRecord.portal_id == portal_id, contact.where())
            .order_by(ConsentRecord.recorded_at.desc(), ConsentRecord.id.desc())
        )
    )


def summary(session: Session, portal_id: int, contact: Contact) -> dict[str, Any]:
    """What the tab shows: may the app send service / advertising messages, and the records."""
    found = latest(session, portal_id, contact)
    return {
        "known": contact.known,
        "service": decide(found, "service"),
        "advertising": decide(found, "advertising"),
        "records": history(session, portal_id, contact),
    }
