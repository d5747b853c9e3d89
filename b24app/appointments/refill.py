"""Refill a freed time from Online Booking's waitlist and recent no-shows (issue 23, item 3).

When a booking is cancelled or moved — by the client in the reminder's chat
(:mod:`b24app.appointments.reschedule`), or in Bitrix24 (its event, :mod:`b24app.appointments.
booking`) — :func:`refill_job` offers the freed time of that resource, each in the client's
open-line chat, to:

* the clients on Booking's waitlist: the entries made in the last :data:`LOOKBACK_DAYS` days
  (``booking.v1.waitlist.list``, ``filter.createdWithin``) and their contacts
  (``booking.v1.waitlist.client.list``, one ``batch``). A waitlist entry names no resource and
  no day (REST has none; the wish is in its note, for a person): every entry is offered the
  time, at most :data:`MAX_OFFERS`;
* the clients of this portal whose visit was a no-show in the last
  ``appointments.refill.no_show_days`` (default 30, at most 90; 0: none), newest first, at most
  ``no_show_offers`` (default 5, at most 20) — only with a recorded advertising consent newer
  than any opt-out (:func:`b24app.consent.policy.may_message`, asked when the offer goes: the
  client did not ask for this one), and not the client who freed the time.

A client's verified «да» in that chat takes the time. It reaches the app the way the client's
answer to a reminder does: read back from the chat (:func:`offer_watch_job`, at
:data:`OFFER_READ_MINUTES` after the offer while it is open: the documented route on Telegram,
WhatsApp, VK and web-chat lines), or on a line of the app's own connector by
``ONOPENLINEMESSAGEADD`` (:func:`b24app.appointments.replies.reply_job` routes it here). It
takes the time — **the first one only**, whichever list the client came from: under the
portal's slot lock (the one the assistant's claims use, :mod:`b24app.assistant.claims`) the
offer is taken once (a Redis ``SET NX``), the time is checked free again (Bitrix24's bookings,
read fresh, and the other chats' claims), and the booking is made —
``booking.v1.booking.createfromwaitlist`` for a waitlist entry, ``booking.v1.booking.add`` with
its client (``.client.set``, chained in one ``batch``) for a no-show. The winner is told, and
every other client offered the time hears it is gone (once each). A refill is a
``slot_refills`` row (the KPI "slots refilled", revenue through its booking; a no-show's has no
waitlist entry).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from b24app import context
from b24app.appointments.chat_stop import opt_out_from_chat
from b24app.appointments.resources import note_booking
from b24app.assistant import claims
from b24app.assistant.dialog import fmt_slot
from b24app.assistant.slots import still_free
from b24app.assistant.understanding import classify_reply
from b24app.bitrix.chat_history import client_message
from b24app.bitrix.chat_history import read_chat
from b24app.bitrix.client import BitrixClient
from b24app.bitrix.errors import BitrixError
from b24app.consent.contact import Contact
from b24app.consent.policy import may_message
from b24app.context import Services
from b24app.i18n import translate
from b24app.reach.chat import send_chat
from b24app.settings import load_settings
from b24app.sla.worktime import WorkCalendar
from b24app.storage.models import Appointment
from b24app.storage.models import Portal
from b24app.storage.models import SlotRefill
from b24app.storage.models import VisitOutcome
from b24app.timers.engine import as_aware
from b24app.timers.engine import ceil_second
from b24app.timers.engine import naive_utc
from b24app.timers.engine import seconds_per_minute

log = logging.getLogger(__name__)

LOOKBACK_DAYS = 30
MAX_OFFERS = 20
OFFER_SECONDS = 2 * 86400  # an offer not taken is forgotten after this (or at the time itself)
OFFER_READ_MINUTES = (2, 10, 30, 120)  # an offered chat is read back this long after the offer


def _offer_key(member_id: str, offer_id: int) -> str:
    return f"b24app:refill:{member_id}:offer:{offer_id}"


def _chat_key(member_id: str, chat_id: int) -> str:
    return f"b24app:refill:{member_id}:chat:{chat_id}"


def freed_booking(
    portal_id: int, appointment_id: int, booking: dict[str, Any], service: str
) -> dict[str, Any]:
    """What :func:`refill_job` needs of a booking just cancelled or moved, as Bitrix24 had it
    (plain JSON: it travels in the job)."""
    dates = booking["datePeriod"]
    return {
        "portal_id": portal_id, "appointment_id": appointment_id,
        "resource_ids": [int(r) for r in booking.get("resourceIds") or []],
        "start": int(dates["from"]["timestamp"]), "end": int(dates["to"]["timestamp"]),
        "zone": str(dates["from"].get("timezone") or ""), "service": service,
    }  # fmt: skip


def freed_appointment(appt: Appointment) -> dict[str, Any] | None:
    """The same for an appointment as we keep it (its booking may be gone already); None
    when it is not a booking's."""
    if not appt.resource_ids or appt.ends_at is None:
        return None
    return {
        "portal_id": appt.portal_id, "appointment_id": appt.id,
        "resource_ids": [int(r) for r in appt.resource_ids],
        "start": _epoch(appt.starts_at), "end": _epoch(appt.ends_at), "zone": "",
        "service": appt.service,
    }  # fmt: skip


