"""The client's answer to a reminder, read from the open-line chat (``ONOPENLINEMESSAGEADD``).

Which event: the docs' ``OnOpenLineMessageAdd`` fires for every new message in an open-line
chat — the client's, an operator's, a system one, and ours sent by
``imopenlines.crm.message.add`` (``imopenlines/openlines/events/index.md``) — with
``data[DATA][0]`` = ``connector`` (``user_id`` = the client), ``chat`` (``id``) and
``message`` (``text``, ``user_id``, ``system``). A message is the client's when it is not
system and its author is the connector's user. ⚠ The event page also says a handler receives
only the events "intended for the connector added by the application": on a real portal the
event may not reach an app that is not the chat's connector; the documented alternative is an
open-line chatbot (``imbot.v2``, ``ONIMBOTV2MESSAGEADD``) — issue 13's assistant can feed the
same :func:`handle_reply`.

Trust: the event is a claim (any employee's frame holds the ``application_token``), so the
view queues only its chat and message ids; :func:`reply_job` reads the message back with the
app's token (:func:`b24app.bitrix.chat_history.verify_client_message`, the rule shared with the
assistant) and goes on only when Bitrix24 shows the chat's client wrote it, with Bitrix24's
text, and only for a message not older than the appointment's last reminder.

Matching is by rules, never free-text guessing (:func:`classify`, the assistant's one reply
classifier): ``confirm`` (1, да, подтверждаю, буду, ok, yes, confirm, 👍, ✅, «+», угу …),
``change`` (2, перенести, отменить, не смогу, не получится, cancel, reschedule, no, 👎, ❌ …),
else ``other``. A reply that says yes and no at once is ``other``.

The answer is applied to the nearest coming appointment whose reminder went to that chat:
confirm → the appointment and its journey are Confirmed and the journey's confirmation SLA
stops; change → a task for the responsible manager and a notification (once per appointment
until it is moved); other → left to the manager (the chat is theirs anyway).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any

from rq import Retry
from rq.exceptions import DuplicateJobError
from sqlalchemy import select
from sqlalchemy.orm import Session

from b24app import context
from b24app.appointments.delivery import client_wrote
from b24app.appointments.store import active_portal
from b24app.assistant.understanding import classify_reply
from b24app.bitrix.chat_history import verify_client_message
from b24app.context import Services
from b24app.leads.journeys import journey_key
from b24app.sla.engine import stop_timers
from b24app.storage.models import Appointment
from b24app.storage.models import AppointmentStatus
from b24app.storage.models import Lead
from b24app.storage.models import utc_now

log = logging.getLogger(__name__)

CLOCK_SLACK = dt.timedelta(minutes=1)  # Bitrix24's clock against ours


def classify(text: str) -> str:
    """``confirm``, ``change`` or ``other`` for a client's reply (ru/en): the assistant's
    reply classifier (:func:`b24app.assistant.understanding.classify_reply`), so a reminder's
    answer and the assistant's turn are read by one rule; cancel and reschedule are a change."""
    verdict = classify_reply(text)
    return "confirm" if verdict == "confirm" else "change" if verdict else "other"


def parse_message(data: dict[str, Any]) -> dict[str, Any] | None:
    """The fields we use from ``data`` of ``ONOPENLINEMESSAGEADD``; None if not a client's.

    :raise ValueError: the connector, chat or message is not an object, or the chat or message
        id is not a number.
    """
    items = data.get("DATA")
    first = items[0] if isinstance(items, list) and items else (
        items.get("0") if isinstance(items, dict) else None
    )  # fmt: skip
    if not isinstance(first, dict):
        return None
    connector = first.get("connector") or {}
    message = first.get("message") or {}
    chat = first.get("chat") or {}
    if not all(isinstance(part, dict) for part in (connector, message, chat)):
        raise ValueError("data[DATA][0][connector], [chat] and [message] must be objects")
    try:
        chat_id = int(str(chat.get("id")))
        message_id = int(str(message.get("id")))
    except ValueError:
        raise ValueError("data[DATA][0][chat][id] and [message][id] must be integers") from None
    author = str(message.get("user_id") or "")
    if str(message.get("system") or "N").upper() == "Y" or not author:
        return None
    if author != str(connector.get("user_id") or ""):
        return None  # an operator's, a bot's or our own reminder
    return {"chat_id": chat_id, "message_id": message_id, "text": str(message.get("text") or "")}


def enqueue_reply(services: Services, member_id: str, message: dict[str, Any]) -> bool:
    """Queue the reading of a possible reply: only the chat and message ids travel (the
    event's text is not trusted, :func:`reply_job` reads the message back)."""
    job_id = re.sub(
        r"[^A-Za-z0-9_-]", "_", f"olm-{member_id}-{message['chat_id']}-{message['message_id']}"
    )
    try:
        services.queue("events").enqueue(
            reply_job, member_id, message["chat_id"], message["message_id"],
            job_id=job_id, unique=True, result_ttl=0, failure_ttl=7 * 86400,
            retry=Retry(max=3, interval=[5, 30, 120]),
        )  # fmt: skip
    except DuplicateJobError:
        return False
    return True


