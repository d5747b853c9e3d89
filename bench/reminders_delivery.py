"""Reminders that arrive, over a mixed-channel client base (issue 22).

1. **Replay**: ``--appointments`` (10,000) appointments over ``--portals`` (20) emulated
   portals, 24 h and 2 h reminders each, clients spread over the messengers as a salon's are
   (:data:`MIX`): Telegram, WhatsApp inside its 24 h window, WhatsApp and Instagram silent for
   days (window closed), VK users who never allowed messages (901), WhatsApp numbers the
   messenger cannot reach (131026, "not delivered" later), web chat, and clients with no chat;
   every portal has the SMS business process configured, so every client has some channel.
   Each reminder is fired through the timer job's own functions, then the delivery checks
   (the messenger's marks show at once here). What reached the client is the emulator's truth
   (``devportal.connectors``: the message's verdict; a started workflow counts as its SMS
   sent). Figures: share delivered (target ≥ 98 %), duplicates (a reminder reaching the
   client twice; target 0), REST requests per delivered reminder (target ≤ 1.5).
2. **Live**: ``--live`` (300) more appointments of the same mix with "20m" / "8m" reminders (a
   policy minute = 1 s) falling due over ``--moments`` (30) seconds, ``--workers`` (2) real
   ``b24app worker`` subprocesses: send lateness p50 / p99 (target p99 ≤ 2 s).

    python bench/reminders_delivery.py [--appointments 10000] [--portals 20] [--live 300]
                                       [--live-portals 50] [--quick] [--database sqlite]

``--quick``: 1,000 appointments, 100 live. SQLite unless PostgreSQL is reachable (as
``bench/appointments.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import random
import secrets
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from b24app import context  # noqa: E402
from b24app.appointments.remind import CHECK_POLICY  # noqa: E402
from b24app.config import Settings  # noqa: E402
from b24app.settings import save_settings  # noqa: E402
from b24app.storage.models import ReminderAttempt  # noqa: E402
from b24app.storage.models import Timer  # noqa: E402
from b24app.storage.models import TimerState  # noqa: E402
from b24app.storage.models import utc_now  # noqa: E402
from b24app.timers.fire import fire_timer  # noqa: E402
from bench.appointments import add_portal  # noqa: E402
from bench.appointments import book_appointments  # noqa: E402
from bench.appointments import booking_portal  # noqa: E402
from bench.timers import database  # noqa: E402
from bench.timers import percentiles  # noqa: E402
from bench.timers import requests_by_method  # noqa: E402
from devportal import DevPortal  # noqa: E402
from devportal.connectors import backdate_client  # noqa: E402
from devportal.limits import LeakyBucket  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.conftest import RedisServer  # noqa: E402
from tests.plugins.worker import WorkerProcess  # noqa: E402

DAY = 86400.0
# kind → (share, connector, seconds since the client last wrote, refuses the sender)
MIX: dict[str, tuple[float, str | None, float, bool]] = {
    "telegram": (0.30, "telegrambot", 5 * DAY, False),
    "whatsapp_open": (0.20, "whatsappbytwilio", 2 * 3600, False),
    "whatsapp_closed": (0.15, "whatsappbytwilio", 3 * DAY, False),
    "instagram_closed": (0.05, "fbinstagramdirect", 2 * DAY, False),
    "vk_901": (0.05, "vkgroup", 4 * DAY, True),
    "whatsapp_unreachable": (0.02, "whatsappbytwilio", 3600, True),
    "livechat": (0.08, "livechat", 3 * DAY, False),
    "no_chat": (0.15, None, 0.0, False),
}


def pick(rng: random.Random) -> str:
    roll, acc = rng.random(), 0.0
    for kind, (share, *_rest) in MIX.items():
        acc += share
        if roll < acc:
            return kind
    return "no_chat"


def client_for(portal: Any, deal_id: int, kind: str) -> None:
    _share, connector, silent, refuses = MIX[kind]
    if connector is None:
        return
    chat = portal.open_chat([("deal", deal_id)], connector_id=connector)
    with portal.lock:  # the client's message, written `silent` seconds ago (no event now)
        portal.openlines.add_message(chat, chat.client_user_id, "client", "Здравствуйте")
        backdate_client(chat, silent)
        if refuses:
            portal.openlines.connectors.refuse(chat.id)


def setup(services: Any, emu: DevPortal, count: int, first: int = 0,
          offsets: list[str] | None = None) -> list[tuple[Any, int]]:  # fmt: skip
    portals = [add_portal(services, emu, first + i) for i in range(count)]
    for portal, portal_id in portals:
        booking_portal(portal)
        portal.openlines.connectors.mark_delay = 0.0
        with services.db() as session:
            save_settings(session, portal_id, {"appointments": {
                "quiet_hours": {"from": "00:00", "to": "00:00"},
                **({"offsets": offsets} if offsets else {})}})  # fmt: skip
    return portals


def add_clients(services: Any, portals: list[tuple[Any, int]], n: int, rng: random.Random,
                starts: Any, kinds: dict[int, str]) -> list[int]:  # fmt: skip
    """``n`` clients of the mix, each booked through the booking route (its read finds the
    client's chat: ``bench.appointments.book_appointments``)."""
    ids: list[int] = []
    for i in range(n):
        portal, portal_id = portals[i % len(portals)]
        kind = pick(rng)
        for appointment_id in book_appointments(
            services, portal, portal_id, [starts(i)],
            lambda deal: client_for(portal, deal, kind),  # noqa: B023
        ):  # fmt: skip
            kinds[appointment_id] = kind
            ids.append(appointment_id)
    return ids


def fire_all(services: Any, policy: str, level_prefix: str = "") -> int:
    with services.db() as session:
        ids = list(session.scalars(
            select(Timer.id).where(Timer.policy == policy, Timer.state == TimerState.PENDING,
                                   Timer.level.like(f"{level_prefix}%")).order_by(Timer.id)))  # fmt: skip
    for timer_id in ids:
        fire_timer(timer_id)
    return len(ids)


def truth(services: Any, portals: list[tuple[Any, int]], ids: list[int]) -> Counter[Any]:
    """(appointment, level) → how many times it reached the client, by the emulator."""
    reached: dict[tuple[int, int], bool] = {}  # (portal, message id): ids are per portal
    for portal, portal_id in portals:
        with portal.lock:
            for chat in portal.openlines.chats.values():
                for message in chat.messages:
                    if message.kind != "client":
                        reached[(portal_id, message.id)] = (
                            portal.openlines.connectors.reached_client(message.id))  # fmt: skip
    got: Counter[Any] = Counter()
    wanted = set(ids)
    with services.db() as session:
        for a in session.scalars(select(ReminderAttempt).where(ReminderAttempt.ok.is_(True))):
            if a.appointment_id not in wanted:
                continue
            if a.channel == "workflow" or (
                a.channel == "chat" and reached.get((a.portal_id, a.message_id or 0))
            ):
                got[(a.appointment_id, a.level)] += 1
    return got


def replay(services: Any, emu: DevPortal, args: Any, rng: random.Random) -> dict[str, Any]:
    portals, kinds = setup(services, emu, args.portals), {}
    for portal, _portal_id in portals:
        portal.bucket = LeakyBucket(1e9, 10**9)  # the replay is a history, not a burst
    now = utc_now()
    booking_http = emu.recorder.http_requests()
    ids = add_clients(services, portals, args.appointments, rng,
                      lambda i: now + dt.timedelta(seconds=rng.uniform(30 * 3600, 47 * 3600)),
                      kinds)  # fmt: skip
    booking_http = emu.recorder.http_requests() - booking_http
    http_before = emu.recorder.http_requests()
    since = time.time()
    t0 = time.perf_counter()
    fired = 0
    for level in ("24h@", "2h@"):
        fired += fire_all(services, "appointment", level)
        fire_all(services, CHECK_POLICY)
    took = time.perf_counter() - t0
    http = emu.recorder.http_requests() - http_before
    got = truth(services, portals, ids)
    delivered = sum(1 for n in got.values() if n >= 1)
    with services.db() as session:
        states = Counter(a.state for a in session.scalars(select(ReminderAttempt)))
    return {"reminders": fired, "delivered": delivered,
            "duplicates": sum(1 for n in got.values() if n > 1), "http": http, "took": took,
            "states": states, "kinds": Counter(kinds.values()),
            "by_method": requests_by_method(emu, since),
            "per_booking": booking_http / max(len(ids), 1)}  # fmt: skip


def live(services: Any, emu: DevPortal, args: Any, rng: random.Random) -> list[float]:
    portals, kinds = setup(services, emu, args.live_portals, 1000, ["20m", "8m"]), {}
    os.environ["B24APP_SLA_SECONDS_PER_MINUTE"] = "1"
    workers = [WorkerProcess(services.settings).start() for _ in range(args.workers)]
    try:
        lead_in = 20.0 + max(20.0, args.live / 5)  # each booking read by the booking route
        base = utc_now() + dt.timedelta(seconds=lead_in)
        add_clients(services, portals, args.live, rng,
                    lambda i: base + dt.timedelta(seconds=i % args.moments), kinds)  # fmt: skip
        deadline = time.time() + lead_in + args.moments + 120
        timers: list[Timer] = []
        while time.time() < deadline:
            with services.db() as session:
                timers = list(session.scalars(select(Timer).where(
                    Timer.policy == "appointment",
                    Timer.level.like("8m@%") | Timer.level.like("20m@%"))))  # fmt: skip
                session.expunge_all()
            if timers and all(t.state != TimerState.PENDING for t in timers):
                break
            time.sleep(1)
        unfired = Counter(str(t.state) for t in timers if not t.fired_at)
        if unfired:
            print(f"live: {len(timers)} reminder timers, not fired: {dict(unfired)}")
        return [(t.fired_at - t.due_at).total_seconds() for t in timers if t.fired_at]
    finally:
        for worker in workers:
            worker.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--appointments", type=int, default=10_000)
    parser.add_argument("--portals", type=int, default=20)
    parser.add_argument("--live", type=int, default=300)
    # Bitrix24 allows a portal 2 requests/s: the live set is spread as bench/appointments.py's
    parser.add_argument("--live-portals", type=int, default=50)
    parser.add_argument("--moments", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="1,000 appointments, 100 live")
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    args = parser.parse_args()
    if args.quick:
        args.appointments, args.live = 1_000, 100
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
    rng = random.Random(22)
    try:
        fast = context.build_services(
            dataclasses.replace(settings, rest_rate=1e6, rest_burst=10**9), redis=services.redis
        )
        context.set_current(fast)
        figures = replay(fast, emu, args, rng)
        report(args, database_url, figures, [])  # the replay's figures, before the live run
        context.set_current(services)
        lateness = live(services, emu, args, rng) if args.live else []
    finally:
        emu.stop()
        services.dispose()
        redis_server.stop()
        drop_database()
    if lateness:
        p50, p99, pmax = percentiles(lateness)
        print(f"live: {args.live} appointments, {len(lateness)} reminders sent; lateness "
              f"p50 {p50:.3f} s, p99 {p99:.3f} s (target <= 2), max {pmax:.3f} s")  # fmt: skip


def report(args: Any, database_url: str, f: dict[str, Any], lateness: list[float]) -> None:
    share = 100.0 * f["delivered"] / max(f["reminders"], 1)
    per = f["http"] / max(f["delivered"], 1)
    print()
    print(f"database: {database_url.split(':', 1)[0]}, portals: {args.portals}, "
          f"workers: {args.workers}")  # fmt: skip
    print("clients: " + ", ".join(f"{k} {n}" for k, n in sorted(f["kinds"].items())))
    print("attempt states: " + ", ".join(f"{k or '-'} {n}" for k, n in sorted(f["states"].items())))
    print(f"{'metric':<52}{'value':>12}{'target':>10}")
    print(f"{'reminders fired (replay)':<52}{f['reminders']:>12}")
    print(f"{'share delivered to the client (%)':<52}{share:>12.2f}{'>= 98':>10}")
    print(
        f"{'duplicates (a reminder reaching the client twice)':<52}{f['duplicates']:>12}{'0':>10}"
    )
    print(f"{'REST requests per delivered reminder':<52}{per:>12.2f}{'<= 1.5':>10}")
    print(f"{'replay time (s)':<52}{f['took']:>12.1f}")
    print(f"{'(the bookings read, before: requests per booking)':<52}{f['per_booking']:>12.2f}")
    print(f"requests: {f['by_method']}")


if __name__ == "__main__":
    main()
