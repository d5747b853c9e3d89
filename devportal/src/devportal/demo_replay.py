"""The demo salon's appointments replayed through the app's own code (step 4 of
:mod:`devportal.demo_data`): each booked lead's visit time read by the date-field route,
each reminder claimed and sent over REST at its due time (chat → SMS workflow → to-do) and
its chat send checked as the delivery check does (delivered, read, or refused by the
messenger and fallen through to the workflow); the clients' answers in their chats through
the reply route — «1» (with a consent to offers, for some), a move to another day or a
cancel talked over with the bot (b24app/appointments/reschedule.py); a cancelled time
offered by the refill's job body and taken by a client's «Да» (b24app/appointments/
refill.py), and that visit's outcome; the no-shows' outcomes and their re-invitations by the
policy's own steps, and some re-invited clients booked again by the salon's admin.

Each product function gets the moment it happened at (``now``); where a route that creates
an appointment takes none, the replay sets its ``created_at`` after the call.

Only the demo (``devportal.demo``) uses this module.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import heapq
import logging
import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from zoneinfo import ZoneInfo

from redis import ConnectionPool
from redis import Redis
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import update

from b24app import context
from b24app.appointments import refill
from b24app.appointments.booking import process_booking
from b24app.appointments.outcomes import record_outcome
from b24app.appointments.reinvite import appointment_of as reinvite_appointment
from b24app.appointments.reinvite import claim_reinvitation
from b24app.appointments.reinvite import level_for as reinvite_level
from b24app.appointments.reinvite import REINVITE_POLICY
from b24app.appointments.reinvite import schedule_reinvitation
from b24app.appointments.reinvite import send_reinvitation
from b24app.appointments.remind import APPOINTMENT_POLICY
from b24app.appointments.remind import check_delivery
from b24app.appointments.remind import CHECK_POLICY
from b24app.appointments.remind import claim_appointment_timer
from b24app.appointments.remind import claim_delivery_check
from b24app.appointments.remind import schedule_appointment
from b24app.appointments.remind import send_appointment_reminder
from b24app.appointments.replies import handle_reply
from b24app.appointments.routes import follow_date_field
from b24app.consent.contact import Contact
from b24app.consent.records import record_consent
from b24app.context import Services
from b24app.leads.intake import process as process_entity
from b24app.leads.kinds import DEAL
from b24app.settings import load_settings
from b24app.settings import save_settings
from b24app.storage.models import Appointment
from b24app.storage.models import AppointmentStatus
from b24app.storage.models import Journey
from b24app.storage.models import Portal
from b24app.storage.models import ReminderAttempt
from b24app.storage.models import SlotRefill
from b24app.storage.models import Timer
from b24app.storage.models import TimerState
from b24app.storage.models import utc_now
from b24app.storage.models import VisitOutcome
from b24app.timers.engine import schedule_job
from devportal.demo_data import ASKED_MASTER
from devportal.demo_data import Seeded
from devportal.demo_data import VISIT_FIELD
from devportal.demo_data import WORKFLOW_SINCE_DAYS
from devportal.limits import LeakyBucket

SMS_TEMPLATE_ID = 526  # devportal.rest.workflows.default_templates: the lead "SMS reminder"
# what a client answers a chat reminder with (unconfirmed: the first two weights count)
# «1» confirms; a client who cannot come and asks for a person is the manager's to move
# (a «2» alone is talked over in the chat: b24app/appointments/reschedule.py)
# «move» and «cancel» stand for a request to move the visit to the next day at 15:00 and one
# to cancel it, talked over in the chat (b24app/appointments/reschedule.py)
REPLIES = (("1", 0.50), ("Не смогу, позовите администратора", 0.05), ("Спасибо!", 0.05),
           ("move", 0.12), ("cancel", 0.06))  # fmt: skip
# a time the app's offer of free times lists («пн 14.12 15:00»): the client takes the first
OFFERED = re.compile(r"\d{2}\.\d{2} \d{1,2}:\d{2}")
# The salon's local time (the portal's zone), for the time the client asks to move to
SALON_OFFSET = dt.timedelta(hours=3)
SALON_ZONE = "Europe/Moscow"
REFILL_RESOURCE = 1  # the Booking resource a refilled time is booked on (a master)
# Re-invitations after a no-show: this many days after the visit, to the clients who agreed
# to offers — a share of those who confirm with «1» agree in the same chat.
REINVITE_DAYS = 7
CONSENT_SHARE = 0.8
# Of the clients re-invited, every second answers in the chat and the admin books them again,
# this many days after (the dashboard's re-invitation conversion)
REBOOK_EVERY = 2
REBOOK_DAYS = 3
# (moment, order, kind, argument) of the replay's time line
Step = tuple[dt.datetime, int, str, Any]


def replay_reminders(services: Services, portal: Any, seeded: Seeded) -> dict[str, int]:
    """The appointments of the 90 days and what the app did about them, through the app's own
    code: each booked lead's visit time is read by the date-field route (one ``crm.item.get``
    each), each reminder is claimed and sent over the portal's REST at its due time by the
    functions the timer job runs (chat → SMS workflow → to-do), and each client's answer in
    the chat goes through the reply route. Time is driven, not waited for: every step gets
    the moment it happened at.

    The history is replayed at full speed: the portal's bucket and the app's REST budget are
    lifted for it (it happened over 90 days), the portal's event deliveries are held, and
    the timers' RQ jobs go to a Redis database of the replay's own that no worker reads and
    that is emptied at the end — the replay fires them itself. Appointments still to come
    are then armed for the real worker.
    """
    now = utc_now()
    with services.db() as session:
        portal_id = session.scalar(select(Portal.id).where(Portal.member_id == portal.member_id))
        assert portal_id is not None
        save_settings(session, portal_id, {
            "appointments": {"date_field": {"entity": "lead", "field": VISIT_FIELD}},
            "consent": {"reinvite": {"enabled": True, "after_days": REINVITE_DAYS}},
        })  # fmt: skip
    with _replaying(services, portal) as replay:
        rows = _arm_appointments(replay, portal.member_id, portal_id, seeded)
        counts = {"appointments": len(rows), "reminders": 0, "replies": 0, "reinvitations": 0}
        _play(replay, services, portal, portal_id, now, counts)
        with replay.db() as session:  # the times as the replay left them (some were moved)
            ahead = session.scalars(select(Appointment.id).where(
                Appointment.portal_id == portal_id, Appointment.starts_at > now)).all()  # fmt: skip
        for appointment_id in ahead:  # still to come: the real worker sends the rest
            schedule_appointment(services, appointment_id)
        _hand_over(replay, services, portal_id, now)
        with replay.db() as session:
            counts["attempts"] = int(session.scalar(
                select(func.count(ReminderAttempt.id)).where(ReminderAttempt.portal_id == portal_id)
            ) or 0)  # fmt: skip
    return counts


def _hand_over(replay: Services, services: Services, portal_id: int, now: dt.datetime) -> None:
    """The re-invitations and delivery checks the replay armed for later: their jobs to the
    real worker's Redis (the replay's own is emptied)."""
    with replay.db() as session:
        later = session.execute(
            select(Timer.id, Timer.job_id, Timer.due_at).where(
                Timer.portal_id == portal_id, Timer.state == TimerState.PENDING,
                Timer.policy.in_((REINVITE_POLICY, CHECK_POLICY)),
            )
        ).all()  # fmt: skip
    for timer_id, job_id, due_at in later:
        schedule_job(services, Timer(id=timer_id, job_id=job_id, due_at=due_at), now)


@contextmanager
def _replaying(services: Services, portal: Any) -> Iterator[Services]:
    """Services for the replay (no REST budget, a private Redis database) while the
    portal's bucket is lifted and its deliveries held; everything restored after."""
    private = _empty_redis_db(services.redis)
    replay = context.build_services(
        dataclasses.replace(services.settings, rest_rate=1e6, rest_burst=10**9), redis=private
    )
    bucket, portal.bucket = portal.bucket, LeakyBucket(1e9, 10**9)
    # The events the replayed calls raise (our reminders in the chats, the managers' tasks)
    # were delivered back then: not now, to a handler that would only drop them.
    with portal.lock:
        portal.bus.held = True
        # the messengers' marks of messages sent long ago show at once
        connectors = portal.chats.lines.connectors
        mark_delay, connectors.mark_delay = connectors.mark_delay, 0.0
    # a line per failed channel is news in a running app, noise in a replay of 1,000 reminders
    chatty = logging.getLogger("b24app.appointments")
    level = chatty.level
    chatty.setLevel(logging.WARNING)
    try:
        yield replay
    finally:
        chatty.setLevel(level)
        with portal.lock:
            portal.bus.held = False
            connectors.mark_delay = mark_delay
        portal.bucket = bucket
        private.flushdb()
        replay.dispose()


