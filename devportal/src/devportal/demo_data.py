"""The demo salon's history: ~90 days, ~1,500 client journeys, 5 staff, bookings, no-shows,
revenue, two campaigns with costs, SLA breaches and escalations, and a few live timers.

How it is seeded, fast and through the product's own paths where one exists:

1. before the install, the journeys are written straight into the emulator's CRM
   (``add_lead``/``update_lead`` with past times and ``events=False``: in memory, the stage
   history recorded as Bitrix24 would) — what a salon's portal holds when it installs the app;
2. the install's own **backfill** imports them (``crm.lead.list`` + stage history in chained
   batches: a handful of HTTP requests for 1,500 leads);
3. what the portal does not say is filled into the app's store the way the running app
   would have recorded it: appointment times (the reminders robot), the first-reply SLA
   timers that fired (breaches, escalations), the owner's campaign costs;
4. the appointments and their reminders are **replayed through the app's code** at the
   moments they happened (:func:`replay_reminders`): each booked lead's visit time (a lead
   date field) read by the date-field route, each reminder claimed and sent over REST —
   the client's open-line chat, else the SMS workflow (set up 45 days ago), else a to-do —
   and the clients' answers in their chats («1», «не смогу, позовите администратора») through
   the reply route; walk-ins book the next free hour (too soon for a reminder), and a client
   the reminder reached misses fewer visits, which is what the dashboard's "reminded vs not" shows;
5. three new chat leads arrive as real events now: their first-reply timers fire in 3
   minutes while you watch.

Random but reproducible (fixed seed). Only the demo (``devportal.demo``) uses this module.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import heapq
import logging
import random
import time
from dataclasses import dataclass
from dataclasses import field
from decimal import Decimal
from typing import Any

from redis import ConnectionPool
from redis import Redis
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import update

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
from b24app.storage.models import CampaignCost
from b24app.storage.models import Lead
from b24app.storage.models import Portal
from b24app.storage.models import ReminderAttempt
from b24app.storage.models import Timer
from b24app.storage.models import TimerState
from b24app.storage.models import utc_now
from devportal.limits import LeakyBucket

DAYS = 90
JOURNEYS = 1500

# id: (name, last name, median first reply in seconds, no-show probability, weight)
STAFF: dict[int, tuple[str, str, float, float, float]] = {
    2: ("Мария", "Менеджерова", 95, 0.15, 1.2),
    3: ("Олег", "Продажин", 1100, 0.18, 1.0),  # the slow one
    4: ("Ирина", "Старшая", 160, 0.14, 0.8),
    5: ("Светлана", "Быстрова", 55, 0.10, 1.1),
    6: ("Дмитрий", "Мастеров", 130, 0.24, 0.9),
}
# source id: (name or None if the portal has it, weight, is a chat)
SOURCES: dict[str, tuple[str | None, float, bool]] = {
    "2|TELEGRAM": (None, 0.22, True),
    "3|WHATSAPP": ("Открытая линия - WhatsApp", 0.20, True),
    "4|INSTAGRAM": ("Открытая линия - Instagram", 0.15, True),
    "WEBFORM": (None, 0.18, False),
    "CALL": (None, 0.17, False),
    "WALKIN": ("Пришёл с улицы", 0.08, False),
}
# service, price ₽, weight
SERVICES = [("Маникюр", 1800, 0.3), ("Стрижка", 2500, 0.25), ("Массаж", 3500, 0.15),
            ("Окрашивание", 6500, 0.12), ("Брови", 1200, 0.18)]  # fmt: skip
CAMPAIGNS = {"vk_autumn": ("vk", Decimal(45000)), "yandex_direct": ("yandex", Decimal(60000))}
CLIENTS = ["Анна", "Екатерина", "Ольга", "Наталья", "Юлия", "Дарья", "Полина", "Алина",
           "Виктория", "Ксения", "Марина", "Светлана", "Елена", "Татьяна", "Ирина"]  # fmt: skip


@dataclass
class Seeded:
    """What was seeded, for the summary and the app-side fill."""

    leads: int = 0
    appointments: dict[int, dt.datetime] = field(default_factory=dict)
    # lead id -> when the visit was booked (the time was put into VISIT_FIELD)
    booked: dict[int, dt.datetime] = field(default_factory=dict)
    replies: dict[int, tuple[dt.datetime, dt.datetime, int, bool]] = field(default_factory=dict)
    seconds: float = 0.0


def _pick(rng: random.Random, weights: dict[Any, float]) -> Any:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def prepare_portal(portal: Any) -> None:
    """The salon's staff and its open-line / walk-in sources (before the app is installed)."""
    for uid, (name, last, *_rest) in STAFF.items():
        if uid not in portal.users:
            portal.add_user(uid, NAME=name, LAST_NAME=last, UF_DEPARTMENT=[2],
                            WORK_POSITION="Администратор")  # fmt: skip
    # The salon's booking statuses (with the IDs the app would create, so it reuses them).
    from b24app.install.stages import STAGES

    have = {r["STATUS_ID"] for r in portal.statuses.values() if r["ENTITY_ID"] == "STATUS"}
    for stage, sort in (("qualified", 23), ("confirmed", 26), ("came", 45), ("no_show", 70)):
        spec = STAGES[stage]
        if spec["status_id"] not in have:
            portal._add_status("STATUS", spec["status_id"], spec["name"]["ru"], sort, "", False)
    if VISIT_FIELD not in portal.uf_names():
        portal.add_lead_field(VISIT_FIELD, "datetime", "Дата и время визита")
    known = {r["STATUS_ID"] for r in portal.statuses.values() if r["ENTITY_ID"] == "SOURCE"}
    for i, (code, (label, _w, _chat)) in enumerate(SOURCES.items()):
        if label and code not in known:
            portal._add_status("SOURCE", code, label, 200 + i, "", False)