def _epoch(moment: dt.datetime) -> int:
    return int(moment.replace(tzinfo=dt.UTC).timestamp())


def enqueue_refill(services: Services, member_id: str, slot: dict[str, Any]) -> None:
    """Offer the freed ``slot`` (:func:`freed_booking`) in the background (the client who freed it is
    answered first)."""
    if slot["resource_ids"]:
        services.queue("events").enqueue(refill_job, member_id, slot, result_ttl=0,
                                         failure_ttl=7 * 86400)  # fmt: skip


def refill_job(member_id: str, slot: dict[str, Any]) -> int:
    """RQ job: :func:`offer_freed`; returns the offers sent."""
    return len(offer_freed(context.current(), member_id, slot))


def offer_freed(
    services: Services, member_id: str, slot: dict[str, Any], *, now: dt.datetime | None = None
) -> list[tuple[int, int]]:
    """Offer the freed time, at ``now`` (naive UTC, default the clock), to the waitlist's
    clients and the recent no-shows with consent (module docstring); returns the offered
    (chat id, contact id), the waitlist's first."""
    moment = naive_utc(now).replace(microsecond=0)
    if slot["start"] <= _epoch(moment):
        return []  # a time already begun is nobody's to take
    with services.db() as session:
        portal = session.get(Portal, slot["portal_id"])
        if portal is None:
            return []
        settings = load_settings(session, portal.id)
        sender = int((settings.get("appointments") or {}).get("sender_user_id")
                     or portal.installer_user_id or 1)  # fmt: skip
        lang, tz = portal.lang or "ru", WorkCalendar.from_settings(settings).time_zone
        config = settings["appointments"]["refill"]
    resources = ",".join(str(r) for r in slot["resource_ids"])
    once = f"b24app:refill:{member_id}:freed:{resources}:{slot['start']}"
    if not services.redis.set(once, 1, nx=True, ex=OFFER_SECONDS):
        return []  # the chat's move and the booking's event both report it: offered once
    client = services.bitrix(member_id)
    today = moment.replace(tzinfo=dt.UTC).astimezone(tz).date()
    waiting = _waitlist(client, today)[:MAX_OFFERS]
    with services.db() as session:
        no_shows = recent_no_shows(session, slot, config, {c for _, c in waiting}, now=moment)
    offers = [*waiting, *((None, contact_id) for contact_id in no_shows)]
    if not offers:
        return []
    slot = {**slot, "zone": slot["zone"] or str(tz)}
    offer_id = int(services.redis.incr(f"b24app:refill:{member_id}:seq"))
    start = dt.datetime.fromtimestamp(slot["start"], tz).replace(tzinfo=None)
    ttl = max(60, min(OFFER_SECONDS, slot["start"] - _epoch(moment)))
    offered: list[tuple[int, int]] = []  # (chat id, contact id)
    for waitlist_id, contact_id in offers:
        key = "refill.offer" if waitlist_id else "refill.offer_no_show"
        text = translate(lang, key, when=fmt_slot(start, lang), service=slot["service"])
        sent = send_chat(client, [("contact", contact_id)], sender, text)
        if not sent.ok or not sent.chat_id:
            continue
        offered.append((int(sent.chat_id), contact_id))
        services.redis.set(_chat_key(member_id, int(sent.chat_id)), json.dumps({
            "offer": offer_id, "waitlist_id": waitlist_id, "contact_id": contact_id,
        }), ex=ttl)  # fmt: skip
        watch_offer(services, member_id, int(sent.chat_id), moment, 0, 0)
    record = {**slot, "chats": offered, "sender": sender, "lang": lang, "tz": str(tz)}
    services.redis.set(_offer_key(member_id, offer_id), json.dumps(record), ex=ttl)
    log.info("freed time offered to %d clients (%d from the waitlist)", len(offered),
             len(waiting))  # fmt: skip
    return offered