def _arm_appointments(
    replay: Services, member_id: str, portal_id: int, seeded: Seeded
) -> list[Any]:
    """Each booked lead's visit read by the date-field route, in booking order, and its
    reminders armed as when it was booked: the (id, lead, starts) rows."""
    for lead_id in sorted(seeded.appointments, key=lambda lead: seeded.booked[lead]):
        follow_date_field(replay, member_id, "lead", lead_id)
    with replay.db() as session:
        rows = session.execute(
            select(Appointment.id, Appointment.lead_id, Appointment.starts_at).where(
                Appointment.portal_id == portal_id, Appointment.source == "field"
            )
        ).all()
    _learned(replay, {int(i): seeded.booked[int(lead or 0)] for i, lead, _starts in rows})
    for appointment_id, lead, _starts in rows:
        schedule_appointment(replay, appointment_id, now=seeded.booked[int(lead or 0)])
    return list(rows)


def _learned(replay: Services, moments: dict[int, dt.datetime]) -> None:
    """Each appointment (by id) was learned of at its moment (the KPI's lead time reads
    ``created_at``), not now: the routes that create one take no time of their own."""
    with replay.db() as session:
        for appointment_id, at in moments.items():
            session.execute(update(Appointment).where(Appointment.id == appointment_id)
                            .values(created_at=at).execution_options(synchronize_session=False))  # fmt: skip


