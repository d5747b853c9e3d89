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
   moments they happened (:func:`devportal.demo_replay.replay_reminders`): each booked lead's visit time (a lead
   date field) read by the date-field route, each reminder claimed and sent over REST —
   the client's open-line chat, else the SMS workflow (set up 45 days ago), else a to-do —
   and the clients' answers in their chats («1», «не смогу, позовите администратора», a move,
   a cancel refilled from Booking's waitlist) through the reply route; walk-ins book the next
   free hour (too soon for a reminder), and a client the reminder reached misses fewer
   visits, which is what the dashboard's "reminded vs not" shows;
5. three new chat leads arrive as real events now: their first-reply timers fire in 3
   minutes while you watch; a WhatsApp client silent for 3 days is booked, and the worker
   sends her confirmation request by the SMS workflow (her 24 h window is closed).

Random but reproducible (fixed seed). Only the demo (``devportal.demo``) uses this module.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from dataclasses import dataclass
from dataclasses import field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy import update

from b24app.context import Services
from b24app.settings import save_settings
from b24app.storage.models import CampaignCost
from b24app.storage.models import Journey
from b24app.storage.models import Portal
from b24app.storage.models import Timer
from b24app.storage.models import TimerState
from b24app.storage.models import utc_now
from devportal.connectors import backdate_client

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
    # (lead, deal) of the WhatsApp client silent for SILENT_DAYS days
    silent: tuple[int, int] = (0, 0)


def _pick(rng: random.Random, weights: dict[Any, float]) -> Any:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def prepare_portal(portal: Any) -> None:
    """The salon's staff and its open-line / walk-in sources (before the app is installed)."""
    for uid, (name, last, *_rest) in STAFF.items():
        if uid not in portal.people.users:
            portal.people.add_user(uid, NAME=name, LAST_NAME=last, UF_DEPARTMENT=[2],
                                   WORK_POSITION="Администратор")  # fmt: skip
    # Booking's own confirmation and reminder are off for the masters (the salon lets the app
    # remind in the chat) and left on, as by default, for the rooms: the settings page shows
    # both sides (docs/appointments.md, "Beside Bitrix24 Booking's own messages").
    portal.booking.types.switch(1, isConfirmationNotificationOn=False,
                                isReminderNotificationOn=False)  # fmt: skip
    # The salon's booking statuses (with the IDs the app would create, so it reuses them).
    from b24app.install.stages import STAGES

    have = {r["STATUS_ID"] for r in portal.crm.statuses.values() if r["ENTITY_ID"] == "STATUS"}
    for stage, sort in (("qualified", 23), ("confirmed", 26), ("came", 45), ("no_show", 70)):
        spec = STAGES[stage]
        if spec["status_id"] not in have:
            portal.crm.add_status("STATUS", spec["status_id"], spec["name"]["ru"], sort, "", False)
    if VISIT_FIELD not in portal.crm.uf_names():
        portal.crm.add_lead_field(VISIT_FIELD, "datetime", "Дата и время визита")
    known = {r["STATUS_ID"] for r in portal.crm.statuses.values() if r["ENTITY_ID"] == "SOURCE"}
    for i, (code, (label, _w, _chat)) in enumerate(SOURCES.items()):
        if label and code not in known:
            portal.crm.add_status("SOURCE", code, label, 200 + i, "", False)


# The salon connected its SMS workflow this many days ago: before, a client without an open
# chat was reminded by a to-do for the manager only.
WORKFLOW_SINCE_DAYS = 45
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
    run = _Story(portal, statuses or STATUSES, now or utc_now())
    for _ in range(JOURNEYS):
        run.journey()
    _seed_waitlist(portal, run.moment, run.out)
    run.out.seconds = time.perf_counter() - started
    return run.out


STAFF_WEIGHTS = {uid: s[4] for uid, s in STAFF.items()}
SOURCE_WEIGHTS = {code: s[1] for code, s in SOURCES.items()}
SERVICE_WEIGHTS = {i: s[2] for i, s in enumerate(SERVICES)}