# The salon connected its SMS workflow this many days ago: before, a client without an open
# chat was reminded by a to-do for the manager only.
WORKFLOW_SINCE_DAYS = 45
SMS_TEMPLATE_ID = 526  # devportal.rest.workflows.default_templates: the lead "SMS reminder"
# what a client answers a chat reminder with (unconfirmed: the first two weights count)
# «1» confirms; a client who cannot come and asks for a person is the manager's to move
# (a «2» alone is talked over in the chat: b24app/appointments/reschedule.py)
REPLIES = (("1", 0.55), ("Не смогу, позовите администратора", 0.07), ("Спасибо!", 0.05))
# The lead field the salon's administrators put the visit time in (the app follows it: the
# "date field" route of b24app.appointments.routes).
VISIT_FIELD = "UF_CRM_VISIT_AT"
# connector of the open-line chat a chat source's client writes from
CONNECTORS = {"2|TELEGRAM": "telegrambot", "3|WHATSAPP": "whatsapp",
              "4|INSTAGRAM": "fbinstagramdirect"}  # fmt: skip
STATUSES = {"new": "NEW", "qualified": "B24APP_QUALIFIED", "confirmed": "B24APP_CONFIRMED",
            "came": "B24APP_CAME", "no_show": "B24APP_NO_SHOW"}  # fmt: skip


