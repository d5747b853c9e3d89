"""The demo salon's appointments replayed through the app's own code (step 4 of
:mod:`devportal.demo_data`): each booked lead's visit time read by the date-field route,
each reminder claimed and sent over REST at its due time (chat → SMS workflow → to-do), and
the clients' «1» / «2» answers in their chats through the reply route.

Only the demo (``devportal.demo``) uses this module.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import heapq
import logging
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from redis import ConnectionPool
from redis import Redis
from sqlalchemy import func
from sqlalchemy import select

from b24app import context
from b24app.appointments.remind import APPOINTMENT_POLICY
from b24app.appointments.remind import claim_appointment_timer
from b24app.appointments.remind import schedule_appointment
from b24app.appointments.remind import send_appointment_reminder
from b24app.appointments.replies import handle_reply
from b24app.appointments.routes import follow_date_field
from b24app.context import Services
from b24app.settings import save_settings
from b24app.storage.models import Appointment
from b24app.storage.models import Portal
from b24app.storage.models import ReminderAttempt
from b24app.storage.models import Timer
from b24app.storage.models import TimerState
from b24app.storage.models import utc_now
from devportal.demo_data import Seeded
from devportal.demo_data import VISIT_FIELD
from devportal.demo_data import WORKFLOW_SINCE_DAYS
from devportal.limits import LeakyBucket

SMS_TEMPLATE_ID = 526  # devportal.rest.workflows.default_templates: the lead "SMS reminder"
# what a client answers a chat reminder with (unconfirmed: the first two weights count)
# «1» confirms; a client who cannot come and asks for a person is the manager's to move
# (a «2» alone is talked over in the chat: b24app/appointments/reschedule.py)
REPLIES = (("1", 0.55), ("Не смогу, позовите администратора", 0.07), ("Спасибо!", 0.05))
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
        save_settings(session, portal_id, {"appointments": {
            "date_field": {"entity": "lead", "field": VISIT_FIELD}}})  # fmt: skip
    with _replaying(services, portal) as replay:
        rows = _arm_appointments(replay, portal.member_id, portal_id, seeded)
        counts = {"appointments": len(rows), "reminders": 0, "replies": 0}
        _play(replay, services, portal, portal_id, now, counts)
        for appointment_id, _lead, starts in rows:
            if starts > now:  # still to come: the real worker sends the rest
                schedule_appointment(services, appointment_id)
        with replay.db() as session:
            counts["attempts"] = int(session.scalar(
                select(func.count(ReminderAttempt.id)).where(ReminderAttempt.portal_id == portal_id)
            ) or 0)  # fmt: skip
    return counts


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
    for appointment_id, lead, _starts in rows:
        schedule_appointment(replay, appointment_id, now=seeded.booked[int(lead or 0)])
    return list(rows)


def _play(
    replay: Services, services: Services, portal: Any, portal_id: int, now: dt.datetime,
    counts: dict[str, int],
) -> None:  # fmt: skip
    """Reminders at their due times, the SMS workflow set up, the clients' answers a little
    after a chat reminder: in the order they happened."""
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
    steps: list[Step] = [(due, i, "remind", timer_id) for i, (timer_id, due) in enumerate(timers)]
    steps.append((now - dt.timedelta(days=WORKFLOW_SINCE_DAYS), -1, "workflow", None))
    heapq.heapify(steps)
    order = len(steps)
    while steps:
        at, _, kind, arg = heapq.heappop(steps)
        if kind == "workflow":
            with services.db() as session:
                save_settings(session, portal_id, {"appointments": {"workflow": {
                    "template_id": SMS_TEMPLATE_ID, "document_type": "LEAD"}}})  # fmt: skip
        elif kind == "remind":
            reply = _remind(rng, replay, portal, arg, at)
            if reply is not None:
                counts["reminders"] += 1
            if reply:
                order += 1
                heapq.heappush(steps, (reply[0], order, "reply", reply[1:]))
        else:
            _client_writes(replay, portal, at, *arg)
            counts["replies"] += 1


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


def _client_writes(replay: Services, portal: Any, at: dt.datetime, chat_id: int, text: str) -> None:
    """The client's answer in the emulated chat (at its time) and through the reply route."""
    with portal.lock:
        room = portal.chats.lines.chats[chat_id]
        message = portal.chats.lines.add_message(room, room.client_user_id, "client", text)
        message.created = at.replace(tzinfo=dt.UTC).timestamp()
    handle_reply(replay, portal.member_id, chat_id, text, now=at)


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
            return (answer, chat_id, text) if answer < starts else None
        roll -= weight
    return None
