"""Appointment reminders benchmark: Redis per pending reminder, send lateness, REST requests
per delivered reminder.

1. **Memory**: ``--appointments`` (10,000) appointments 25–48 h ahead across ``--portals``
   (50) portals, each with the default 24 h / 2 h reminders, armed through
   :func:`b24app.appointments.remind.schedule_appointment`; Redis ``used_memory`` delta per
   pending reminder (offsets already past are skipped, so a little under 2 per appointment).
2. **Live**: with those still pending, ``--live`` (300) more appointments across the same
   portals whose two reminders ("20m" and "8m", a policy minute = 1 s) fall due over
   ``--moments`` seconds, with ``--workers`` real ``b24app worker`` subprocesses. 80 % of the
   clients have an open-line chat, the others fall through to the workflow (configured on every
   portal). Lateness = the timer's ``fired_at`` (after the send completed) − its due time;
   REST = HTTP requests the emulated portals received during the run / reminders delivered
   (targets: p99 ≤ 2 s, ≤ 1.5 requests incl. the chat look-up). Each emulated portal keeps
   Bitrix24's own limit (2 req/s, burst 50).

The database is PostgreSQL (127.0.0.1:5432, a throw-away database) when reachable, else
SQLite. On a loaded 2-core machine the figures are pessimistic; ``--quick`` runs a scaled-down
version (2,000 appointments, 100 live).

    python bench/appointments.py [--appointments 10000] [--portals 50] [--live 300]
                                 [--moments 30] [--workers 2] [--quick] [--database sqlite]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from b24app import context  # noqa: E402
from b24app.appointments.booking import process_booking  # noqa: E402
from b24app.appointments.remind import schedule_appointment  # noqa: E402
from b24app.config import Settings  # noqa: E402
from b24app.settings import save_settings  # noqa: E402
from b24app.storage.models import Appointment  # noqa: E402
from b24app.storage.models import Journey  # noqa: E402
from b24app.storage.models import Portal  # noqa: E402
from b24app.storage.models import ReminderAttempt  # noqa: E402
from b24app.storage.models import Timer  # noqa: E402
from b24app.storage.models import TimerState  # noqa: E402
from b24app.storage.models import utc_now  # noqa: E402
from bench.timers import batch_shape  # noqa: E402
from bench.timers import database  # noqa: E402
from bench.timers import percentiles  # noqa: E402
from bench.timers import requests_by_method  # noqa: E402
from devportal import DevPortal  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.conftest import RedisServer  # noqa: E402
from tests.plugins.worker import WorkerProcess  # noqa: E402


def add_portal(services: Any, emu: DevPortal, index: int) -> tuple[Any, int]:
    portal = emu.create_portal(f"salon{index}")
    portal.prepare_install(api_only=True)
    tokens = portal.tokens_for(1)
    with services.db() as session:
        row = Portal(
            member_id=portal.member_id, domain=portal.domain,
            client_endpoint=portal.client_endpoint, server_endpoint=portal.server_endpoint,
            access_token=tokens.access_token, refresh_token=tokens.refresh_token,
            token_expires_at=dt.datetime.fromtimestamp(tokens.expires_at, dt.UTC).replace(
                tzinfo=None),
            installer_user_id=1,
        )  # fmt: skip
        session.add(row)
        session.flush()
        save_settings(session, row.id, {"appointments": {"workflow": {"template_id": 525}}})
        return portal, row.id


def add_appointments(
    services: Any,
    portal_id: int,
    deals: range,
    starts: list[dt.datetime],
    offsets: list[str] | None = None,
) -> list[int]:
    ids = []
    with services.db() as session:
        now = utc_now()
        for deal_id, starts_at in zip(deals, starts, strict=True):
            journey = Journey(portal_id=portal_id, deal_id=deal_id, entity_type="deal",
                           channel="chat", assigned_by_id=2, created_at=now)  # fmt: skip
            session.add(journey)
            session.flush()
            # client_name as the booking's batch reads it at creation (appointments.names):
            # sending needs no request for it.
            appt = Appointment(portal_id=portal_id, journey_id=journey.id, deal_id=deal_id,
                               source="booking", service="Стрижка", starts_at=starts_at,
                               offsets=offsets, client_name="Анна Петрова")  # fmt: skip
            session.add(appt)
            session.flush()
            ids.append(appt.id)
    return ids


def booking_portal(portal: Any) -> None:
    """The emulated portal's Booking sends no client messages of its own (else the app sends
    no copy: ``b24app/appointments/resources.py``)."""
    with portal.lock:
        for type_id in portal.booking.types.types:
            portal.booking.types.switch(type_id, isConfirmationNotificationOn=False,
                                        isReminderNotificationOn=False)  # fmt: skip


def book_appointments(
    services: Any, portal: Any, portal_id: int, starts: list[dt.datetime],
    chat: Callable[[int], None] = lambda deal_id: None,
) -> list[int]:  # fmt: skip
    """Appointments as Bitrix24 Booking makes them: per start a deal (``chat(deal_id)`` may
    open the client's chat on it) and its journey, a booking in the emulated portal, and the
    booking route's own read of it (:func:`process_booking`: the booking, the client's name
    and chat in one ``batch``), which arms the reminders."""
    ids = []
    for starts_at in starts:
        deal_id = int(portal.add_deal({"TITLE": "Стрижка"}, events=False))
        chat(deal_id)
        with services.db() as session:
            session.add(Journey(portal_id=portal_id, deal_id=deal_id, entity_type="deal",
                                channel="chat", assigned_by_id=2, created_at=utc_now()))  # fmt: skip
        booking_id = portal.add_booking(starts_at.replace(tzinfo=dt.UTC), name="Стрижка",
                                        deal_id=deal_id)  # fmt: skip
        process_booking(services, portal.member_id, booking_id)
        with services.db() as session:
            ids.append(int(session.scalar(select(Appointment.id).where(
                Appointment.portal_id == portal_id, Appointment.booking_id == booking_id))))  # fmt: skip
    return ids


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--appointments", type=int, default=10_000)
    parser.add_argument("--portals", type=int, default=50)
    parser.add_argument("--live", type=int, default=300)
    parser.add_argument("--moments", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chat-share", type=float, default=0.8)
    parser.add_argument("--quick", action="store_true", help="2,000 appointments, 100 live")
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    args = parser.parse_args()
    if args.quick:
        args.appointments, args.live = 2_000, 100

    load_before = os.getloadavg()
    redis_server = RedisServer()
    redis_server.start()
    database_url, drop_database = database(args.database)
    settings = Settings(
        client_id="local.bench.app", client_secret=secrets.token_urlsafe(48),
        public_url=f"http://127.0.0.1:{free_port()}", database_url=database_url,
        redis_url=redis_server.url, secret_key=secrets.token_urlsafe(48),
        allow_insecure_endpoints=True,
    )  # fmt: skip
    services = context.build_services(settings)
    context.set_current(services)
    emu = DevPortal(client_id=settings.client_id, client_secret=settings.client_secret,
                    app_base_url=settings.public_url)  # fmt: skip
    emu.start()
    workers: list[WorkerProcess] = []
    rng = random.Random(12)
    try:
        portals = [add_portal(services, emu, i) for i in range(args.portals)]
        for portal, _portal_id in portals:
            booking_portal(portal)

        # 1. memory per pending reminder: appointments over the next 48 h
        services.redis.flushdb()
        before = int(services.redis.info("memory")["used_memory"])
        now = utc_now()
        per_portal = args.appointments // args.portals
        t0 = time.perf_counter()
        for index, (_portal, portal_id) in enumerate(portals):
            base = 10_000_000 + index * 100_000
            # more than 24 h ahead: a booking made closer gets an immediate confirmation
            # request (issue 22), a burst of sends that is not this bench's subject
            starts = [now + dt.timedelta(seconds=rng.uniform(25 * 3600, 48 * 3600))
                      for _ in range(per_portal)]  # fmt: skip
            for appointment_id in add_appointments(
                services, portal_id, range(base, base + per_portal), starts
            ):
                schedule_appointment(services, appointment_id)
        arm_rate = per_portal * args.portals / (time.perf_counter() - t0)
        after = int(services.redis.info("memory")["used_memory"])
        with services.db() as session:
            pending = len(session.scalars(
                select(Timer.id).where(Timer.state == TimerState.PENDING)).all())  # fmt: skip
        per_reminder = (after - before) / max(pending, 1)

        # 2. live: reminders due over --moments seconds, real workers, real REST
        os.environ["B24APP_SLA_SECONDS_PER_MINUTE"] = "1"
        for _ in range(args.workers):
            workers.append(WorkerProcess(settings).start())
        # The first reminder ("20m" = 20 s before) falls due lead_in - 20 s after the set is
        # created: long enough for all of them to be armed first (else lateness = arming time).
        lead_in = 20.0 + max(20.0, args.live / 5)  # each booking read by the booking route
        base = utc_now() + dt.timedelta(seconds=lead_in)
        created_at = time.time()
        live_ids: list[int] = []
        for _portal, portal_id in portals:  # the live set's offsets, for what is booked now
            with services.db() as session:
                save_settings(session, portal_id, {"appointments": {"offsets": ["20m", "8m"]}})
        booking_http = emu.recorder.http_requests()
        for i in range(args.live):
            portal, portal_id = portals[i % len(portals)]
            with_chat = rng.random() < args.chat_share
            live_ids += book_appointments(
                services, portal, portal_id, [base + dt.timedelta(seconds=i % args.moments)],
                lambda deal: portal.open_chat([("deal", deal)]) if with_chat else None,  # noqa: B023
            )  # fmt: skip
        booking_http = emu.recorder.http_requests() - booking_http
        http_before = emu.recorder.http_requests()
        since = time.time()
        armed_at = time.time()
        expected = 2 * len(live_ids)
        deadline = time.time() + lead_in + args.moments + 90
        live_timers: list[Timer] = []
        while time.time() < deadline:
            with services.db() as session:
                live_timers = list(session.scalars(select(Timer).where(
                    Timer.policy == "appointment",
                    Timer.level.like("8m@%") | Timer.level.like("20m@%"))))  # fmt: skip
                session.expunge_all()
            if sum(t.state != TimerState.PENDING for t in live_timers) >= expected:
                break
            time.sleep(1)
        time.sleep(1)
        # the chats read back for the clients' answers are the answer's cost, not the send's
        # (bench/reply_watch.py measures them)
        reads = sum(1 for c in emu.calls("batch", in_batch=False)
                    if c.time >= since and batch_shape(c) == "batch[chat_history]")  # fmt: skip
        http = emu.recorder.http_requests() - http_before - reads
        fired = [t for t in live_timers if t.state == TimerState.FIRED and t.fired_at]
        lateness = [(t.fired_at - t.due_at).total_seconds() for t in fired]  # type: ignore[operator]
        with services.db() as session:
            ok_attempts = session.scalars(select(ReminderAttempt).where(
                ReminderAttempt.ok.is_(True), ReminderAttempt.appointment_id.in_(live_ids))).all()  # fmt: skip
            by_channel: dict[str, int] = {}
            for attempt in ok_attempts:
                by_channel[attempt.channel] = by_channel.get(attempt.channel, 0) + 1
        sent = sum(by_channel.values())
        p50, p99, pmax = percentiles(lateness)
        print()
        print(f"database: {database_url.split(':', 1)[0]}, workers: {args.workers}, "
              f"portals: {args.portals}")  # fmt: skip
        print(f"{'metric':<56}{'value':>12}{'target':>10}")
        print(f"{'appointments in the next 48 h':<56}{per_portal * args.portals:>12}")
        print(f"{'pending reminders':<56}{pending:>12}")
        print(f"{'arming rate (appointments/s)':<56}{arm_rate:>12.0f}")
        print(f"{'Redis bytes per pending reminder':<56}{per_reminder:>12.0f}")
        label = f"live: {args.live} appointments, reminders fired"
        print(f"{label:<56}{len(fired):>12}{expected:>10}")
        print(f"{'delivered: chat / workflow / todo':<56}"
              f"{'/'.join(str(by_channel.get(c, 0)) for c in ('chat', 'workflow', 'todo')):>12}")  # fmt: skip
        print(f"{'send lateness p50 (s)':<56}{p50:>12.3f}")
        print(f"{'send lateness p99 (s)':<56}{p99:>12.3f}{'<= 2':>10}")
        print(f"{'send lateness max (s)':<56}{pmax:>12.3f}")
        print(f"{'live set armed in (s; its first reminder due at)':<56}"
              f"{armed_at - created_at:>12.1f}{lead_in - 20:>10.0f}")  # fmt: skip
        per = http / sent if sent else float("nan")
        print(f"{'REST requests per delivered reminder':<56}{per:>12.2f}{'<= 1.5':>10}")
        print(f"{'  (the chats read back for answers, not counted)':<56}{reads:>12}")
        print(f"{'  (the bookings read, before: requests per booking)':<56}"
              f"{booking_http / max(args.live, 1):>12.2f}")  # fmt: skip
        print(f"requests: {requests_by_method(emu, since)}")
        loads = " → ".join(f"{a:.2f}" for a in (load_before[0], os.getloadavg()[0]))
        print(f"{'load average (1 min) at start → end':<56}{loads:>12}")
    finally:
        for worker in workers:
            worker.stop()
        emu.stop()
        services.dispose()
        redis_server.stop()
        drop_database()


if __name__ == "__main__":
    main()
