"""The client's answer to a reminder, from the open-line chat the reminder went to.

Routes (docs/appointments.md, "The client's reply"): the chat read back while an answer is
awaited (:func:`watch_reminder` / :func:`watch_job`, the route for Telegram, WhatsApp, VK and
web-chat lines), the assistant's bot holding the chat (:func:`route_bot_message`), and
``ONOPENLINEMESSAGEADD`` on a line of the app's own connector (:func:`reply_job`). All end in
:func:`handle_reply` with a message Bitrix24 shows the chat's client wrote.

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
classifier): ``optout`` («СТОП», «отписаться», "unsubscribe": recorded and confirmed once,
:mod:`b24app.consent.optout`, in any chat the app hears by one of its routes, reminded or not),
``confirm`` (1, да, подтверждаю, буду, ok, yes, confirm, 👍, ✅, «+», угу …),
``change`` (2, перенести, отменить, не смогу, не получится, cancel, reschedule, no, 👎, ❌ …),
else ``other``. A reply that says yes and no at once is ``other``.

The answer is applied to the nearest coming appointment whose reminder went to that chat:
confirm → :func:`b24app.appointments.outcomes.confirm` (the appointment and its journey
Confirmed, the confirmation SLA stopped, the deal or lead moved to the mapped stage); a move or a cancel is talked over in the chat (:mod:`b24app.appointments.reschedule`),
and when the client asks for a person or the bot fails twice → a task for the responsible
manager and a notification (once per appointment until it is moved); other → left to the
manager (the chat is theirs anyway). A chat that was offered a freed time (a waitlist client's,
:mod:`b24app.appointments.refill`) is read the same way and answers that offer first.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from b24app import context
from b24app.appointments import refill
from b24app.appointments import reschedule
from b24app.appointments.chat_stop import opt_out_from_chat
from b24app.appointments.delivery import client_wrote
from b24app.appointments.delivery import note_marks
from b24app.appointments.outcomes import confirm
from b24app.appointments.store import active_portal
from b24app.appointments.watch import watch_reminder
from b24app.assistant.understanding import classify_reply
from b24app.bitrix.chat_history import client_message
from b24app.bitrix.chat_history import ClientMessage
from b24app.bitrix.chat_history import read_chat
from b24app.bitrix.chat_history import verify_client_message
from b24app.context import Services
from b24app.event_queue import enqueue_once
from b24app.event_queue import retry
from b24app.storage.models import Appointment
from b24app.storage.models import AppointmentStatus
from b24app.storage.models import Journey
from b24app.storage.models import utc_now

log = logging.getLogger(__name__)

CLOCK_SLACK = dt.timedelta(minutes=1)  # Bitrix24's clock against ours
SEEN_SECONDS = 7 * 86400  # a client message applied is remembered this long


def classify(text: str) -> str:
    """``optout``, ``confirm``, ``change`` or ``other`` for a client's reply (ru/en): the
    assistant's reply classifier (:func:`b24app.assistant.understanding.classify_reply`), so a
    reminder's answer and the assistant's turn are read by one rule; cancel and reschedule are
    a change."""
    verdict = classify_reply(text)
    if verdict in ("optout", "confirm"):
        return verdict
    return "change" if verdict else "other"


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
    # The event's text decides only whether a chat with no reminded appointment is worth a
    # read: a claimed «СТОП» is read back (and acted on only if Bitrix24 shows it).
    optout_claimed = classify(message["text"]) == "optout"
    return enqueue_once(
        services.queue("events"),
        reply_job, member_id, message["chat_id"], message["message_id"], optout_claimed,
        job_id=job_id, result_ttl=0, failure_ttl=7 * 86400,
        retry=retry(),
    )  # fmt: skip


def reply_job(member_id: str, chat_id: int, message_id: int, optout_claimed: bool = False) -> str:
    """RQ job: read message ``message_id`` of chat ``chat_id`` back from Bitrix24 and apply it
    when the chat's client wrote it (an event is a claim: any employee can post one)."""
    services = context.current()
    if not isinstance(message_id, int):
        return "unverified"  # a job queued by an older version (it carried the text)
    with services.db() as session:
        portal = active_portal(session, member_id)
        if portal is None:
            return "portal_inactive"
        offered = refill.waiting(services, member_id, int(chat_id))
        reminded = _reminded_appointment(session, portal.id, int(chat_id), utc_now())
        if not offered and reminded is None and not optout_claimed:
            return "no_appointment"  # most chat messages: no read spent on them
    message = verify_client_message(services.bitrix(member_id), int(chat_id), message_id)
    if message is None:
        log.warning("chat %s: message not confirmed by Bitrix24 as the client's", chat_id)
        return "unverified"
    if offered:  # the chat was offered a freed time (b24app/appointments/refill.py)
        taken = refill.answer(services, member_id, message.chat.id, message.text)
        if taken is not None:
            _note_wrote(services, member_id, message)  # else apply_client_message notes it
            return taken
    return apply_client_message(services, member_id, message)