def recent_no_shows(
    session: Session, slot: dict[str, Any], config: dict[str, Any], skip: set[int],
    *, now: dt.datetime | None = None,
) -> list[int]:  # fmt: skip
    """Contacts whose visit was a no-show in the ``no_show_days`` before ``now`` (naive UTC,
    default the clock) and who may be sent advertising, newest first, at most
    ``no_show_offers``; never one in ``skip`` nor the client who freed the time."""
    days, limit = int(config["no_show_days"]), int(config["no_show_offers"])
    if days <= 0 or limit <= 0:
        return []
    freed = session.get(Appointment, int(slot.get("appointment_id") or 0))
    seen = set(skip) | ({freed.contact_id} if freed is not None and freed.contact_id else set())
    now = naive_utc(now)
    rows = session.execute(
        select(Appointment.contact_id, Appointment.chat_id)
        .where(Appointment.portal_id == slot["portal_id"],
               Appointment.outcome == VisitOutcome.NO_SHOW,
               Appointment.starts_at >= now - dt.timedelta(days=days),
               Appointment.starts_at <= now, Appointment.contact_id.is_not(None))
        .order_by(Appointment.starts_at.desc())
        .limit(10 * limit)
    )  # fmt: skip
    chosen: list[int] = []
    for contact_id, chat_id in rows:
        if contact_id is None or contact_id in seen:
            continue
        seen.add(contact_id)
        client = Contact(contact_id=contact_id, chat_id=chat_id)
        if may_message(session, slot["portal_id"], client, "advertising"):
            chosen.append(int(contact_id))
            if len(chosen) >= limit:
                break
    return chosen


def _waitlist(client: BitrixClient, today: dt.date) -> list[tuple[int, int]]:
    """(waitlist entry id, contact id) of the recent entries, oldest first."""
    within = {"from": f"{today - dt.timedelta(days=LOOKBACK_DAYS):%d.%m.%Y}",
              "to": f"{today + dt.timedelta(days=1):%d.%m.%Y}"}  # fmt: skip
    page = client.call_raw("booking.v1.waitlist.list", {"filter": {"createdWithin": within}})
    ids = [int(e["id"]) for e in (page.get("result") or {}).get("waitList") or []
           if isinstance(e, dict) and e.get("id")][:50]  # fmt: skip
    if not ids:
        return []
    result = client.batch(
        {f"c{i}": ("booking.v1.waitlist.client.list", {"waitListId": i}) for i in ids}
    )
    out = []
    for i in ids:
        for row in (result.results.get(f"c{i}") or {}).get("waitListClient") or []:
            kind = row.get("type") or {}
            if str(kind.get("code")).upper() == "CONTACT" and str(kind.get("module")) == "crm":
                out.append((i, int(row["id"])))
                break
    return out