def seed_portal(
    portal: Any, statuses: dict[str, str] | None = None, now: dt.datetime | None = None
) -> Seeded:
    """Write the journeys into the emulator's CRM with their past times (no events)."""
    started = time.perf_counter()
    statuses = statuses or STATUSES
    rng = random.Random(2026)
    story = random.Random(11)  # apart from rng: the CRM history's draws stay as they were
    moment = now or utc_now()
    out = Seeded()
    staff_weights = {uid: s[4] for uid, s in STAFF.items()}
    source_weights = {code: s[1] for code, s in SOURCES.items()}
    service_weights = {i: s[2] for i, s in enumerate(SERVICES)}
    utc = dt.UTC
    for _ in range(JOURNEYS):
        # More leads lately (the AI bots were rolled out), working hours 9–21 Moscow time.
        day_back = int(DAYS * (1 - rng.random() ** 0.8))
        local_hour = rng.uniform(9, 21)
        created = (moment - dt.timedelta(days=day_back)).replace(
            hour=0, minute=0, second=0, microsecond=0
        ) + dt.timedelta(hours=local_hour - 3)
        if created > moment - dt.timedelta(minutes=20):
            created = moment - dt.timedelta(minutes=rng.randint(20, 600))
        source = _pick(rng, source_weights)
        manager = _pick(rng, staff_weights)
        service, price, _w = SERVICES[_pick(rng, service_weights)]
        fields: dict[str, Any] = {
            "TITLE": f"{service} — {source.split('|')[-1].title()}",
            "NAME": rng.choice(CLIENTS),
            "SOURCE_ID": source,
            "ASSIGNED_BY_ID": manager,
            "CURRENCY_ID": "RUB",
        }
        if source in ("4|INSTAGRAM", "2|TELEGRAM") and rng.random() < 0.45:
            fields.update(UTM_SOURCE="vk", UTM_MEDIUM="cpc", UTM_CAMPAIGN="vk_autumn")
        elif source == "WEBFORM" and rng.random() < 0.6:
            fields.update(UTM_SOURCE="yandex", UTM_MEDIUM="cpc", UTM_CAMPAIGN="yandex_direct")
        lead_id = portal.add_lead(fields, created_at=created.replace(tzinfo=utc), events=False)
        out.leads += 1
        chat = SOURCES[source][2]
        if source == "WALKIN":
            reply_s = rng.uniform(20, 90)
        else:
            reply_s = rng.lognormvariate(0, 0.7) * STAFF[manager][2]
        if rng.random() < 0.04 and moment - created > dt.timedelta(hours=2):
            continue  # nobody ever answered
        replied = created + dt.timedelta(seconds=reply_s)
        if replied >= moment:
            continue
        out.replies[lead_id] = (created, replied, manager, chat)

        def move(status: str, at: dt.datetime, lead: int = lead_id, who: int = manager,
                 **extra: Any) -> bool:  # fmt: skip
            if at >= moment:
                return False
            portal.update_lead(lead, {"STATUS_ID": status, **extra}, at=at.replace(tzinfo=utc),
                               by_user=who, events=False)  # fmt: skip
            return True

        move("IN_PROCESS", replied)
        if rng.random() < 0.08:
            move("JUNK", replied + dt.timedelta(minutes=rng.randint(2, 30)))
            continue
        # Slow replies lose clients: the slow manager qualifies fewer.
        keep = 0.5 if reply_s < 600 else 0.3
        if rng.random() > keep:
            continue
        qualified = replied + dt.timedelta(minutes=rng.randint(5, 90))
        if not move(statuses["qualified"], qualified):
            continue
        appointment = (qualified + dt.timedelta(days=rng.randint(1, 5))).replace(
            minute=0, second=0, microsecond=0
        )
        if source == "WALKIN" or (source == "CALL" and story.random() < 0.5):
            # taken at once, for the next free hour: too soon for any reminder
            appointment = qualified.replace(minute=0, second=0, microsecond=0) + dt.timedelta(
                hours=2
            )
        out.appointments[lead_id] = appointment
        out.booked[lead_id] = qualified
        visit = portal.now_str(appointment.replace(tzinfo=utc).timestamp())
        portal.update_lead(lead_id, {VISIT_FIELD: visit}, at=qualified.replace(tzinfo=utc),
                           by_user=manager, events=False)  # fmt: skip
        reached = appointment - qualified > dt.timedelta(hours=2) and (
            appointment > moment - dt.timedelta(days=WORKFLOW_SINCE_DAYS)
        )
        if chat:  # the client's messenger chat, bound to the lead; some sessions were closed
            with portal.lock:
                room = portal.openlines.open_chat([("lead", lead_id)],
                                                  connector_id=CONNECTORS[source])  # fmt: skip
                room.active = story.random() > 0.15
            reached = reached or room.active
        if rng.random() > 0.82:
            continue  # booked, never confirmed
        confirmed = min(qualified + dt.timedelta(hours=rng.uniform(1, 20)), appointment)
        if not move(statuses["confirmed"], confirmed):
            continue
        # What the product sells: a client the reminder reached comes more often.
        if rng.random() < STAFF[manager][3] * (0.7 if reached else 1.8):
            move(statuses["no_show"], appointment + dt.timedelta(minutes=30))
        else:
            move(statuses["came"], appointment + dt.timedelta(hours=1),
                 OPPORTUNITY=str(price + rng.choice([0, 0, 0, 300, 500, 1000])))  # fmt: skip
    out.seconds = time.perf_counter() - started
    return out