@dataclasses.dataclass
class _Timeline:
    """The replay's steps, taken in the order they happened (ties: in the order pushed)."""

    steps: list[Step]
    order: int = 0

    def push(self, at: dt.datetime, kind: str, arg: Any) -> None:
        self.order += 1
        heapq.heappush(self.steps, (at, self.order, kind, arg))


def _play(
    replay: Services, services: Services, portal: Any, portal_id: int, now: dt.datetime,
    counts: dict[str, int],
) -> None:  # fmt: skip
    """Reminders at their due times and their delivery checks, the SMS workflow set up, the
    clients' answers a little after a chat reminder (a move or a cancel talked over, a
    consent given), a cancelled time refilled from the waitlist and that visit's outcome,
    the no-shows' outcomes and their re-invitations: in the order they happened."""
    rng = random.Random(7)
    with replay.db() as session:
        timers = session.execute(
            select(Timer.id, Timer.due_at).where(
                Timer.portal_id == portal_id,
                Timer.policy == APPOINTMENT_POLICY,
                Timer.state == TimerState.PENDING,
                Timer.due_at <= now,
            )  # fmt: skip
        ).all()
    line = _Timeline([(due, 0, "remind", timer_id) for timer_id, due in timers])
    heapq.heapify(line.steps)
    line.push(now - dt.timedelta(days=WORKFLOW_SINCE_DAYS), "workflow", None)
    for appointment_id, starts in _no_shows(replay, portal_id, now):
        line.push(starts + dt.timedelta(minutes=30), "no_show", appointment_id)
    while line.steps:
        at, _, kind, arg = heapq.heappop(line.steps)
        if kind == "workflow":
            with services.db() as session:
                save_settings(session, portal_id, {"appointments": {"workflow": {
                    "template_id": SMS_TEMPLATE_ID, "document_type": "LEAD"}}})  # fmt: skip
        elif kind == "remind":
            _on_remind(rng, replay, portal, line, arg, at, counts)
        elif kind == "check":
            _check(replay, arg, at)
        elif kind == "came":
            record_outcome(replay, arg, VisitOutcome.CAME, source="button", by=ASKED_MASTER,
                           at=at)  # fmt: skip
        elif kind == "no_show":
            _on_no_show(replay, line, arg, at, now)
        elif kind == "reinvite":
            _on_reinvite(replay, portal, line, arg, at, counts)
        elif kind == "rebook":
            visit = _rebook(replay, portal, portal_id, arg, at)
            if visit is not None and visit[0] < now:
                line.push(visit[0], "came", visit[1])
        else:
            _on_reply(rng, replay, portal, portal_id, line, at, arg, now)
            counts["replies"] += 1