def waiting(services: Services, member_id: str, chat_id: int) -> bool:
    """Whether chat ``chat_id`` was offered a freed time it has not answered."""
    return bool(services.redis.exists(_chat_key(member_id, chat_id)))


def answer(services: Services, member_id: str, chat_id: int, text: str) -> str | None:
    """The client's verified answer to an offer: «да» takes the time if nobody has, «нет»
    declines; None for anything else (the chat's other routes read it)."""
    verdict = classify_reply(text)
    raw = services.redis.get(_chat_key(member_id, chat_id))
    if raw is None or verdict not in ("confirm", "cancel"):
        return None
    mine = json.loads(raw)
    offer_raw = services.redis.get(_offer_key(member_id, int(mine["offer"])))
    if offer_raw is None:
        return None
    offer = json.loads(offer_raw)
    if verdict == "cancel":
        declined = "refill.declined" if mine["waitlist_id"] else "refill.declined_no_show"
        if services.redis.delete(_chat_key(member_id, chat_id)):
            _say(services, member_id, offer, (chat_id, mine["contact_id"]), declined)
        return "refill_declined"
    booking_id = _take(services, member_id, offer, mine, chat_id)
    if booking_id is None:
        if services.redis.delete(_chat_key(member_id, chat_id)):
            _say(services, member_id, offer, (chat_id, mine["contact_id"]), "refill.gone")
        return "refill_gone"
    services.redis.delete(_chat_key(member_id, chat_id))
    _record(services, offer, mine, booking_id)
    _say(services, member_id, offer, (chat_id, mine["contact_id"]), "refill.booked")
    for other, contact_id in offer["chats"]:
        if other != chat_id and services.redis.delete(_chat_key(member_id, other)):
            _say(services, member_id, offer, (other, contact_id), "refill.gone")
    return "refilled"


def _take(
    services: Services, member_id: str, offer: dict[str, Any], mine: dict[str, Any], chat_id: int
) -> int | None:
    """Book the offered time for this chat's waitlist entry if it is the first «да» and the
    time is still free; the new booking's id, else None."""
    client = services.bitrix(member_id)
    taken_key = _offer_key(member_id, int(mine["offer"])) + ":taken"
    with claims.slot_lock(services.redis, member_id):
        if not services.redis.set(taken_key, chat_id, nx=True, ex=OFFER_SECONDS):
            return None
        tz = ZoneInfo(offer["tz"])
        start, end = (dt.datetime.fromtimestamp(offer[k], tz).replace(tzinfo=None)
                      for k in ("start", "end"))  # fmt: skip
        others = claims.claimed(services.redis, member_id, tz, None)
        if not still_free(client, offer["resource_ids"][0], start, end, tz, others):
            return None
        period = {"from": {"timestamp": offer["start"], "timezone": offer["zone"]},
                  "to": {"timestamp": offer["end"], "timezone": offer["zone"]}}  # fmt: skip
        fields = {"resourceIds": offer["resource_ids"], "datePeriod": period,
                  "name": offer["service"]}  # fmt: skip
        try:
            booking_id = _book(client, fields, mine)
        except BitrixError:
            # refused (the entry left the waitlist, or Bitrix24 sees the time taken): the
            # next «да» may still have it
            services.redis.delete(taken_key)
            raise
        # visible to the assistant's offers at once, before the booking's event arrives
        note_booking(services, member_id, booking_id, {
            "id": booking_id, "resourceIds": offer["resource_ids"], "datePeriod": period,
        })  # fmt: skip
    return booking_id