def fill_store(services: Services, member_id: str, seeded: Seeded) -> dict[str, int]:
    """What the running app would have recorded besides the CRM: appointment times (the
    reminders robot), fired first-reply SLA timers (3 min: reminder; 30 min: escalation to
    the head of department), campaign costs, the owner."""
    from b24app.settings import save_settings

    breaches = escalations = 0
    with services.db() as session:
        portal = session.scalar(select(Portal).where(Portal.member_id == member_id))
        assert portal is not None
        for lead_id, at in seeded.appointments.items():
            session.execute(
                update(Lead)
                .where(Lead.portal_id == portal.id, Lead.lead_id == lead_id)
                .values(booking_at=at)
            )
        for lead_id, (created, replied, manager, chat) in seeded.replies.items():
            if not chat:
                continue
            for level, minutes, recipient in (("remind", 3, manager), ("escalate", 30, 4)):
                due = created + dt.timedelta(minutes=minutes)
                if replied <= due:
                    break
                session.add(Timer(portal_id=portal.id, lead_id=lead_id, policy="first_reply",
                                  level=level, due_at=due, started_at=created,
                                  state=TimerState.FIRED, fired_at=due + dt.timedelta(seconds=1),
                                  recipient_user_id=recipient,
                                  job_id=f"demo-{lead_id}-{level}", payload={"done": ["notify"]}))  # fmt: skip
                breaches += level == "remind"
                escalations += level == "escalate"
        month = utc_now().date().replace(day=1)
        for _ in range(4):
            for campaign, (_src, cost) in CAMPAIGNS.items():
                session.add(CampaignCost(portal_id=portal.id, utm_campaign=campaign,
                                         month=month.strftime("%Y-%m"), cost=cost))  # fmt: skip
            month = (month - dt.timedelta(days=1)).replace(day=1)
        save_settings(session, portal.id, {"owner_user_id": 1})
    return {"breaches": breaches, "escalations": escalations}


def live_leads(portal: Any) -> list[int]:
    """Three chat leads arriving now through real events: SLA timers start, and fire."""
    return [
        portal.add_lead(
            {"TITLE": f"{what} — Telegram", "NAME": name, "SOURCE_ID": source, "ASSIGNED_BY_ID": 3}
        )  # fmt: skip
        for what, name, source in (
            ("Маникюр", "Вера", "2|TELEGRAM"),
            ("Окрашивание", "Лидия", "3|WHATSAPP"),
            ("Массаж", "Нина", "4|INSTAGRAM"),
        )
    ]