@dataclass
class _Story:
    """One seeding run: the portal, its two random streams (``story`` apart from ``rng`` so
    the CRM history's draws stay as they were) and what was seeded so far. The order of the
    draws is the history: change it and every figure of the demo changes."""

    portal: Any
    statuses: dict[str, str]
    moment: dt.datetime
    rng: random.Random = field(default_factory=lambda: random.Random(2026))
    story: random.Random = field(default_factory=lambda: random.Random(11))
    out: Seeded = field(default_factory=Seeded)

    def move(self, lead: int, who: int, status: str, at: dt.datetime, **extra: Any) -> bool:
        """The lead moved to ``status`` at ``at`` (not if that is still to come)."""
        if at >= self.moment:
            return False
        self.portal.crm.update_lead(lead, {"STATUS_ID": status, **extra},
                                    at=at.replace(tzinfo=dt.UTC), by_user=who, events=False)  # fmt: skip
        return True

    def journey(self) -> None:
        """A client writes or calls; a manager answers (or not), qualifies, books."""
        rng, moment = self.rng, self.moment
        lead_id, source, manager, price, created = self._lead()
        chat = SOURCES[source][2]
        if source == "WALKIN":
            reply_s = rng.uniform(20, 90)
        else:
            reply_s = rng.lognormvariate(0, 0.7) * STAFF[manager][2]
        if rng.random() < 0.04 and moment - created > dt.timedelta(hours=2):
            return  # nobody ever answered
        replied = created + dt.timedelta(seconds=reply_s)
        if replied >= moment:
            return
        self.out.replies[lead_id] = (created, replied, manager, chat)
        self.move(lead_id, manager, "IN_PROCESS", replied)
        if rng.random() < 0.08:
            self.move(lead_id, manager, "JUNK", replied + dt.timedelta(minutes=rng.randint(2, 30)))
            return
        # Slow replies lose clients: the slow manager qualifies fewer.
        keep = 0.5 if reply_s < 600 else 0.3
        if rng.random() > keep:
            return
        qualified = replied + dt.timedelta(minutes=rng.randint(5, 90))
        if self.move(lead_id, manager, self.statuses["qualified"], qualified):
            self._visit(lead_id, source, manager, price, qualified)

    def _lead(self) -> tuple[int, str, int, int, dt.datetime]:
        """A new lead at a past moment: (id, source, manager, service price, created)."""
        rng, moment = self.rng, self.moment
        # More leads lately (the AI bots were rolled out), working hours 9–21 Moscow time.
        day_back = int(DAYS * (1 - rng.random() ** 0.8))
        local_hour = rng.uniform(9, 21)
        created = (moment - dt.timedelta(days=day_back)).replace(
            hour=0, minute=0, second=0, microsecond=0
        ) + dt.timedelta(hours=local_hour - 3)
        if created > moment - dt.timedelta(minutes=20):
            created = moment - dt.timedelta(minutes=rng.randint(20, 600))
        source = _pick(rng, SOURCE_WEIGHTS)
        manager = _pick(rng, STAFF_WEIGHTS)
        service, price, _w = SERVICES[_pick(rng, SERVICE_WEIGHTS)]
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
        at = created.replace(tzinfo=dt.UTC)
        lead_id = self.portal.crm.add_lead(fields, created_at=at, events=False)
        self.out.leads += 1
        return lead_id, source, manager, price, created

    def _visit(
        self, lead_id: int, source: str, manager: int, price: int, qualified: dt.datetime
    ) -> None:
        """The visit booked at qualification: its time in the lead's field, the client's
        chat, the confirmation, and whether the client came."""
        rng, story, moment, portal = self.rng, self.story, self.moment, self.portal
        appointment = (qualified + dt.timedelta(days=rng.randint(1, 5))).replace(
            minute=0, second=0, microsecond=0
        )
        if source == "WALKIN" or (source == "CALL" and story.random() < 0.5):
            # taken at once, for the next free hour: too soon for any reminder
            appointment = qualified.replace(minute=0, second=0, microsecond=0) + dt.timedelta(
                hours=2
            )
        self.out.appointments[lead_id] = appointment
        self.out.booked[lead_id] = qualified
        visit = portal.now_str(appointment.replace(tzinfo=dt.UTC).timestamp())
        portal.crm.update_lead(lead_id, {VISIT_FIELD: visit}, at=qualified.replace(tzinfo=dt.UTC),
                               by_user=manager, events=False)  # fmt: skip
        reached = appointment - qualified > dt.timedelta(hours=2) and (
            appointment > moment - dt.timedelta(days=WORKFLOW_SINCE_DAYS)
        )
        if SOURCES[source][2]:  # the client's messenger chat, bound to the lead; some closed
            with portal.lock:
                room = portal.chats.lines.open_chat([("lead", lead_id)],
                                                    connector_id=CONNECTORS[source])  # fmt: skip
                room.active = story.random() > 0.15
                if source == "2|TELEGRAM" and lead_id % 6 == 0:
                    portal.chats.lines.connectors.refuse(room.id)  # blocked the salon's bot
            reached = reached or room.active
        if rng.random() > 0.82:
            return  # booked, never confirmed
        confirmed = min(qualified + dt.timedelta(hours=rng.uniform(1, 20)), appointment)
        if not self.move(lead_id, manager, self.statuses["confirmed"], confirmed):
            return
        # What the product sells: a client the reminder reached comes more often.
        if rng.random() < STAFF[manager][3] * (0.7 if reached else 1.8):
            self.move(
                lead_id, manager, self.statuses["no_show"], appointment + dt.timedelta(minutes=30)
            )
        else:
            self.move(lead_id, manager, self.statuses["came"], appointment + dt.timedelta(hours=1),
                      OPPORTUNITY=str(price + rng.choice([0, 0, 0, 300, 500, 1000])))  # fmt: skip


