"""Reply watch benchmark: the REST cost of hearing the client's answer to a reminder by the
documented route — the chat read back while the answer is awaited
(:mod:`b24app.appointments.watch`, ``WATCH_MINUTES``) — since ``ONOPENLINEMESSAGEADD``
reaches only an app whose own connector the line uses.

``--reminders`` (400) reminders go into open-line chats of one emulated portal (Telegram,
WhatsApp, VK and web chat in turn); each client answers «1» after a delay drawn from
``--answers`` (default: 45 % within 3 min, 20 % within 15 min, 10 % within 1 h, 5 % within
4 h, 20 % never). The watch's reads are then run at their times (3, 15, 60, 240 min after the
reminder) by calling the watch job in-process, time simulated, the client's message written
before the first read that follows it. Printed: history reads (each one REST request) per
reminder, for answered and unanswered ones, the share confirmed, and how long after the
client's answer it was read (minutes, p50 / p99 / max). The portal's REST limit is lifted: the
bench counts requests, it does not time them.

    python bench/reply_watch.py [--reminders 400] [--seed 7]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import secrets
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from b24app import context  # noqa: E402
from b24app.appointments.replies import watch_job  # noqa: E402
from b24app.appointments.watch import WATCH_MINUTES  # noqa: E402
from b24app.config import Settings  # noqa: E402
from b24app.storage.models import Appointment  # noqa: E402
from b24app.storage.models import AppointmentStatus  # noqa: E402
from b24app.storage.models import utc_now  # noqa: E402
from bench.appointments import add_appointments  # noqa: E402
from bench.appointments import add_portal  # noqa: E402
from bench.timers import database  # noqa: E402
from bench.timers import percentiles  # noqa: E402
from devportal import DevPortal  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.conftest import RedisServer  # noqa: E402

CONNECTORS = ("telegrambot", "whatsapp", "vkgroup", "livechat")
ANSWERS = ((0.45, 0, 3), (0.20, 3, 15), (0.10, 15, 60), (0.05, 60, 240))  # share, from, to


def answer_after(rng: random.Random) -> float | None:
    """Minutes after the reminder the client answers; None: never."""
    draw = rng.random()
    for share, low, high in ANSWERS:
        if draw < share:
            return rng.uniform(low, high)
        draw -= share
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reminders", type=int, default=400)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    redis_server = RedisServer()
    redis_server.start()
    database_url, drop_database = database("sqlite")
    settings = Settings(
        client_id="local.bench.app", client_secret=secrets.token_urlsafe(48),
        public_url=f"http://127.0.0.1:{free_port()}", database_url=database_url,
        redis_url=redis_server.url, secret_key=secrets.token_urlsafe(48),
        allow_insecure_endpoints=True, rest_rate=10_000.0, rest_burst=100_000,
    )  # fmt: skip
    services = context.build_services(settings)
    context.set_current(services)
    emu = DevPortal(client_id=settings.client_id, client_secret=settings.client_secret,
                    app_base_url=settings.public_url, rate=10_000.0, burst=100_000)  # fmt: skip
    emu.start()
    try:
        portal, portal_id = add_portal(services, emu, 0)
        now = utc_now().replace(microsecond=0)
        ids = add_appointments(services, portal_id, range(1, args.reminders + 1),
                               [now + dt.timedelta(hours=20)] * args.reminders)  # fmt: skip
        chats, answers = {}, {}
        with services.db() as session:
            for i, appointment_id in enumerate(ids):
                chat = portal.open_chat([("deal", i + 1)], connector_id=CONNECTORS[i % 4])
                appt = session.get(Appointment, appointment_id)
                assert appt is not None
                appt.chat_id, appt.reminded_at, appt.reminded_via = chat.id, now, "chat"
                chats[appointment_id] = chat.id
                answers[appointment_id] = answer_after(rng)
        before = len(emu.calls("imopenlines.session.history.get"))
        reads = dict.fromkeys(ids, 0)
        heard: dict[int, float] = {}
        written: set[int] = set()
        alive = set(ids)
        for step, minute in enumerate(WATCH_MINUTES):
            for appointment_id in sorted(alive):
                after = answers[appointment_id]
                if after is not None and after <= minute and appointment_id not in written:
                    portal.client_writes(chats[appointment_id], "1")
                    written.add(appointment_id)
                start = len(emu.calls("imopenlines.session.history.get"))
                outcome = watch_job(portal.member_id, appointment_id, chats[appointment_id],
                                    now.isoformat(), step, 0)  # fmt: skip
                reads[appointment_id] += len(emu.calls("imopenlines.session.history.get")) - start
                if outcome == "confirmed":
                    heard[appointment_id] = minute - float(after or 0)
                    alive.discard(appointment_id)
        total = len(emu.calls("imopenlines.session.history.get")) - before
        with services.db() as session:
            confirmed = sum(
                1 for i in ids
                if (row := session.get(Appointment, i)) is not None
                and row.status == AppointmentStatus.CONFIRMED
            )  # fmt: skip
        answered = [reads[i] for i in ids if answers[i] is not None]
        silent = [reads[i] for i in ids if answers[i] is None]
        lag = percentiles(list(heard.values()))
        print(f"reminders into chats: {len(ids)} ({', '.join(CONNECTORS)} in turn)")
        print(f"history reads: {total} = {total / len(ids):.2f} REST requests per reminder "
              f"(bound {len(WATCH_MINUTES)})")  # fmt: skip
        print(f"  answered: {len(answered)}, {sum(answered) / max(len(answered), 1):.2f} reads each;"
              f" never answered: {len(silent)}, {sum(silent) / max(len(silent), 1):.2f} each")  # fmt: skip
        print(f"confirmed: {confirmed} / {len(answered)} answers")
        print(f"answer read after: p50 {lag[0]:.1f} min, p99 {lag[1]:.1f} min, max {lag[2]:.1f}")
    finally:
        emu.stop()
        services.redis.close()
        redis_server.stop()
        drop_database()


if __name__ == "__main__":
    main()