def _on_remind(
    rng: random.Random, replay: Services, portal: Any, line: _Timeline, timer_id: int,
    at: dt.datetime, counts: dict[str, int],
) -> None:  # fmt: skip
    """A reminder due: sent, its delivery check and the client's answer to come."""
    reply = _remind(rng, replay, portal, timer_id, at)
    if reply is None:
        return
    counts["reminders"] += 1
    for due, check in _checks_due(replay, timer_id):
        line.push(due, "check", check)
    if reply:
        line.push(reply[0], "reply", reply[1:])


def _on_reply(
    rng: random.Random, replay: Services, portal: Any, portal_id: int, line: _Timeline,
    at: dt.datetime, arg: tuple[int, str], now: dt.datetime,
) -> None:  # fmt: skip
    """The client writes in the chat: what the reply route makes of it, and what follows —
    the client's next message, a consent to offers given with a «1», a freed time refilled."""
    chat_id, text = arg
    outcome, follow = _client_writes(replay, portal, at, chat_id, text)
    if follow is not None:  # the client answers the bot's question or offer
        line.push(at + dt.timedelta(minutes=rng.uniform(1, 5)), "reply", (chat_id, follow))
    if outcome == "confirmed" and rng.random() < CONSENT_SHARE:
        _consent(replay, portal_id, chat_id, at)
    if outcome == "cancelled":
        visit = _refill(replay, portal, portal_id, chat_id, at)
        if visit is not None and visit[0] < now:
            line.push(visit[0], "came", visit[1])


def _no_shows(replay: Services, portal_id: int, now: dt.datetime) -> list[tuple[int, dt.datetime]]:
    """The appointments whose client did not come (the CRM's stage), before ``now``."""
    with replay.db() as session:
        rows = session.execute(
            select(Appointment.id, Appointment.starts_at)
            .join(Journey, Journey.id == Appointment.journey_id)
            .where(Appointment.portal_id == portal_id, Journey.no_show_at.is_not(None),
                   Appointment.starts_at < now - dt.timedelta(hours=1))
        ).all()  # fmt: skip
    return [(int(i), starts) for i, starts in rows]


def _on_no_show(
    replay: Services, line: _Timeline, appointment_id: int, at: dt.datetime, now: dt.datetime
) -> None:
    """Half an hour after the visit: its outcome (the no-show stage the manager set counts,
    b24app/appointments/outcomes.py) and the re-invitation armed as the product arms it."""
    record_outcome(replay, appointment_id, VisitOutcome.NO_SHOW, source="button",
                   by=ASKED_MASTER, at=at)  # fmt: skip
    if not schedule_reinvitation(replay, appointment_id, now=at):
        return
    with replay.db() as session:
        timer = session.execute(
            select(Timer.id, Timer.due_at).where(
                Timer.policy == REINVITE_POLICY, Timer.level == reinvite_level(appointment_id))
        ).first()  # fmt: skip
    if timer is not None and timer.due_at < now:
        line.push(timer.due_at, "reinvite", int(timer.id))


