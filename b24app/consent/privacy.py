"""A client's data in the app, exported or erased on the portal administrator's request
(152-ФЗ: the subject's access and deletion; docs/privacy.md says what is kept and why).

Whose data: the client of a journey — its CRM contact and the open-line chats of its
appointments and assistant dialogs (:func:`client_of_journey`). What the app holds of a
client: consent records, journeys (ids, dates, stage, source: no name, phone or text),
appointments (the client's name, the service, the chat) with their reminder attempts, and
the assistant's dialogs (what the client typed: name, phone, wishes) with their turns.

Erasure removes the personal data and keeps what the portal's figures and the law need:
dialogs and turns are deleted; appointments stay without the client's name (their CRM and
chat ids stay); the advertising consents are deleted; an opt-out is recorded (source
``admin``) and the opt-outs keep their time and identifiers but lose the client's words — so the app never writes to an erased
client again and can show it honoured the «СТОП». Journeys stay (ids only) for the KPIs.
The REST log (requests as sent, tokens masked) is purged by its retention
(``B24APP_REST_LOG_DAYS``), not per client. The CRM itself is the portal's: the
administrator erases the contact there.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete
from sqlalchemy import false
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from b24app.consent.contact import Contact
from b24app.consent.records import history
from b24app.consent.records import record_opt_out
from b24app.storage.models import Appointment
from b24app.storage.models import AssistantDialog
from b24app.storage.models import AssistantTurn
from b24app.storage.models import ConsentKind
from b24app.storage.models import ConsentRecord
from b24app.storage.models import Journey
from b24app.storage.models import ReminderAttempt
from b24app.storage.models import utc_now


def client_of_journey(session: Session, portal_id: int, journey: Journey) -> Contact:
    """The journey's client: its contact, else the chat of its latest appointment or dialog."""
    chat_id = session.scalar(
        select(Appointment.chat_id)
        .where(
            Appointment.portal_id == portal_id,
            Appointment.journey_id == journey.id,
            Appointment.chat_id.is_not(None),
        )  # fmt: skip
        .order_by(Appointment.starts_at.desc())
        .limit(1)
    )
    dialog = _dialogs_query(portal_id, journey.contact_id, [], journey)
    found = session.scalars(dialog.order_by(AssistantDialog.id.desc()).limit(1)).first()
    if chat_id is None and found is not None and found.chat_id.isdigit():
        chat_id = int(found.chat_id)
    return Contact(
        contact_id=journey.contact_id,
        chat_id=chat_id,
        chat_user_id=found.client_user_id if found is not None else None,
    )


def _dialogs_query(portal_id: int, contact_id: int | None, chats: list[int],
                   journey: Journey | None = None) -> Any:  # fmt: skip
    parts = []
    if contact_id:
        parts.append(AssistantDialog.contact_id == contact_id)
    if chats:
        parts.append(AssistantDialog.chat_id.in_([str(c) for c in chats]))
    if journey is not None and journey.lead_id:
        parts.append(AssistantDialog.lead_id == journey.lead_id)
    if journey is not None and journey.deal_id:
        parts.append(AssistantDialog.deal_id == journey.deal_id)
    return select(AssistantDialog).where(
        AssistantDialog.portal_id == portal_id, or_(*parts) if parts else false()
    )


def _appointments(session: Session, portal_id: int, contact: Contact,
                  journeys: list[int]) -> list[Appointment]:  # fmt: skip
    parts = []
    if contact.contact_id:
        parts.append(Appointment.contact_id == contact.contact_id)
    if contact.chat_id:
        parts.append(Appointment.chat_id == contact.chat_id)
    if journeys:
        parts.append(Appointment.journey_id.in_(journeys))
    return list(
        session.scalars(
            select(Appointment)
            .where(Appointment.portal_id == portal_id, or_(*parts) if parts else false())
            .order_by(Appointment.starts_at)
        )
    )


def _journeys(
    session: Session, portal_id: int, contact: Contact, journey: Journey | None
) -> list[Journey]:
    rows = {journey.id: journey} if journey is not None else {}
    if contact.contact_id:
        for row in session.scalars(
            select(Journey).where(
                Journey.portal_id == portal_id, Journey.contact_id == contact.contact_id
            )
        ):
            rows[row.id] = row
    return list(rows.values())