def _note_wrote(services: Services, member_id: str, message: ClientMessage) -> None:
    """The client wrote: the messenger's window reopens, the reminders before were read."""
    with services.db() as session:
        portal = active_portal(session, member_id)
        if portal is not None:
            client_wrote(session, portal.id, message.chat, message.sent_at)


def apply_client_message(services: Services, member_id: str, message: ClientMessage) -> str:
    """A message Bitrix24 confirmed as the chat's client's, whichever route brought it: an
    opt-out is recorded (b24app/appointments/chat_stop.py), anything else is a reminder's answer. Once per
    message: the routes (the event, the reads of a watched chat, overlapping watches) may
    bring the same message twice; a failed apply lets a retry take it again."""
    seen = f"b24app:reply-seen:{member_id}:{message.chat.id}:{message.id}"
    if not services.redis.set(seen, 1, nx=True, ex=SEEN_SECONDS):
        return "already_applied"
    try:
        _note_wrote(services, member_id, message)
        if classify(message.text) == "optout":
            return opt_out_from_chat(services, member_id, message)
        return handle_reply(services, member_id, message.chat.id, message.text,
                            sent_at=message.sent_at)  # fmt: skip
    except Exception:
        services.redis.delete(seen)
        raise


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
        appointment_id = appt.id
    # a move or a cancel is talked over in the chat (b24app/appointments/reschedule.py)
    talked = reschedule.answer(services, member_id, appointment_id, text, now=moment)
    if talked is not None and talked != reschedule.HANDOFF:
        return talked
    if talked == reschedule.HANDOFF:
        kind = "change"
    with services.db() as session:
        portal = active_portal(session, member_id)
        appt = session.get(Appointment, appointment_id)
        if portal is None or appt is None:
            return "portal_inactive"
        if kind == "other":
            return "left_to_manager"
        if kind == "optout":  # recorded by reply_job with the message's author (chat_stop)
            return "optout_not_applied"
        if kind == "confirm":
            if appt.status == AppointmentStatus.CONFIRMED:
                return "already_confirmed"
        else:
            if appt.status == AppointmentStatus.RESCHEDULE_ASKED:
                return "already_asked"
            appt.status = AppointmentStatus.RESCHEDULE_ASKED
            journey = session.get(Journey, appt.journey_id) if appt.journey_id else None
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
    if kind == "confirm":
        return confirm(services, appointment_id, at=moment)
    _ask_manager(services, member_id, snap, text)
    return "change_requested"


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


# --- the documented route: the chat read back while a reply is awaited ----------------------
#
# ``ONOPENLINEMESSAGEADD`` reaches only an app whose own connector the line uses
# (on-open-line-message-add.md), so for Telegram, WhatsApp, VK and web-chat lines the client's
# answer is read from the chat's history (``imopenlines.session.history.get``, readable by the
# app's token without being a chat member, b24app/bitrix/chat_history.py): after a reminder
# went into a chat and while its appointment awaits an answer, at most ``len(watch.WATCH_MINUTES)``
# reads (3, 15, 60 and 240 minutes after it), none once it is answered, moved on by a newer
# reminder, or started. Every message read counts only as the chat's client's, after the reminder, with
# Bitrix24's text (the rule of :func:`reply_job`). The assistant's bot, when it holds the
# chat, hands the message over at once (:func:`route_bot_message`).