def _on_reinvite(
    replay: Services, portal: Any, line: _Timeline, timer_id: int, at: dt.datetime,
    counts: dict[str, int],
) -> None:  # fmt: skip
    """A re-invitation due at ``at``, by the policy's own steps (consent asked, claimed, sent
    into the chat); every :data:`REBOOK_EVERY` th client who got one answers in the chat a
    few hours later and is booked again."""
    with replay.db() as session:
        timer = session.get(Timer, timer_id)
        snap = claim_reinvitation(session, timer, at) if timer is not None else None
        level = timer.level if timer is not None else ""
    if not isinstance(snap, dict) or send_reinvitation(replay, snap, now=at) != "fired":
        return
    counts["reinvitations"] += 1
    if snap["chat_id"] and counts["reinvitations"] % REBOOK_EVERY == 1:
        answered = at + dt.timedelta(hours=3)
        _in_chat(portal, int(snap["chat_id"]), "Да, запишите меня, пожалуйста", answered)
        line.push(answered + dt.timedelta(minutes=20), "rebook", reinvite_appointment(level))


def _rebook(
    replay: Services, portal: Any, portal_id: int, missed_id: int, at: dt.datetime
) -> tuple[dt.datetime, int] | None:
    """The salon's admin books the re-invited client of no-show ``missed_id`` at ``at``, as
    in Bitrix24: the lead converted into contact + deal (the deal's event read by its job
    body), a Booking booking in :data:`REBOOK_DAYS` days at noon with the contact and the
    deal, read by the booking event's job body. Returns (when that visit ends, its
    appointment id), or None."""
    with replay.db() as session:
        missed = session.get(Appointment, missed_id)
        lead_id, service = (missed.lead_id, missed.service) if missed is not None else (None, "")
    if lead_id is None:
        return None
    deal_id = portal.crm.convert_lead(lead_id, by_user=ASKED_MASTER, at=at.replace(tzinfo=dt.UTC))
    process_entity(DEAL, replay, portal.member_id, deal_id)
    contact_id = int((portal.crm.deal(deal_id) or {}).get("CONTACT_ID") or 0)
    day = (at + SALON_OFFSET + dt.timedelta(days=REBOOK_DAYS)).date()
    begin = int(dt.datetime.combine(day, dt.time(12), tzinfo=ZoneInfo(SALON_ZONE)).timestamp())
    period = {"from": {"timestamp": begin, "timezone": SALON_ZONE},
              "to": {"timestamp": begin + 3600, "timezone": SALON_ZONE}}  # fmt: skip
    result = replay.bitrix(portal.member_id).batch({
        "book": ("booking.v1.booking.add", {"fields": {
            "resourceIds": [REFILL_RESOURCE], "datePeriod": period, "name": service or "Визит"}}),
        "client": ("booking.v1.booking.client.set", {"bookingId": "$result[book][id]",
            "clients": [{"id": contact_id, "type": {"module": "crm", "code": "CONTACT"}}]}),
        "deal": ("booking.v1.booking.externaldata.set", {"bookingId": "$result[book][id]",
            "externalData": [{"moduleId": "crm", "entityTypeId": "DEAL", "value": deal_id}]}),
    }, halt=True)  # fmt: skip
    booked = result.results.get("book")
    if not isinstance(booked, dict) or not booked.get("id"):
        return None
    return _booked(replay, portal.member_id, portal_id, int(booked["id"]), at)


def _consent(replay: Services, portal_id: int, chat_id: int, at: dt.datetime) -> None:
    """The client agreed in the chat to hear of free times and offers (the text the salon
    shows, b24app/consent)."""
    with replay.db() as session:
        text = load_settings(session, portal_id)["consent"]["text"]["ru"]
        record_consent(session, portal_id, Contact(chat_id=chat_id), source="chat", text=text,
                       channel="telegram", now=at)  # fmt: skip


