"""Pre-bookings nobody confirmed ("holds"): they expire, and one client holds one at a time.

A time tapped in the chat is pre-booked at once (``assistant.booking``: an appointment, and a
real booking on a Booking resource) so that nobody else takes it while the client confirms.
Anyone can open a chat, so an unconfirmed pre-booking must not hold the calendar:

* **Expiry.** Each pre-booking schedules an RQ job (queue ``timers``, RQ's scheduler, id
  ``asst-hold-<member>-<dialog>``) at ``booked_at + hold_minutes`` (``settings["assistant"]
  ["hold_minutes"]``, :data:`DEFAULT_HOLD_MINUTES`, bounded by :data:`HOLD_MINUTES`). When it
  fires it takes the chat's lock and releases the time if the pre-booking is still the same
  one (its ``booked_at``) and still unconfirmed: the booking is deleted
  (``booking.v1.booking.delete``, only ever one the app added), the appointment cancelled and
  its reminders disarmed, the time offered to the next client at once; the client is told in
  the chat and asked for a day again. A pre-booking moved or confirmed meanwhile is left alone,
  so a late or repeated job changes nothing. A pre-booking under a hand-off expires too (the
  operator books by hand in Bitrix24); the chat then gets no message from the bot.
* **One hold per client.** A tap is refused politely (nothing booked, the offered times stay)
  while another chat holds an unconfirmed pre-booking for the same phone or the same chat
  user; the check runs under the portal's slot lock and also sees the other chats' claims in
  flight (``assistant.claims``). Refused rather than moved: moving would let anyone who types
  a stranger's phone cancel the stranger's pre-booking. Confirmed appointments do not count
  (a client may book two services).

* **Never lost.** The release job lives in Redis; a Redis that lost it (restarted empty,
  evicted) would leave the time held for ever. The recurring sweep
  (``b24app.assistant.jobs.release_overdue_holds``, every minute) releases what is overdue by
  more than :data:`SWEEP_GRACE` from the database, the same :func:`expire` (idempotent).

The job is named by its import path: domain code never imports a jobs module.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import replace
from typing import Any

from sqlalchemy import select

from b24app.assistant import booking
from b24app.assistant import claims
from b24app.assistant.dialog import DialogState
from b24app.assistant.dialog import fmt_slot
from b24app.bitrix.errors import BitrixError
from b24app.bounded import clamped
from b24app.consent.contact import Contact
from b24app.consent.policy import may_message
from b24app.context import Services
from b24app.event_queue import retry
from b24app.i18n import translate
from b24app.settings import load_settings
from b24app.storage.models import AssistantDialog
from b24app.storage.models import Portal
from b24app.storage.models import PortalStatus
from b24app.storage.models import utc_now
from b24app.storage.portals import get_portal
from b24app.timers.engine import as_aware
from b24app.timers.engine import ceil_second
from b24app.timers.engine import naive_utc
from b24app.timers.engine import remove_job

log = logging.getLogger(__name__)

DEFAULT_HOLD_MINUTES = 30
HOLD_MINUTES = (5, 1440)  # the settings schema's bounds too
RELEASE_QUEUE = "timers"
RELEASE_JOB = "b24app.assistant.jobs.release_hold"
FAILURE_TTL = 7 * 86400
# The scheduled release runs first; the sweep takes only what it left (Redis lost the job).
SWEEP_GRACE = dt.timedelta(minutes=2)
SWEEP_BATCH = 200  # per run: a backlog is worked off over the next minutes
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def hold_minutes(assistant: dict[str, Any]) -> int:
    """How long a pre-booking waits for its confirmation, within :data:`HOLD_MINUTES`."""
    return clamped(assistant.get("hold_minutes"), DEFAULT_HOLD_MINUTES, HOLD_MINUTES)


def release_job_id(member_id: str, dialog_pk: int) -> str:
    return _UNSAFE.sub("_", f"asst-hold-{member_id}-{dialog_pk}")


def owner(phone: str | None, user_id: int | None) -> str:
    """Who a claim is for, as :func:`held_elsewhere` compares it."""
    return f"{phone or ''}|{user_id or ''}"


def schedule_release(services: Services, member_id: str, dialog_pk: int, minutes: int) -> None:
    """Schedule the expiry of the dialog's current pre-booking (a moved one's job is replaced)."""
    with services.db() as session:
        dialog = session.get(AssistantDialog, dialog_pk)
        booked_at = dialog.booked_at if dialog is not None else None
    if booked_at is None:
        return
    job_id = release_job_id(member_id, dialog_pk)
    remove_job(services, job_id)
    due = ceil_second(booked_at + dt.timedelta(minutes=minutes))
    services.queue(RELEASE_QUEUE).enqueue_at(
        as_aware(due), RELEASE_JOB, member_id, dialog_pk, booked_at.isoformat(),
        job_id=job_id, result_ttl=0, failure_ttl=FAILURE_TTL, retry=retry(),
        description="asst-hold",
    )  # fmt: skip


def cancel_release(services: Services, member_id: str, dialog_pk: int) -> None:
    """The pre-booking was confirmed (or let go): its expiry job is not needed."""
    remove_job(services, release_job_id(member_id, dialog_pk))


def held_elsewhere(
    services: Services,
    member_id: str,
    portal_id: int,
    dialog_pk: int,
    phone: str | None,
    user_id: int | None,
    minutes: int,
) -> bool:
    """Does another chat of the portal hold an unconfirmed pre-booking (or a claim in flight)
    for this phone or this chat user? Call under the portal's slot lock."""
    if not phone and not user_id:
        return False
    now = utc_now()
    with services.db() as session:
        rows = session.execute(
            select(AssistantDialog.slots, AssistantDialog.client_user_id).where(
                AssistantDialog.portal_id == portal_id,
                AssistantDialog.id != dialog_pk,
                AssistantDialog.booking_start >= now,
                AssistantDialog.booked_at >= now - dt.timedelta(minutes=minutes),
                AssistantDialog.confirmed_at.is_(None),
            )
        ).all()
    others = [owner((slots or {}).get("phone"), other_user) for slots, other_user in rows]
    others += claims.claim_owners(services.redis, member_id, dialog_pk)
    for other in others:
        other_phone, _, other_user = other.partition("|")
        if (phone and other_phone == phone) or (user_id and other_user == str(user_id)):
            return True
    return False