DECISIVE = ("confirmed", "change_requested", "already_confirmed", "already_asked")
# a reply that opened a talk in the chat (b24app/appointments/reschedule.py): read again soon
TALKING = ("times_offered", "cancel_asked", "not_understood")


def _still_awaited(services: Services, member_id: str, appointment_id: int, chat_id: int,
                   since: dt.datetime) -> str | None:  # fmt: skip
    """Why no read is needed any more (None: the reply is still awaited in this chat)."""
    with services.db() as session:
        portal = active_portal(session, member_id)
        appt = session.get(Appointment, appointment_id)
        if portal is None or appt is None or appt.portal_id != portal.id:
            return "gone"
        if appt.status != AppointmentStatus.SCHEDULED:
            return "answered"
        if appt.chat_id != chat_id or (
            appt.reminded_at is not None and appt.reminded_at - since > CLOCK_SLACK
        ):
            return "superseded"  # a newer reminder watches its own chat
        if appt.starts_at <= utc_now():
            return "passed"
    return None


def watch_job(member_id: str, appointment_id: int, chat_id: int, since_iso: str, step: int,
              after_id: int) -> str:  # fmt: skip
    """RQ job: read the chat once (one REST request) and apply the client's messages written
    after the reminder and after ``after_id``, in order; the next read follows unless one
    answered it."""
    services = context.current()
    since = dt.datetime.fromisoformat(since_iso)
    stop = _still_awaited(services, member_id, appointment_id, chat_id, since)
    if stop is not None:
        return stop
    chat, _ = read_chat(services.bitrix(member_id), chat_id)
    if chat is not None:  # the same read shows the reminder's delivery mark
        with services.db() as session:
            portal = active_portal(session, member_id)
            if portal is not None:
                note_marks(session, portal.id, chat)
    outcome, last = "silent", after_id
    for message_id in sorted(m for m in (chat.messages if chat else {}) if m > after_id):
        last = message_id
        message = client_message(chat, message_id) if chat is not None else None
        if message is None or (
            message.sent_at is not None and message.sent_at < since - CLOCK_SLACK
        ):
            continue
        outcome = apply_client_message(services, member_id, message)
        if outcome in DECISIVE or classify(message.text) == "optout":
            return outcome  # answered, or nothing more is sent to this client
    talking = utc_now() if outcome in TALKING else None
    watch_reminder(services, member_id, appointment_id, chat_id, since, step + 1, last,
                   talking_since=talking)  # fmt: skip
    return outcome


def awaits_reply(services: Services, member_id: str, chat_id: int) -> bool:
    """Does an appointment reminded into this chat still await the client's answer (no REST)?"""
    with services.db() as session:
        portal = active_portal(session, member_id)
        if portal is None:
            return False
        appt = _reminded_appointment(session, portal.id, int(chat_id), utc_now())
        return (
            appt is not None
            and appt.status == AppointmentStatus.SCHEDULED
            and (appt.reminded_at is not None)
        )


def route_bot_message(
    services: Services, member_id: str, chat_id: int, message_id: int
) -> str | None:
    """A client's message the assistant's bot received (``ONIMBOTV2MESSAGEADD``, the documented
    route where the bot holds the chat): the reply handler's outcome when it answered an
    awaited reminder; None when it is not a reminder's answer (the assistant goes on)."""
    if not message_id or not awaits_reply(services, member_id, chat_id):
        return None
    message = verify_client_message(services.bitrix(member_id), int(chat_id), int(message_id))
    if message is None:
        return None
    _note_wrote(services, member_id, message)  # the messenger's window, as on every route
    outcome = handle_reply(services, member_id, message.chat.id, message.text,
                           sent_at=message.sent_at)  # fmt: skip
    return outcome if outcome in DECISIVE else None