def _remind(
    rng: random.Random, replay: Services, portal: Any, timer_id: int, at: dt.datetime
) -> tuple[dt.datetime, int, str] | tuple[()] | None:
    """The timer claimed and its reminder sent at ``at``: None if not claimed, else the
    client's answer to come (empty if none)."""
    with replay.db() as session:
        timer = session.get(Timer, timer_id)
        claimed = claim_appointment_timer(replay, session, timer, at) if timer else None
    if not isinstance(claimed, dict):
        return None
    send_appointment_reminder(replay, claimed, now=at)
    return _client_answer(rng, replay, portal, claimed, at) or ()


def _checks_due(replay: Services, timer_id: int) -> list[tuple[dt.datetime, int]]:
    """The delivery check a reminder's chat send armed (b24app/appointments/delivery.py):
    (due, timer id)."""
    with replay.db() as session:
        timer = session.get(Timer, timer_id)
        if timer is None:
            return []
        rows = session.execute(
            select(Timer.due_at, Timer.id).where(
                Timer.portal_id == timer.portal_id, Timer.policy == CHECK_POLICY,
                Timer.level == timer.level, Timer.state == TimerState.PENDING,
            )
        ).all()  # fmt: skip
    return [(due, timer_id) for due, timer_id in rows]


def _check(replay: Services, timer_id: int, at: dt.datetime) -> None:
    """A chat send's delivery check at ``at``, by the check policy's own steps: the chat read
    back, its mark recorded, a send found undelivered falling through to the workflow."""
    with replay.db() as session:
        timer = session.get(Timer, timer_id)
        claimed = claim_delivery_check(replay, session, timer, at) if timer else None
    if isinstance(claimed, dict):
        check_delivery(replay, claimed, now=at)


def _client_writes(
    replay: Services, portal: Any, at: dt.datetime, chat_id: int, text: str
) -> tuple[str, str | None]:
    """The client's answer in the emulated chat (at its time) and through the reply route;
    returns what the route made of it and what the client writes next (a yes to
    «отменить?», a time the bot offered)."""
    _in_chat(portal, chat_id, text, at)
    outcome = handle_reply(replay, portal.member_id, chat_id, text, now=at)
    if outcome == "cancel_asked":
        return outcome, "Да"
    if outcome == "times_offered":
        with portal.lock:
            offer = portal.chats.lines.chats[chat_id].messages[-1].text
        found = OFFERED.search(offer)
        return outcome, found.group(0) if found else None
    return outcome, None


def _refill(
    replay: Services, portal: Any, portal_id: int, chat_id: int, at: dt.datetime
) -> tuple[dt.datetime, int] | None:
    """The visit just cancelled in chat ``chat_id``: its time offered at ``at`` by the
    refill's own job body (to the waitlist's clients and the recent no-shows with consent,
    each in their chat), and taken by the first offered client's «Да» a few minutes later;
    the booking is then read by the booking event's job body. Returns (when that visit ends,
    its appointment id), or None."""
    with replay.db() as session:
        freed = session.execute(
            select(Appointment.id, Appointment.starts_at, Appointment.service)
            .where(Appointment.portal_id == portal_id, Appointment.chat_id == chat_id,
                   Appointment.status == AppointmentStatus.CANCELLED)
            .order_by(Appointment.starts_at.desc()).limit(1)
        ).first()  # fmt: skip
    if freed is None:
        return None
    begin = int(freed.starts_at.replace(tzinfo=dt.UTC).timestamp())
    slot = {"portal_id": portal_id, "appointment_id": freed.id, "start": begin,
            "end": begin + 3600, "resource_ids": [REFILL_RESOURCE], "zone": SALON_ZONE,
            "service": freed.service or "Визит"}  # fmt: skip
    offered = refill.offer_freed(replay, portal.member_id, slot, now=at)
    if not offered:
        return None
    taker, answered = offered[0][0], at + dt.timedelta(minutes=5)
    _in_chat(portal, taker, "Да", answered)
    if refill.answer(replay, portal.member_id, taker, "Да") != "refilled":
        return None
    with replay.db() as session:
        booking_id = session.scalar(select(SlotRefill.booking_id).where(
            SlotRefill.portal_id == portal_id, SlotRefill.freed_appointment_id == freed.id))  # fmt: skip
    if booking_id is None:
        return None
    return _booked(replay, portal.member_id, portal_id, int(booking_id), answered)