def reply_job(member_id: str, chat_id: int, message_id: int) -> str:
    """RQ job: read message ``message_id`` of chat ``chat_id`` back from Bitrix24 and apply it
    when the chat's client wrote it (an event is a claim: any employee can post one)."""
    services = context.current()
    if not isinstance(message_id, int):
        return "unverified"  # a job queued by an older version (it carried the text)
    with services.db() as session:
        portal = active_portal(session, member_id)
        if portal is None:
            return "portal_inactive"
        if _reminded_appointment(session, portal.id, int(chat_id), utc_now()) is None:
            return "no_appointment"  # most chat messages: no read spent on them
    message = verify_client_message(services.bitrix(member_id), int(chat_id), message_id)
    if message is None:
        log.warning("chat %s: message not confirmed by Bitrix24 as the client's", chat_id)
        return "unverified"
    with services.db() as session:  # the messenger's window reopens; reminders were read
        client_wrote(session, portal.id, message.chat, message.sent_at)
    return handle_reply(services, member_id, message.chat.id, message.text,
                        sent_at=message.sent_at)  # fmt: skip


def handle_reply(
    services: Services,
    member_id: str,
    chat_id: int,
    text: str,
    now: dt.datetime | None = None,
    *,
    sent_at: dt.datetime | None = None,
) -> str:
    """Apply the client's verified reply ``text`` of chat ``chat_id``; ``sent_at`` (naive
    UTC, Bitrix24's date of the message): a message older than the appointment's last
    reminder does not answer it (a replayed old «1» confirms nothing)."""
    moment = now or utc_now()
    kind = classify(text)
    with services.db() as session:
        portal = active_portal(session, member_id)
        if portal is None:
            return "portal_inactive"
        appt = _reminded_appointment(session, portal.id, chat_id, moment)
        if appt is None:
            return "no_appointment"
        if (sent_at is not None and appt.reminded_at is not None
                and sent_at < appt.reminded_at - CLOCK_SLACK):  # fmt: skip
            return "before_reminder"
        if kind == "other":
            return "left_to_manager"
        journey = session.get(Lead, appt.journey_id) if appt.journey_id else None
        key = journey_key(journey) if journey is not None else None
        if kind == "confirm":
            if appt.status == AppointmentStatus.CONFIRMED:
                return "already_confirmed"
            appt.status = AppointmentStatus.CONFIRMED
            appt.confirmed_at = moment
            if journey is not None and journey.confirmed_at is None:
                journey.confirmed_at = moment
            action = "confirmed"
        else:
            if appt.status == AppointmentStatus.RESCHEDULE_ASKED:
                return "already_asked"
            appt.status = AppointmentStatus.RESCHEDULE_ASKED
            action = "change_requested"
        snap: dict[str, Any] = {
            "portal_id": portal.id,
            "lang": portal.lang or "ru",
            "responsible": (journey.assigned_by_id if journey else None)
            or portal.installer_user_id
            or 1,
            "deal_id": appt.deal_id,
            "lead_id": appt.lead_id,
            "starts_at": appt.starts_at,
        }
    if action == "confirmed":
        if key is not None:
            stop_timers(services, snap["portal_id"], key, "confirmation")
        return action
    _ask_manager(services, member_id, snap, text)
    return action


def _reminded_appointment(
    session: Session, portal_id: int, chat_id: int, moment: dt.datetime
) -> Appointment | None:
    """The nearest coming appointment whose reminder went to chat ``chat_id``."""
    return session.scalar(
        select(Appointment)
        .where(
            Appointment.portal_id == portal_id,
            Appointment.chat_id == chat_id,
            Appointment.status != AppointmentStatus.CANCELLED,
            Appointment.starts_at > moment - dt.timedelta(hours=2),
        )
        .order_by(Appointment.starts_at)
        .limit(1)
    )


def _ask_manager(services: Services, member_id: str, snap: dict[str, Any], text: str) -> None:
    ru = snap["lang"] == "ru"
    when = snap["starts_at"].strftime("%d.%m.%Y %H:%M UTC")
    crm = [f"D_{snap['deal_id']}"] if snap["deal_id"] else (
        [f"L_{snap['lead_id']}"] if snap["lead_id"] else []
    )  # fmt: skip
    title = "Клиент просит перенести или отменить запись" if ru else (
        "The client asks to reschedule or cancel the appointment"
    )  # fmt: skip
    body = (f"Запись на {when}. Ответ клиента: «{text[:500]}»" if ru
            else f"Appointment on {when}. The client's reply: “{text[:500]}”")  # fmt: skip
    services.bitrix(member_id).batch(
        {
            "task": ("tasks.task.add", {"fields": {
                "TITLE": title, "DESCRIPTION": body, "RESPONSIBLE_ID": snap["responsible"],
                "UF_CRM_TASK": crm}}),
            "notify": ("im.notify.system.add", {
                "USER_ID": snap["responsible"], "MESSAGE": f"b24app: {title}. {body}",
                "TAG": f"b24app|appointment|{crm[0] if crm else when}"}),
        }
    )  # fmt: skip