# Clients who called for a time the salon did not have and were put on Booking's waitlist,
# spread over the 90 days: a visit cancelled in the chat is offered to them
# (b24app/appointments/refill.py; the demo's replay, devportal.demo_replay).
WAITLIST = 16


def _seed_waitlist(portal: Any, moment: dt.datetime, out: Seeded) -> None:
    """The waitlist's clients: a call lead with the service's price, converted into contact +
    deal (a waitlist entry names a contact), and their entries, each made the day they called."""
    rng = random.Random(31)  # apart from the journeys' streams: their figures stay as they were
    for i in range(WAITLIST):
        asked = moment - dt.timedelta(days=DAYS * (1 - (i + 0.5) / WAITLIST),
                                      hours=rng.uniform(0, 8))  # fmt: skip
        service, price, _w = SERVICES[_pick(rng, SERVICE_WEIGHTS)]
        manager = _pick(rng, STAFF_WEIGHTS)
        at = asked.replace(tzinfo=dt.UTC)
        lead = portal.crm.add_lead({"TITLE": f"{service} — лист ожидания",
                                    "NAME": rng.choice(CLIENTS), "SOURCE_ID": "CALL",
                                    "ASSIGNED_BY_ID": manager, "CURRENCY_ID": "RUB",
                                    "OPPORTUNITY": str(price)}, created_at=at, events=False)  # fmt: skip
        deal = portal.crm.convert_lead(lead, {"OPPORTUNITY": str(price)}, by_user=manager,
                                       at=at + dt.timedelta(minutes=5))  # fmt: skip
        contact = int((portal.crm.deal(deal) or {}).get("CONTACT_ID") or 0)
        with portal.lock:
            portal.waitlist.add(f"{service}: любое свободное время", contact_id=contact,
                                day=asked.date())  # fmt: skip
            # the salon's Telegram chat with the client: where a freed time is offered
            portal.chats.lines.open_chat([("contact", contact)], connector_id="telegrambot")
        out.leads += 1