def _scope(session: Session, portal_id: int, contact: Contact,
           journey: Journey | None) -> tuple[list[Journey], list[Appointment], list[AssistantDialog]]:  # fmt: skip
    journeys = _journeys(session, portal_id, contact, journey)
    appointments = _appointments(session, portal_id, contact, [j.id for j in journeys])
    chats = sorted({a.chat_id for a in appointments if a.chat_id} | (
        {contact.chat_id} if contact.chat_id else set()))  # fmt: skip
    dialogs = list(session.scalars(_dialogs_query(portal_id, contact.contact_id, chats, journey)))
    return journeys, appointments, dialogs


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _row(row: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: _iso(getattr(row, name)) for name in names}


_CONSENT = ("kind", "source", "channel", "chat_id", "contact_id", "chat_user_id", "phone", "text",
            "recorded_by", "recorded_at", "confirmed_at")  # fmt: skip
_JOURNEY = ("lead_id", "deal_id", "contact_id", "entity_type", "stage", "source_id", "channel",
            "utm_source", "utm_campaign", "created_at", "confirmed_at", "came_at", "no_show_at",
            "booking_at")  # fmt: skip
_APPOINTMENT = ("id", "booking_id", "lead_id", "deal_id", "contact_id", "client_name", "service",
                "starts_at", "status", "chat_id", "reminded_via", "reminded_at", "confirmed_at",
                "cancelled_at", "created_at")  # fmt: skip
_ATTEMPT = ("level", "channel", "ok", "error", "attempted_at")
_DIALOG = ("chat_id", "channel", "client_user_id", "lead_id", "deal_id", "contact_id", "state",
           "slots", "booking_start", "created_at")  # fmt: skip
_TURN = ("message_id", "understood", "reply", "received_at", "answered_at")


def export_client(session: Session, portal_id: int, contact: Contact,
                  journey: Journey | None = None) -> dict[str, Any]:  # fmt: skip
    """Everything the app holds of the client, as JSON-ready data (module docstring)."""
    journeys, appointments, dialogs = _scope(session, portal_id, contact, journey)
    attempts = session.scalars(
        select(ReminderAttempt)
        .where(ReminderAttempt.appointment_id.in_([a.id for a in appointments] or [0]))
        .order_by(ReminderAttempt.attempted_at)
    ).all()
    turns = session.scalars(
        select(AssistantTurn)
        .where(AssistantTurn.dialog_id.in_([d.id for d in dialogs] or [0]))
        .order_by(AssistantTurn.received_at)
    ).all()
    return {
        "client": _row(contact, ("contact_id", "chat_id", "chat_user_id", "phone")),
        "exported_at": _iso(utc_now()),
        "consents": [_row(r, _CONSENT) for r in history(session, portal_id, contact)],
        "journeys": [_row(j, _JOURNEY) for j in journeys],
        "appointments": [
            {
                **_row(a, _APPOINTMENT),
                "attempts": [_row(x, _ATTEMPT) for x in attempts if x.appointment_id == a.id],
            }
            for a in appointments
        ],  # fmt: skip
        "assistant_dialogs": [
            {**_row(d, _DIALOG), "turns": [_row(t, _TURN) for t in turns if t.dialog_id == d.id]}
            for d in dialogs
        ],  # fmt: skip
    }


def erase_client(session: Session, portal_id: int, contact: Contact, *, by: int,
                 journey: Journey | None = None) -> dict[str, int]:  # fmt: skip
    """Erase the client's personal data from the app (module docstring: what stays and why);
    returns what was removed, by kind."""
    _, appointments, dialogs = _scope(session, portal_id, contact, journey)
    dialog_ids = [d.id for d in dialogs] or [0]
    turns = session.execute(delete(AssistantTurn).where(AssistantTurn.dialog_id.in_(dialog_ids)))
    removed_dialogs = session.execute(
        delete(AssistantDialog).where(AssistantDialog.id.in_(dialog_ids))
    )
    for appt in appointments:
        appt.client_name = None  # its ids stay: the reports, and the opt-out's match
    consents = session.execute(
        delete(ConsentRecord).where(
            ConsentRecord.portal_id == portal_id,
            contact.where(),
            ConsentRecord.kind == ConsentKind.ADVERTISING,
        )  # fmt: skip
    )
    record_opt_out(session, portal_id, contact, source="admin", by=by)
    session.execute(
        update(ConsentRecord)
        .where(ConsentRecord.portal_id == portal_id, contact.where())
        .values(text="")
        .execution_options(synchronize_session=False)
    )
    return {
        "assistant_turns": _count(turns),
        "assistant_dialogs": _count(removed_dialogs),
        "appointment_names": len(appointments),
        "consents": _count(consents),
    }


def _count(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
