"""Moving or cancelling an appointment in the reminder's chat (issue 23, item 2).

The client's verified answer to a reminder (:func:`b24app.appointments.replies.handle_reply`
reads it back from Bitrix24 first) comes here when it is not a plain «1»:

* «2», «перенесите на пятницу», "can we move it to Friday?" → free times of the booking's
  resource (or the working hours) in the same chat, from the one free-time module
  (:func:`b24app.assistant.slots.offer_times`), near the day and time the client named;
* a time from the offer («пт 11.12 15:00», «15:00» when one offered time has it), or a free
  time the client names → the booking is read again (``booking.v1.booking.get``: the event that
  created our row was a claim, and the booking may have changed since) and moved
  (``booking.v1.booking.update``, its length kept), or the appointment alone when it has no
  booking; the reminders re-arm from the new time (:func:`~b24app.appointments.remind.
  schedule_appointment`). The time is re-checked and claimed under the portal's slot lock with
  the assistant's claims (:mod:`b24app.assistant.claims`), so a chat pre-booking the same time
  gets it once;
* «отмените», "cancel", «не смогу» → one question «Отменить запись …?»; a yes cancels (the
  booking is deleted, the appointment and its reminders cancelled), a no keeps it;
* a request for a person, or the second answer in a row the bot cannot use (nothing
  understood, nothing free) → :data:`HANDOFF`: the caller gives the chat to the manager as
  before (a task and a notification).

The manager is notified of every move and cancel (``im.notify.system.add``); a booking's freed
time is then offered to Booking's waitlist (:mod:`b24app.appointments.refill`). The talk's state
(what was offered, the question asked, failures) is a Redis key per appointment that expires
after :data:`TALK_SECONDS`; a talk is one at a time per appointment (a Redis lock).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from b24app.appointments.refill import enqueue_refill
from b24app.appointments.refill import freed_booking
from b24app.appointments.remind import schedule_appointment
from b24app.appointments.resources import note_booking
from b24app.appointments.store import cancel_appointment
from b24app.appointments.store import note_move
from b24app.assistant import claims
from b24app.assistant.dialog import fmt_slot
from b24app.assistant.slots import offer_times
from b24app.assistant.slots import offered_since
from b24app.assistant.understanding import classify_reply
from b24app.assistant.understanding import find_intents
from b24app.assistant.understanding import find_when
from b24app.assistant.understanding import HANDOFF_INTENTS
from b24app.assistant.understanding import normalise
from b24app.assistant.understanding import When
from b24app.assistant.understanding import words
from b24app.bitrix.errors import BitrixError
from b24app.context import Services
from b24app.i18n import translate
from b24app.reach.chat import send_chat
from b24app.settings import load_settings
from b24app.sla.worktime import WorkCalendar
from b24app.storage.models import Appointment
from b24app.storage.models import AppointmentStatus
from b24app.storage.models import Journey
from b24app.storage.models import Portal

log = logging.getLogger(__name__)

HANDOFF = "handoff"  # the caller hands the chat to the manager
TALK_SECONDS = 2 * 86400
MAX_FAILS = 2  # answers in a row the bot cannot use before a person takes over
DEFAULT_MINUTES = 60  # an appointment without a booking: its length is not known
NOT_FOUND = "1021"  # booking.v1.booking.get of a booking that does not exist


@dataclass
class Talk:
    """Where the talk about one appointment stands (a Redis key)."""

    stage: str = "offer"  # offer: times offered; cancel: «отменить?» asked
    offered: list[str] = field(default_factory=list)  # local naive ISO times
    fails: int = 0
    minutes: int = DEFAULT_MINUTES
    resource_id: int = 0
    offered_at: str = ""  # naive UTC ISO: when ``offered`` was offered


@dataclass(frozen=True)
class Visit:
    """What a talk needs of the appointment, its portal and its client."""

    member_id: str
    portal_id: int
    appointment_id: int
    booking_id: int | None
    starts_at: dt.datetime  # naive UTC
    service: str
    lang: str
    calendar: WorkCalendar
    step: int
    fallback_resource: int
    sender: int
    responsible: int
    targets: tuple[tuple[str, int], ...]
    chat_id: int | None

    def local(self, moment_utc: dt.datetime) -> dt.datetime:
        tz = self.calendar.time_zone
        return moment_utc.replace(tzinfo=dt.UTC).astimezone(tz).replace(tzinfo=None)

    def utc(self, local: dt.datetime) -> dt.datetime:
        aware = local.replace(tzinfo=self.calendar.time_zone)
        return aware.astimezone(dt.UTC).replace(tzinfo=None)

    def text(self, key: str, **params: Any) -> str:
        return translate(self.lang, f"resched.{key}", **params)


def _key(member_id: str, appointment_id: int) -> str:
    return f"b24app:resched:{member_id}:{appointment_id}"


def _load(services: Services, member_id: str, appointment_id: int) -> Talk | None:
    raw = services.redis.get(_key(member_id, appointment_id))
    if raw is None:
        return None
    try:
        return Talk(**json.loads(raw))
    except (TypeError, ValueError):
        return None


def _save(services: Services, visit: Visit, talk: Talk) -> None:
    key = _key(visit.member_id, visit.appointment_id)
    services.redis.set(key, json.dumps(asdict(talk)), ex=TALK_SECONDS)


def _end(services: Services, visit: Visit) -> None:
    services.redis.delete(_key(visit.member_id, visit.appointment_id))


def holder(appointment_id: int) -> int:
    """The claim holder of a move (:mod:`b24app.assistant.claims` keys claims by dialog pk:
    a move claims under minus the appointment's id, which no dialog has)."""
    return -appointment_id


def asks_person(text: str) -> bool:
    found, _ = find_intents(words(normalise(text[:500])))
    return any(intent in found for intent in HANDOFF_INTENTS)


def answer(
    services: Services, member_id: str, appointment_id: int, text: str, *, now: dt.datetime
) -> str | None:
    """Answer the client's verified ``text`` about appointment ``appointment_id`` (``now``
    naive UTC). None: not a move or a cancel (a «1», or a message the manager reads)."""
    verdict = classify_reply(text)
    talk = _load(services, member_id, appointment_id)
    person = asks_person(text)
    if talk is None and (verdict in (None, "confirm")) and not person:
        return None
    lock = services.redis.lock(f"b24app:lock:resched:{member_id}:{appointment_id}",
                               timeout=60, blocking_timeout=60)  # fmt: skip
    with lock:
        visit = _visit(services, member_id, appointment_id)
        if visit is None:
            return None
        if person:
            return _hand_off(services, visit)
        talk = _load(services, member_id, appointment_id) or _start(services, visit)
        return _step(services, visit, talk, text, verdict, now)


def _step(
    services: Services, visit: Visit, talk: Talk, text: str, verdict: str | None,
    now: dt.datetime,
) -> str | None:  # fmt: skip
    if talk.stage == "cancel":
        if verdict == "confirm":
            return _cancel(services, visit, now)
        if verdict == "cancel":
            _end(services, visit)
            _say(services, visit, visit.text("kept"))
            return "kept"
    elif verdict == "confirm":
        _end(services, visit)  # «1» after the offer: the time stays, confirmed as usual
        return None
    if verdict == "cancel" and text.strip() != "2":
        talk.stage = "cancel"
        _save(services, visit, talk)
        when = fmt_slot(visit.local(visit.starts_at), visit.lang)
        _say(services, visit, visit.text("cancel_ask", when=when))
        return "cancel_asked"
    local_now = visit.local(now)
    found = find_when(text, local_now)
    wish = found[0] if found else None
    chosen = _chosen(talk, wish)
    if chosen is not None:
        return _move(services, visit, talk, chosen, now)
    if wish is None and verdict is None:
        return _failed(services, visit, talk, visit.text("unclear"))
    times = _free(services, visit, talk, wish or When(), local_now)
    if wish is not None and wish.day and wish.at:
        exact = dt.datetime.combine(wish.day, wish.at)
        if exact in times:
            return _move(services, visit, talk, exact, now)
    if not times:
        return _failed(services, visit, talk, visit.text("none"))
    talk.stage, talk.offered = "offer", [t.isoformat() for t in times]
    talk.offered_at = now.isoformat()
    _save(services, visit, talk)
    listed = [fmt_slot(t, visit.lang) for t in times]
    _say(services, visit, visit.text("offer", times=", ".join(listed), example=listed[0]))
    return "times_offered"


def _chosen(talk: Talk, wish: When | None) -> dt.datetime | None:
    """The offered time the client picked: the day and the time, or a time only one offered
    time has."""
    if wish is None or wish.at is None or talk.stage != "offer":
        return None
    offered = [dt.datetime.fromisoformat(t) for t in talk.offered]
    fits = [t for t in offered if t.time() == wish.at and (wish.day in (None, t.date()))]
    return fits[0] if len(fits) == 1 else None


def _failed(services: Services, visit: Visit, talk: Talk, text: str) -> str:
    talk.fails += 1
    if talk.fails >= MAX_FAILS:
        return _hand_off(services, visit)
    _save(services, visit, talk)
    _say(services, visit, text)
    return "not_understood"


def _hand_off(services: Services, visit: Visit) -> str:
    _end(services, visit)
    _say(services, visit, visit.text("handoff"))
    return HANDOFF


def _visit(services: Services, member_id: str, appointment_id: int) -> Visit | None:
    with services.db() as session:
        appt = session.get(Appointment, appointment_id)
        portal = session.get(Portal, appt.portal_id) if appt is not None else None
        if appt is None or portal is None or appt.status == AppointmentStatus.CANCELLED:
            return None
        settings = load_settings(session, portal.id)
        journey = session.get(Journey, appt.journey_id) if appt.journey_id else None
        assistant = settings.get("assistant") or {}
        sender = (settings.get("appointments") or {}).get("sender_user_id")
        installer = portal.installer_user_id or 1
        targets = tuple(
            (kind, int(getattr(appt, f"{kind}_id")))
            for kind in ("deal", "lead", "contact")
            if getattr(appt, f"{kind}_id")
        )
        return Visit(
            member_id=member_id, portal_id=portal.id, appointment_id=appt.id,
            booking_id=appt.booking_id, starts_at=appt.starts_at, service=appt.service,
            lang=portal.lang or "ru", calendar=WorkCalendar.from_settings(settings),
            step=int(assistant.get("slot_step_minutes") or 60),
            fallback_resource=int(assistant.get("booking_resource_id") or 0),
            sender=int(sender or installer),
            responsible=int((journey.assigned_by_id if journey else None) or installer),
            targets=targets, chat_id=appt.chat_id,
        )  # fmt: skip


def _start(services: Services, visit: Visit) -> Talk:
    """A new talk: the booking's length and resource, read from Bitrix24 (or the defaults)."""
    talk = Talk(resource_id=visit.fallback_resource if visit.booking_id is None else 0)
    if visit.booking_id is None:
        return talk
    booking = _read_booking(services, visit)
    if booking is not None:
        span = _period(booking)
        if span is not None:
            talk.minutes = max(1, (span[1] - span[0]) // 60)
        resources = booking.get("resourceIds") or []
        talk.resource_id = int(resources[0]) if resources else 0
    return talk


def _read_booking(services: Services, visit: Visit) -> dict[str, Any] | None:
    """The booking as Bitrix24 has it now; None when it is gone (any other failure raises, so
    the job is retried)."""
    result = services.bitrix(visit.member_id).batch(
        {"booking": ("booking.v1.booking.get", {"id": visit.booking_id})}
    )
    error = result.errors.get("booking")
    if error is not None:
        if str(error.get("error")) == NOT_FOUND:
            return None
        raise RuntimeError(f"booking.v1.booking.get failed: {error.get('error')}")
    booking = (result.results.get("booking") or {}).get("booking")
    return booking if isinstance(booking, dict) and booking.get("id") else None


def _period(booking: dict[str, Any]) -> tuple[int, int] | None:
    try:
        dates = booking["datePeriod"]
        return int(dates["from"]["timestamp"]), int(dates["to"]["timestamp"])
    except (KeyError, TypeError, ValueError):
        return None


def _free(
    services: Services, visit: Visit, talk: Talk, wish: When, local_now: dt.datetime
) -> list[dt.datetime]:
    taking = claims.claimed(services.redis, visit.member_id, visit.calendar.time_zone,
                            holder(visit.appointment_id))  # fmt: skip
    return offer_times(
        services, services.bitrix(visit.member_id), visit.member_id, visit.portal_id,
        visit.calendar, wish, talk.minutes, now=local_now, resource_id=talk.resource_id,
        step=visit.step, claimed=taking, exclude_appointment=visit.appointment_id,
        own_booking=visit.booking_id,
    )  # fmt: skip


def _move(
    services: Services, visit: Visit, talk: Talk, local: dt.datetime, now: dt.datetime
) -> str:
    """Re-check and claim ``local`` under the slot lock, then move the booking (read again
    first) or the appointment, and the reminders with it."""
    start = visit.utc(local)
    offered = local.isoformat() in talk.offered
    since = offered_since(now, talk.offered_at) if offered else now
    with claims.slot_lock(services.redis, visit.member_id):
        wish = When(day=local.date(), at=local.time())
        if local not in _free(services, visit, talk, wish, visit.local(since)):
            talk.stage, talk.offered = "offer", []
            _save(services, visit, talk)
            _say(services, visit, visit.text("taken", when=fmt_slot(local, visit.lang)))
            return "taken"
        claims.claim(services.redis, visit.member_id, holder(visit.appointment_id), start,
                     talk.minutes)  # fmt: skip
    before = None
    try:
        if visit.booking_id is not None:
            before = _move_booking(services, visit, start)
            if before is None:
                return _hand_off(services, visit)  # the booking is gone: a person sorts it out
        with services.db() as session:
            appt = session.get(Appointment, visit.appointment_id)
            if appt is not None:
                if appt.ends_at is not None:
                    appt.ends_at += start - appt.starts_at
                note_move(appt, start, now)
                appt.starts_at = start
                appt.status = AppointmentStatus.SCHEDULED  # the reminders ask again
                appt.confirmed_at = None
    finally:
        claims.release(services.redis, visit.member_id, holder(visit.appointment_id))
    schedule_appointment(services, visit.appointment_id)
    _end(services, visit)
    when = fmt_slot(local, visit.lang)
    _say(services, visit, visit.text("moved", when=when))
    old = fmt_slot(visit.local(visit.starts_at), visit.lang)
    _notify(services, visit, visit.text("notify_moved", old=old, when=when))
    if before is not None:
        enqueue_refill(services, visit.member_id,
                       freed_booking(visit.portal_id, visit.appointment_id, before, visit.service))  # fmt: skip
    return "moved"


def _move_booking(services: Services, visit: Visit, start: dt.datetime) -> dict[str, Any] | None:
    """Move the booking to ``start`` (naive UTC), its length kept; the booking as it was
    before, or None when it is gone."""
    booking = _read_booking(services, visit)
    span = _period(booking) if booking is not None else None
    if booking is None or span is None:
        return None
    begin = int(start.replace(tzinfo=dt.UTC).timestamp())
    zone = str(((booking.get("datePeriod") or {}).get("from") or {}).get("timezone") or "UTC")
    period = {
        "from": {"timestamp": begin, "timezone": zone},
        "to": {"timestamp": begin + span[1] - span[0], "timezone": zone},
    }
    services.bitrix(visit.member_id).call(
        "booking.v1.booking.update", {"id": visit.booking_id, "fields": {"datePeriod": period}}
    )
    note_booking(services, visit.member_id, int(visit.booking_id or 0),
                 {**booking, "datePeriod": period})  # fmt: skip
    return booking


def _cancel(services: Services, visit: Visit, now: dt.datetime) -> str:
    """The client said yes to «отменить?»: the booking (if Bitrix24 still has it) is deleted,
    the appointment and its reminders cancelled."""
    booking = _read_booking(services, visit) if visit.booking_id is not None else None
    if booking is not None:
        services.bitrix(visit.member_id).call("booking.v1.booking.delete",
                                              {"id": visit.booking_id})  # fmt: skip
        note_booking(services, visit.member_id, int(booking["id"]), None)
    with services.db() as session:
        appt = session.get(Appointment, visit.appointment_id)
        if appt is not None:
            cancel_appointment(session, appt, now=now)
    schedule_appointment(services, visit.appointment_id)
    _end(services, visit)
    when = fmt_slot(visit.local(visit.starts_at), visit.lang)
    _say(services, visit, visit.text("cancelled", when=when))
    _notify(services, visit, visit.text("notify_cancelled", when=when))
    if booking is not None:
        enqueue_refill(services, visit.member_id,
                       freed_booking(visit.portal_id, visit.appointment_id, booking, visit.service))  # fmt: skip
    return "cancelled"


def _say(services: Services, visit: Visit, text: str) -> None:
    """Write to the client in the chat the reminder went to."""
    known = None
    if visit.chat_id and visit.targets:
        known = (visit.targets[0][0], visit.targets[0][1], int(visit.chat_id))
    client = services.bitrix(visit.member_id)
    sent = send_chat(client, list(visit.targets), visit.sender, text, known=known)
    if not sent.ok:
        log.warning("appointment %s: answer not delivered (%s)", visit.appointment_id,
                    sent.error)  # fmt: skip


def _notify(services: Services, visit: Visit, text: str) -> None:
    crm = f"{visit.targets[0][0][0].upper()}_{visit.targets[0][1]}" if visit.targets else ""
    try:
        services.bitrix(visit.member_id).call("im.notify.system.add", {
            "USER_ID": visit.responsible, "MESSAGE": f"b24app: {text} {crm}".strip(),
            "TAG": f"b24app|resched|{visit.appointment_id}",
        })  # fmt: skip
    except BitrixError as exc:  # the client's move stands; the manager sees it in the CRM
        log.warning("appointment %s: manager not notified (%s)", visit.appointment_id, exc)