def replay_reminders(services: Services, portal: Any, seeded: Seeded) -> dict[str, int]:
    """The appointments of the 90 days and what the app did about them, through the app's own
    code: each booked lead's visit time is read by the date-field route (one ``crm.item.get``
    each), each reminder is claimed and sent over the portal's REST at its due time by the
    functions the timer job runs (chat → SMS workflow → to-do), and each client's answer in
    the chat goes through the reply route. Time is driven, not waited for: every step gets
    the moment it happened at.

    The history is replayed at full speed: the portal's bucket and the app's REST budget are
    lifted for it (it happened over 90 days), the portal's event deliveries are held, and
    the timers' RQ jobs go to a Redis database
    of the replay's own that no worker reads and that is emptied at the end — the replay
    fires them itself. Appointments still to come are then armed for the real worker.
    """
    member_id = portal.member_id
    now = utc_now()
    rng = random.Random(7)
    with services.db() as session:
        portal_id = session.scalar(select(Portal.id).where(Portal.member_id == member_id))
        assert portal_id is not None
        save_settings(session, portal_id, {"appointments": {
            "date_field": {"entity": "lead", "field": VISIT_FIELD}}})  # fmt: skip
    private = _empty_redis_db(services.redis)
    replay = context.build_services(
        dataclasses.replace(services.settings, rest_rate=1e6, rest_burst=10**9), redis=private
    )
    bucket, portal.bucket = portal.bucket, LeakyBucket(1e9, 10**9)
    # The events the replayed calls raise (our reminders in the chats, the managers' tasks)
    # were delivered back then: not now, to a handler that would only drop them.
    with portal.lock:
        portal.events_held = True
    # a line per failed channel is news in a running app, noise in a replay of 1,000 reminders
    chatty = logging.getLogger("b24app.appointments")
    level = chatty.level
    chatty.setLevel(logging.WARNING)
    counts = {"appointments": 0, "reminders": 0, "replies": 0}
    try:
        for lead_id in sorted(seeded.appointments, key=lambda lead: seeded.booked[lead]):
            follow_date_field(replay, member_id, "lead", lead_id)
        with replay.db() as session:
            rows = session.execute(
                select(Appointment.id, Appointment.lead_id, Appointment.starts_at).where(
                    Appointment.portal_id == portal_id, Appointment.source == "field"
                )
            ).all()
        counts["appointments"] = len(rows)
        for appointment_id, lead, _starts in rows:  # armed as when it was booked
            schedule_appointment(replay, appointment_id, now=seeded.booked[int(lead or 0)])
        with replay.db() as session:
            timers = session.execute(
                select(Timer.id, Timer.due_at).where(
                    Timer.portal_id == portal_id,
                    Timer.policy == APPOINTMENT_POLICY,
                    Timer.state == TimerState.PENDING,
                    Timer.due_at <= now,
                )  # fmt: skip
            ).all()
        # (moment, order, kind, argument): reminders at their due times, the workflow set up,
        # the clients' answers a little after a chat reminder
        events: list[tuple[dt.datetime, int, str, Any]] = [
            (due, i, "remind", timer_id) for i, (timer_id, due) in enumerate(timers)
        ]
        events.append((now - dt.timedelta(days=WORKFLOW_SINCE_DAYS), -1, "workflow", None))
        heapq.heapify(events)
        order = len(events)
        while events:
            at, _, kind, arg = heapq.heappop(events)
            if kind == "workflow":
                with services.db() as session:
                    save_settings(session, portal_id, {"appointments": {"workflow": {
                        "template_id": SMS_TEMPLATE_ID, "document_type": "LEAD"}}})  # fmt: skip
            elif kind == "remind":
                with replay.db() as session:
                    timer = session.get(Timer, arg)
                    claimed = claim_appointment_timer(replay, session, timer, at) if timer else None
                if not isinstance(claimed, dict):
                    continue
                send_appointment_reminder(replay, claimed, now=at)
                counts["reminders"] += 1
                reply = _client_answer(rng, replay, portal, claimed, at)
                if reply is not None:
                    order += 1
                    heapq.heappush(events, (reply[0], order, "reply", reply[1:]))
            else:
                chat_id, text = arg
                with portal.lock:
                    room = portal.openlines.chats[chat_id]
                    message = portal.openlines.add_message(
                        room, room.client_user_id, "client", text
                    )
                    message.created = at.replace(tzinfo=dt.UTC).timestamp()
                handle_reply(replay, member_id, chat_id, text, now=at)
                counts["replies"] += 1
        for appointment_id, _lead, starts in rows:
            if starts > now:  # still to come: the real worker sends the rest
                schedule_appointment(services, appointment_id)
        with replay.db() as session:
            counts["attempts"] = int(session.scalar(
                select(func.count(ReminderAttempt.id)).where(ReminderAttempt.portal_id == portal_id)
            ) or 0)  # fmt: skip
    finally:
        chatty.setLevel(level)
        with portal.lock:
            portal.events_held = False
        portal.bucket = bucket
        private.flushdb()
        replay.dispose()
    return counts


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
        sent = portal.openlines.chats[chat_id].messages[-1]
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