def _book(client: BitrixClient, fields: dict[str, Any], mine: dict[str, Any]) -> int:
    """Make the booking for the chat's client: from its waitlist entry, or (a no-show) a new
    booking with the contact as its client, set in the same ``batch`` so the booking's
    ``ONBOOKINGADD`` finds its client."""
    if mine["waitlist_id"]:
        return int(client.call("booking.v1.booking.createfromwaitlist",
                               {"waitListId": mine["waitlist_id"], "fields": fields}))  # fmt: skip
    result = client.batch({
        "book": ("booking.v1.booking.add", {"fields": fields}),
        "client": ("booking.v1.booking.client.set", {
            "bookingId": "$result[book][id]",
            "clients": [{"id": int(mine["contact_id"]),
                         "type": {"module": "crm", "code": "CONTACT"}}]}),
    }, halt=True)  # fmt: skip
    error = result.error("book")
    if error is not None:
        raise error
    if result.error("client") is not None:  # the time is booked all the same: a person links it
        log.warning("refill booking made, its client refused: %s", result.errors.get("client"))
    return int((result.results.get("book") or {})["id"])


def _record(
    services: Services, offer: dict[str, Any], mine: dict[str, Any], booking_id: int
) -> None:
    with services.db() as session:
        session.add(SlotRefill(
            portal_id=offer["portal_id"], booking_id=booking_id,
            waitlist_id=mine["waitlist_id"], contact_id=mine["contact_id"],
            freed_appointment_id=offer["appointment_id"],
            starts_at=dt.datetime.fromtimestamp(offer["start"], dt.UTC).replace(tzinfo=None),
            service=str(offer["service"])[:255],
        ))  # fmt: skip


def _say(
    services: Services, member_id: str, offer: dict[str, Any], chat: tuple[int, int], key: str
) -> None:
    """Write to one offered client: ``chat`` = (chat id, contact id)."""
    tz = ZoneInfo(offer["tz"])
    start = dt.datetime.fromtimestamp(offer["start"], tz).replace(tzinfo=None)
    text = translate(offer["lang"], key, when=fmt_slot(start, offer["lang"]))
    contact = ("contact", int(chat[1]))
    send_chat(services.bitrix(member_id), [contact], int(offer["sender"]), text,
              known=(*contact, int(chat[0])))  # fmt: skip


def watch_offer(
    services: Services, member_id: str, chat_id: int, since: dt.datetime, step: int,
    after_id: int,
) -> None:  # fmt: skip
    """Schedule read ``step`` of a chat offered a freed time at ``since`` (naive UTC)."""
    if step >= len(OFFER_READ_MINUTES):
        return
    due = since + dt.timedelta(seconds=OFFER_READ_MINUTES[step] * seconds_per_minute())
    stamp = since.isoformat()
    services.queue("events").enqueue_at(
        as_aware(ceil_second(due)), offer_watch_job, member_id, chat_id, stamp, step, after_id,
        job_id=f"rf-{member_id}-{chat_id}-{step}-{int(since.timestamp())}", result_ttl=0,
        failure_ttl=7 * 86400,
    )  # fmt: skip


def offer_watch_job(member_id: str, chat_id: int, since_iso: str, step: int, after_id: int) -> str:
    """RQ job: read an offered chat once and apply the client's answers written after the
    offer (Bitrix24's text and author, the rule of b24app/bitrix/chat_history.py): an answer to
    the offer, or a «СТОП» (recorded, the offer withdrawn); the next read follows while the
    offer is open and unanswered."""
    services = context.current()
    if not waiting(services, member_id, chat_id):
        return "closed"  # answered, taken by another client, or expired
    since = dt.datetime.fromisoformat(since_iso)
    chat, _ = read_chat(services.bitrix(member_id), chat_id)
    last = after_id
    for message_id in sorted(m for m in (chat.messages if chat else {}) if m > after_id):
        last = message_id
        message = client_message(chat, message_id) if chat is not None else None
        if message is None or (
            message.sent_at is not None and message.sent_at < since - dt.timedelta(minutes=1)
        ):  # Bitrix24's clock against ours
            continue
        outcome = answer(services, member_id, chat_id, message.text)
        if outcome is not None:
            return outcome
        if classify_reply(message.text) == "optout":  # the offer said how to stop them
            services.redis.delete(_chat_key(member_id, chat_id))  # and is withdrawn
            return opt_out_from_chat(services, member_id, message)
    watch_offer(services, member_id, chat_id, since, step + 1, last)
    return "silent"