def _booked(
    replay: Services, member_id: str, portal_id: int, booking_id: int, at: dt.datetime
) -> tuple[dt.datetime, int] | None:
    """A booking made at ``at`` read by the booking event's job body: (when that visit ends,
    its appointment id), or None."""
    process_booking(replay, member_id, booking_id)
    with replay.db() as session:
        taken = session.execute(select(Appointment.id, Appointment.starts_at).where(
            Appointment.portal_id == portal_id, Appointment.booking_id == booking_id)).first()  # fmt: skip
    if taken is None:
        return None
    _learned(replay, {int(taken.id): at})
    return taken.starts_at + dt.timedelta(hours=1), int(taken.id)


def _in_chat(portal: Any, chat_id: int, text: str, at: dt.datetime) -> None:
    """The client's message in the emulated chat, at its time."""
    with portal.lock:
        room = portal.chats.lines.chats[chat_id]
        message = portal.chats.lines.add_message(room, room.client_user_id, "client", text)
        message.created = at.replace(tzinfo=dt.UTC).timestamp()


def _empty_redis_db(redis: Redis) -> Redis:
    """A database of the same Redis server that holds nothing (the replay's own, emptied
    after it: a ``B24APP_REDIS_URL`` shared with other data keeps that data)."""
    pool = redis.connection_pool
    kwargs = dict(pool.connection_kwargs)
    for db in range(15, 0, -1):
        if db == int(kwargs.get("db") or 0):
            continue
        conn = Redis(connection_pool=ConnectionPool(connection_class=pool.connection_class,
                                                    **{**kwargs, "db": db}))  # fmt: skip
        if conn.dbsize() == 0:
            return conn
        conn.close()
    raise RuntimeError("the demo's replay needs an empty Redis database (1-15)")


def _client_answer(
    rng: random.Random, services: Services, portal: Any, claimed: dict[str, Any],
    at: dt.datetime,
) -> tuple[dt.datetime, int, str] | None:  # fmt: skip
    """Whether (and when, and what) the client answers the reminder just sent to their chat;
    the reminder in the emulated chat gets the time it was sent at."""
    with services.db() as session:
        appt = session.get(Appointment, claimed["appointment_id"])
        if appt is None or appt.chat_id is None or appt.reminded_at != at:
            return None  # not delivered to a chat this time
        if appt.reminded_via != "chat":
            return None
        chat_id, starts, confirmed = int(appt.chat_id), appt.starts_at, appt.confirmed_at
    with portal.lock:
        sent = portal.chats.lines.chats[chat_id].messages[-1]
        sent.created = at.replace(tzinfo=dt.UTC).timestamp()
    if confirmed is not None:
        return None
    roll = rng.random()
    for text, weight in REPLIES:
        if roll < weight:
            answer = at + dt.timedelta(minutes=rng.uniform(2, 90))
            return (answer, chat_id, _wording(text, starts)) if answer < starts else None
        roll -= weight
    return None


def _wording(reply: str, starts: dt.datetime) -> str:
    """What the client writes for ``reply`` about a visit at ``starts`` (naive UTC)."""
    if reply == "move":
        day = (starts + SALON_OFFSET + dt.timedelta(days=1)).date()
        return f"Можно перенести на {day:%d.%m} в 15:00?"
    if reply == "cancel":
        return "Отмените, пожалуйста, запись"
    return reply