def overdue(services: Services, now: dt.datetime | None = None) -> list[tuple[str, int, str]]:
    """(member_id, dialog pk, booked_at) of unconfirmed pre-bookings of active portals whose
    expiry passed :data:`SWEEP_GRACE` ago: their release job did not run."""
    now = naive_utc(now)
    shortest = now - dt.timedelta(minutes=HOLD_MINUTES[0]) - SWEEP_GRACE
    with services.db() as session:
        rows = session.execute(
            select(Portal.member_id, Portal.id, AssistantDialog.id, AssistantDialog.booked_at)
            .join(Portal, Portal.id == AssistantDialog.portal_id)
            .where(
                Portal.status == PortalStatus.ACTIVE,
                AssistantDialog.booked_at <= shortest,
                AssistantDialog.confirmed_at.is_(None),
            )
            .order_by(AssistantDialog.booked_at)
            .limit(SWEEP_BATCH)
        ).all()
        minutes = {
            portal_id: hold_minutes(load_settings(session, portal_id).get("assistant") or {})
            for portal_id in {row[1] for row in rows}
        }
    return [
        (member_id, dialog_pk, booked_at.isoformat())
        for member_id, portal_id, dialog_pk, booked_at in rows
        if booked_at is not None
        and booked_at + dt.timedelta(minutes=minutes[portal_id]) + SWEEP_GRACE <= now
    ]


def expire(services: Services, member_id: str, dialog_pk: int, booked_at: str) -> str:
    """The expiry job's work: release the pre-booking made at ``booked_at`` if it is still
    there and unconfirmed. Returns what happened, for the logs."""
    with services.db() as session:
        portal = get_portal(session, member_id)
        if portal is None or portal.status != PortalStatus.ACTIVE:
            return "portal_unavailable"
        dialog = session.get(AssistantDialog, dialog_pk)
        if dialog is None or dialog.portal_id != portal.id:
            return "gone"
        chat_id = dialog.chat_id
        lang = "en" if (portal.lang or "ru").startswith("en") else "ru"
    with claims.chat_lock(services.redis, member_id, chat_id):
        with services.db() as session:
            dialog = session.get(AssistantDialog, dialog_pk)
            assert dialog is not None
            if dialog.booked_at is None or dialog.booked_at.isoformat() != booked_at:
                return "moved"
            if dialog.confirmed_at is not None:
                return "confirmed"
            bot_id, reply_to = dialog.bot_id, dialog.dialog_id
        client = services.bitrix(member_id)
        booking.release(services, client, dialog_pk, raise_transient=True)
        claims.release(services.redis, member_id, dialog_pk)
        with services.db() as session:
            dialog = session.get(AssistantDialog, dialog_pk)
            assert dialog is not None
            state = DialogState.load(dialog.state, dialog.slots, dialog.handoff_reason)
            start = state.start
            operator = state.state == "handoff"
            if operator:
                state = replace(state, start=None, offered=[])
            else:  # the next message is read as the day and time wished
                state = replace(state, state="when", when=None, start=None, offered=[], fails=0)
            dialog.state, dialog.slots = state.state, state.slots()
            chat = int(dialog.chat_id) if dialog.chat_id.isdigit() else None
            whom = Contact(dialog.contact_id, chat, dialog.client_user_id)
            told = not operator and may_message(session, dialog.portal_id, whom, "service")
    if told:  # not to an operator's chat, nor to a client who wrote «СТОП»
        when = fmt_slot(dt.datetime.fromisoformat(start), lang) if start else ""
        text = translate(lang, "assistant.hold_expired", when=when)
        try:
            client.call("imbot.v2.Chat.Message.send",
                        {"botId": bot_id, "dialogId": reply_to, "fields": {"message": text}})  # fmt: skip
        except BitrixError as exc:  # the time is free again either way
            log.info("hold expiry not told to the chat: %s", exc)
    return "released"
