"""THE gate: may the app write to this client now, and for what.

Every send to a client asks :func:`may_message` first, with its purpose:

* ``service`` — about something the client asked for: the reminders of a booking the client
  made, its confirmation request. Allowed unless the client opted out («СТОП») and gave no
  consent after it.
* ``advertising`` — anything the client did not ask for: a re-invitation after a no-show, an
  offer of a freed slot. Allowed only with a recorded advertising consent that is newer than
  the client's last opt-out (38-ФЗ art. 18: prior consent of the recipient).

The answers to the client's own messages in a conversation (the assistant's turns) are not
sends of the app's own accord and do not ask; the one confirmation of an opt-out neither.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.orm import Session

from b24app.consent.contact import Contact
from b24app.storage.models import ConsentKind
from b24app.storage.models import ConsentRecord

Purpose = Literal["service", "advertising"]
PURPOSES: tuple[Purpose, ...] = ("service", "advertising")


def latest(session: Session, portal_id: int, contact: Contact) -> dict[str, dt.datetime]:
    """The time of the client's latest record of each kind (kinds never recorded are absent)."""
    if not contact.known:
        return {}
    rows = session.execute(
        select(ConsentRecord.kind, func.max(ConsentRecord.recorded_at))
        .where(ConsentRecord.portal_id == portal_id, contact.where())
        .group_by(ConsentRecord.kind)
    )
    return {kind: at for kind, at in rows if at is not None}


def decide(found: dict[str, dt.datetime], purpose: Purpose) -> bool:
    """The rule on the latest records (:func:`latest`): a consent lifts an older opt-out,
    an opt-out at the same second as a consent wins."""
    opt_out = found.get(ConsentKind.OPT_OUT)
    consent = found.get(ConsentKind.ADVERTISING)
    consent_after = consent is not None and (opt_out is None or consent > opt_out)
    if purpose == "advertising":
        return consent_after
    if purpose == "service":
        return opt_out is None or consent_after
    raise ValueError(f"unknown purpose {purpose!r}")


def may_message(session: Session, portal_id: int, contact: Contact, purpose: Purpose) -> bool:
    """Whether a message of ``purpose`` may go to ``contact`` now (module docstring)."""
    return decide(latest(session, portal_id, contact), purpose)