def fill_store(services: Services, member_id: str, seeded: Seeded) -> dict[str, int]:
    """What the running app would have recorded besides the CRM: appointment times (the
    reminders robot), fired first-reply SLA timers (3 min: reminder; 30 min: escalation to
    the head of department), campaign costs, the owner."""

    breaches = escalations = 0
    with services.db() as session:
        portal = session.scalar(select(Portal).where(Portal.member_id == member_id))
        assert portal is not None
        for lead_id, at in seeded.appointments.items():
            session.execute(
                update(Journey)
                .where(Journey.portal_id == portal.id, Journey.lead_id == lead_id)
                .values(booking_at=at)
            )
        for lead_id, (created, replied, manager, chat) in seeded.replies.items():
            if not chat:
                continue
            for level, minutes, recipient in (("remind", 3, manager), ("escalate", 30, 4)):
                due = created + dt.timedelta(minutes=minutes)
                if replied <= due:
                    break
                session.add(Timer(portal_id=portal.id, journey_key=lead_id, policy="first_reply",
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
        portal.crm.add_lead(
            {"TITLE": f"{what} — Telegram", "NAME": name, "SOURCE_ID": source, "ASSIGNED_BY_ID": 3}
        )  # fmt: skip
        for what, name, source in (
            ("Маникюр", "Вера", "2|TELEGRAM"),
            ("Окрашивание", "Лидия", "3|WHATSAPP"),
            ("Массаж", "Нина", "4|INSTAGRAM"),
        )
    ]


# The master asked after a visit (b24app/appointments/question.py): a booking that began this
# long ago, an hour long, ends half an hour before its question (grace) plus two minutes.
ASKED_MASTER = 6
ASKED_BEGAN_MINUTES = 60 + 30 - 2


def visit_to_ask_about(portal: Any) -> int:
    """A visit that is just over: its master gets the question «пришла?» in about two
    minutes, in their dialog with the app's bot (``/<slug>/page/staff/<master>``)."""
    contact = portal.crm.add_contact("Алина", "Соколова")
    deal = portal.crm.add_deal({"TITLE": "Маникюр — Алина", "CONTACT_ID": contact,
                                "ASSIGNED_BY_ID": ASKED_MASTER, "SOURCE_ID": "2|TELEGRAM"})  # fmt: skip
    began = time.time() - ASKED_BEGAN_MINUTES * 60
    portal.booking.add_booking(began, 60, name="Маникюр", resource_ids=[1], contact_id=contact,
                               deal_id=deal)  # fmt: skip
    return deal


# The WhatsApp client whose 24 h window has closed (issue 22): she wrote this many days ago,
# the manager converted her lead, and her visit is booked for tomorrow morning after the
# start: the app's first message to her (the immediate confirmation request) cannot go into
# the chat and goes by the salon's SMS workflow instead (b24app/appointments/delivery.py).
SILENT_DAYS = 3
SILENT_CLIENT = ("Марина", "Ковалёва")
# Where the salon's clients live: the silent client's booking is in the first of these zones
# where it is daytime now (the booking's own zone wins), so the quiet hours (21:00–09:00)
# do not hold her message till the morning whenever the demo starts.
CLIENT_ZONES = ("Europe/Moscow", "Asia/Yekaterinburg", "Asia/Novosibirsk", "Asia/Vladivostok",
                "Asia/Kamchatka", "Europe/Kaliningrad", "America/New_York")  # fmt: skip


def silent_whatsapp_client(portal: Any) -> tuple[int, int]:
    """Before the install: the WhatsApp client silent for :data:`SILENT_DAYS` days, her lead
    with its chat, converted into contact + deal; returns (lead id, deal id)."""
    wrote = time.time() - SILENT_DAYS * 86400 - 3600
    name, last = SILENT_CLIENT
    lead = portal.crm.add_lead({"TITLE": "Окрашивание — WhatsApp", "NAME": name,
                                "LAST_NAME": last, "SOURCE_ID": "3|WHATSAPP",
                                "ASSIGNED_BY_ID": 2, "CURRENCY_ID": "RUB"},
                               created_at=wrote, events=False)  # fmt: skip
    with portal.lock:
        room = portal.chats.lines.open_chat([("lead", lead)], connector_id="whatsapp")
        portal.chats.lines.add_message(room, room.client_user_id, "client",
                                       "Здравствуйте! Хочу записаться на окрашивание")  # fmt: skip
        backdate_client(room, time.time() - wrote)
    deal = portal.crm.convert_lead(lead, by_user=2, at=wrote + 1800)
    return lead, deal


def book_silent_client(portal: Any, deal_id: int, now: float | None = None) -> int:
    """After the install: her visit tomorrow at 10:00 in her zone (Booking, as the
    administrator books it; ``ONBOOKINGADD`` reaches the app); returns the booking id."""
    deal = portal.crm.deal(deal_id) or {}
    moment = time.time() if now is None else now
    for name in CLIENT_ZONES:
        local = dt.datetime.fromtimestamp(moment, ZoneInfo(name))
        if 10 <= local.hour < 19:
            break
    visit = (local + dt.timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
    return int(portal.booking.add_booking(
        visit.timestamp(), 120, name="Окрашивание", resource_ids=[1],
        contact_id=int(deal.get("CONTACT_ID") or 0) or None, deal_id=deal_id, by_user=2,
        time_zone=name,
    ))  # fmt: skip
