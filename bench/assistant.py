"""The AI assistant under load: answer time and hand-off time, one portal and many portals.

Starts a private redis-server, an SQLite database, the app under gunicorn, ``--assistant-
workers`` real ``b24app worker --queue assistant`` processes plus one worker on every queue
(installs, lead events, timers), and the Bitrix24 emulator with each portal's leaky bucket at
the platform's 2 req/s (burst 50). Installs the app into the portals through the real
installer, enables the assistant, then plays concurrent client dialogs (one thread each, like
people typing in Telegram with ``--think`` seconds between messages, ±50 %): greeting →
service → day/time → phone → name → a free time → "да". Every ``--handoff-every``-th dialog
asks for a person at its second message instead.

Two scenarios: ``--dialogs`` dialogs on one portal, and the same number spread over
``--portals`` portals. ``--scale`` multiplies dialogs and portals (the issue's figures are
50 dialogs and 20 portals; the default scale is 1).

Measured from the emulator's own records:

* answer time — from the moment the emulator POSTed ``ONIMBOTV2MESSAGEADD`` (its delivery
  record) to the bot's ``imbot.v2.Chat.Message.send`` for that chat (REST pacing included);
* hand-off time — from that POST to ``imopenlines.bot.session.operator`` taking effect.

    python bench/assistant.py [--scale 0.4] [--think 6] [--assistant-workers 2]

Each dialog types its own phone, and the line's rate of new dialogs is set out of the way
(``dialogs_per_hour`` 1000): this bench measures answers, not the holds' limits.

``--holds N`` plays the issue-19 attack instead: N anonymous visitors on portal 0 who all type
one phone, and N on portal 1 with a phone each, every one tapping the first evening time
offered and never confirming (the portals' default limits: one unconfirmed hold per phone,
30 new dialogs per line and hour, holds expire after 30 minutes). It prints the times held,
the taps refused and the chats sent to the operators, then moves the release jobs' due time
to now (the clock is driven, not waited for) and prints how many times were freed.
"""

from __future__ import annotations

import argparse
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from b24app import context  # noqa: E402
from b24app.config import Settings  # noqa: E402
from b24app.settings import save_settings  # noqa: E402
from b24app.storage.migrate import upgrade  # noqa: E402
from b24app.storage.portals import get_portal  # noqa: E402
from devportal import DevPortal  # noqa: E402
from devportal.portal import Portal as EmuPortal  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.conftest import RedisServer  # noqa: E402
from tests.plugins.worker import worker_env  # noqa: E402
from tests.plugins.worker import WorkerProcess  # noqa: E402

SCRIPT = ["маникюр", "завтра после 18", "+7 (912) 345-67-89", "Анна", "1", "да"]
HOLD_SCRIPT = ["маникюр", "после 18", "+7 (912) 345-67-89", "Анна", "1"]  # never "да"


def hold_script(i: int, own_phone: bool) -> list[str]:
    """The ``i``-th visitor asks for an evening of its own among the next 14 days (as the
    issue's visitors spread over the window) and taps the first time offered."""
    import datetime as dt

    day = dt.date.today() + dt.timedelta(days=1 + i % 14)
    script = [f"{day:%d.%m} после 18" if t == "после 18" else t for t in HOLD_SCRIPT]
    return with_phone(script, i) if own_phone else script


def with_phone(script: list[str], i: int) -> list[str]:
    """The script with the ``i``-th client's own phone."""
    return [f"+7 (912) {100 + i % 900:03d}-67-89" if t == SCRIPT[2] else t for t in script]


HANDOFF_SCRIPT = ["маникюр", "позовите администратора"]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


@dataclass
class Figures:
    name: str
    dialogs: int
    portals: int
    turns: int
    answers: list[float]
    handoffs: list[float]
    unanswered: int
    seconds: float
    rest_requests: int
    turn_requests: int  # HTTP requests of the assistant's turns (chat reads and writes)
    events: int  # bot events delivered (client messages and joins)

    def rows(self) -> list[tuple[str, str]]:
        rate = self.turns / self.seconds if self.seconds else 0.0
        return [
            ("dialogs / portals", f"{self.dialogs} / {self.portals}"),
            ("client messages (msg/s)", f"{self.turns} ({rate:.2f})"),
            ("answer p50 / p99 (s)", f"{pct(self.answers, 50):.2f} / {pct(self.answers, 99):.2f}"),
            ("answer max (s)", f"{max(self.answers, default=float('nan')):.2f}"),
            ("answers under 3 s", f"{sum(a < 3 for a in self.answers)}/{len(self.answers)}"),
            ("hand-offs p50 / p99 (s)",
             f"{pct(self.handoffs, 50):.2f} / {pct(self.handoffs, 99):.2f} (n={len(self.handoffs)})"),
            ("unanswered messages", str(self.unanswered)),
            ("REST HTTP requests", str(self.rest_requests)),
            ("turn requests / bot event",
             f"{self.turn_requests}/{self.events} = {self.turn_requests / max(self.events, 1):.2f}"),
            ("wall time (s)", f"{self.seconds:.1f}"),
        ]  # fmt: skip


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out: {what}")


def _up(url: str) -> bool:
    try:
        return requests.get(url + "/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _bot_count(portal: EmuPortal, chat_id: int) -> int:
    with portal.lock:
        chat = portal.openlines.chats[chat_id]
        return sum(1 for m in chat.messages if m.kind == "bot")


def play(portal: EmuPortal, script: list[str], think: float, seed: int,
         timeout: float) -> tuple[int, int]:  # fmt: skip
    """One client: open the chat, wait for the greeting, then write, waiting for each answer.
    Returns (chat id, messages left unanswered)."""
    rng = random.Random(seed)
    time.sleep(rng.uniform(0, think))  # people do not all start in the same second
    lead_id = portal.add_lead({"TITLE": "Telegram", "SOURCE_ID": "1|TELEGRAMBOT",
                               "ASSIGNED_BY_ID": 2})  # fmt: skip
    chat = portal.open_chat([("lead", lead_id)], connector_id="telegrambot")
    unanswered = 0
    try:
        _wait(lambda: _bot_count(portal, chat.id) >= 1, timeout, "greeting")
    except RuntimeError:
        return chat.id, len(script)
    for text in script:
        time.sleep(think * rng.uniform(0.5, 1.5))
        before = _bot_count(portal, chat.id)
        portal.client_writes(chat.id, text)
        try:
            _wait(lambda n=before: _bot_count(portal, chat.id) > n, timeout, "answer")
        except RuntimeError:
            unanswered += 1
        if portal.imbot.sessions.get(chat.id) and portal.imbot.sessions[chat.id].holder != "bot":
            break
    return chat.id, unanswered


def measure(emu: DevPortal, portals: list[EmuPortal], chats: set[tuple[str, int]],
            since: float) -> tuple[list[float], list[float]]:  # fmt: skip
    """Answer and hand-off times from the emulator's delivery and send records."""
    by_slug = {p.slug: p for p in portals}
    answers: list[float] = []
    handoffs: list[float] = []
    for record in emu.deliveries(kind="event", name="ONIMBOTV2MESSAGEADD"):
        if record.sent_at is None or record.sent_at < since:
            continue
        chat_id = int(record.form.get("data[chat][id]", "0"))
        if (record.portal, chat_id) not in chats:
            continue
        portal = by_slug[record.portal]
        sends = [s["at"] for s in portal.imbot.sent
                 if s["chat_id"] == chat_id and s["at"] >= record.sent_at]  # fmt: skip
        if sends:
            answers.append(min(sends) - record.sent_at)
        session = portal.imbot.sessions.get(chat_id)
        text = record.form.get("data[message][text]", "")
        if session and session.handed_off_at and text == HANDOFF_SCRIPT[1]:
            handoffs.append(session.handed_off_at - record.sent_at)
    return answers, handoffs


def scenario(name: str, emu: DevPortal, portals: list[EmuPortal], dialogs: int, think: float,
             handoff_every: int, timeout: float) -> Figures:  # fmt: skip
    start_requests = emu.http_requests()
    since = time.time()
    started = time.monotonic()
    results: list[tuple[str, int, int]] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        portal = portals[i % len(portals)]
        script = (
            HANDOFF_SCRIPT
            if handoff_every and i % handoff_every == handoff_every - 1
            else with_phone(SCRIPT, i)
        )
        chat_id, missed = play(portal, script, think, i, timeout)
        with lock:
            results.append((portal.slug, chat_id, missed))

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(dialogs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - started
    chats = {(slug, chat_id) for slug, chat_id, _ in results}
    answers, handoffs = measure(emu, portals, chats, since)
    turns = sum(1 for r in emu.deliveries(kind="event", name="ONIMBOTV2MESSAGEADD")
                if (r.sent_at or 0) >= since)  # fmt: skip
    slugs = {p.slug for p in portals}
    events = sum(1 for r in emu.deliveries(kind="event")
                 if r.name in ("ONIMBOTV2MESSAGEADD", "ONIMBOTV2JOINCHAT")
                 and r.portal in slugs and (r.sent_at or 0) >= since)  # fmt: skip
    turn_requests = sum(1 for call in emu.calls(in_batch=False)
                        if call.portal in slugs and call.time >= since and _of_turn(call))  # fmt: skip
    return Figures(name, dialogs, len(portals), turns, answers, handoffs,
                   sum(m for _, _, m in results), seconds,
                   emu.http_requests() - start_requests, turn_requests, events)  # fmt: skip


def _of_turn(call: Any) -> bool:
    """A request of an assistant turn: it reads the chat or acts in it (imbot / imopenlines),
    alone or in a batch (the CRM write rides in the answer's batch)."""
    if call.method != "batch":
        return call.method.startswith(("imbot.", "imopenlines."))
    cmd = call.params.get("cmd") or {}
    values = cmd.values() if isinstance(cmd, dict) else cmd
    return any(str(v).lower().startswith(("imbot.", "imopenlines.")) for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--dialogs", type=int, default=50)
    parser.add_argument("--portals", type=int, default=20)
    parser.add_argument(
        "--think", type=float, default=8.0, help="seconds between a client's messages"
    )
    parser.add_argument("--handoff-every", type=int, default=5)
    parser.add_argument("--assistant-workers", type=int, default=2)
    parser.add_argument("--gunicorn", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=120.0, help="per answer")
    parser.add_argument("--holds", type=int, default=0, help="visitors per portal (issue 19)")
    parser.add_argument(
        "--booking",
        action="store_true",
        help="pre-book on Booking resource 1: free times from its slot ranges and bookings",
    )
    args = parser.parse_args()  # fmt: skip
    dialogs = max(2, round(args.dialogs * args.scale))
    n_portals = max(2, round(args.portals * args.scale))

    redis = RedisServer()
    redis.start()
    workdir = Path(tempfile.mkdtemp(prefix="b24app-bench-assistant-"))
    db_url = "sqlite:///" + str(workdir / "assistant.sqlite")
    upgrade(db_url)
    port = free_port()
    settings = Settings(client_id="local.bench.app", client_secret=secrets.token_urlsafe(48),
                        public_url=f"http://127.0.0.1:{port}", database_url=db_url,
                        redis_url=redis.url, secret_key=secrets.token_urlsafe(48),
                        allow_insecure_endpoints=True, log_level="WARNING")  # fmt: skip
    services = context.build_services(settings)
    emu = DevPortal(client_id=settings.client_id, client_secret=settings.client_secret,
                    app_base_url=settings.public_url, rate=2, burst=50,
                    delivery_workers=8)  # fmt: skip
    env = {**worker_env(settings), "B24APP_LOG_LEVEL": "WARNING"}
    gunicorn = subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), "--workers", str(args.gunicorn),
         "--bind", f"127.0.0.1:{port}", "--log-level", "warning", "b24app.wsgi:app"],
        cwd=workdir, env=env,
    )  # fmt: skip
    quiet = {"B24APP_LOG_LEVEL": "WARNING"}
    # the worker on every queue first: it holds the timers scheduler the others wait for
    workers = [WorkerProcess(settings, quiet)]
    workers += [WorkerProcess(settings, quiet, ("--queue", "assistant"))
                for _ in range(args.assistant_workers)]  # fmt: skip
    emu.start()
    try:
        _wait(lambda: _up(settings.public_url), 30, "gunicorn up")
        for worker in workers:
            worker.start()
        portals = [emu.create_portal(f"p{i}") for i in range(n_portals)]
        for portal in portals:
            result = portal.install()
            if result.installer is None or result.installer.status_code != 200:
                raise RuntimeError(f"install of {portal.slug} failed")
        _wait(lambda: all(p.imbot.bots for p in portals), 600, "bots registered")
        for portal in portals:
            with services.db() as session:
                row = get_portal(session, portal.member_id)
                assert row is not None
                assistant: dict[str, Any] = {"enabled": True}
                if not args.holds:
                    assistant["dialogs_per_hour"] = 1000
                if args.booking:
                    assistant["booking_resource_id"] = 1
                save_settings(session, row.id, {"assistant": assistant})
            with portal.lock:
                portal.imbot.attach(1)  # the admin attaches the bot to the open line
        emu.wait_idle(600)
        if args.holds:
            holds_bench(services, portals[:2], args.holds, args.think, args.timeout)
            return
        one_since = time.time()
        one = scenario("one portal", emu, portals[:1], dialogs, args.think, args.handoff_every,
                       args.timeout)  # fmt: skip
        one_until = time.time()
        one_booked = _bookings(portals[:1])
        many = scenario(f"{n_portals} portals", emu, portals, dialogs, args.think,
                        args.handoff_every, args.timeout)  # fmt: skip
        print(f"\nassistant bench: scale {args.scale}, think {args.think}s, "
              f"{args.assistant_workers} assistant worker(s), bucket 2 req/s burst 50"
              f"{', Booking resource 1' if args.booking else ''}\n")  # fmt: skip
        rows_one, rows_many = one.rows(), many.rows()
        width = max(len(k) for k, _ in rows_one) + 2
        print(f"{'metric':<{width}}{one.name:>26}{many.name:>26}")
        for (key, a), (_, b) in zip(rows_one, rows_many, strict=True):
            print(f"{key:<{width}}{a:>26}{b:>26}")
        if one.answers:
            print(f"\nanswer mean (one portal): {statistics.mean(one.answers):.2f}s")
        counts: dict[str, int] = {}
        for call in emu.calls(portal=portals[0], in_batch=True):
            if one_since <= call.time <= one_until:
                counts[call.method] = counts.get(call.method, 0) + 1
        top = ", ".join(f"{m} {n}" for m, n in sorted(counts.items(), key=lambda x: -x[1])[:8])
        print(f"commands inside batches, one-portal scenario: {top}")
        requests_by: dict[str, int] = {}
        for call in emu.calls(portal=portals[0], in_batch=False):
            if one_since <= call.time <= one_until:
                requests_by[call.method] = requests_by.get(call.method, 0) + 1
        top = ", ".join(f"{m} {n}" for m, n in sorted(requests_by.items(), key=lambda x: -x[1]))
        print(f"HTTP requests by method, one-portal scenario: {top}")
        per_request = []
        for call in emu.calls("batch", portals[0], in_batch=False):
            if one_since <= call.time <= one_until:
                cmd = call.params.get("cmd") or {}
                values = cmd.values() if isinstance(cmd, dict) else cmd
                n = sum(
                    1 for v in values if str(v).lower().startswith("imbot.v2.chat.message.send")
                )
                if n:
                    per_request.append(n)
        if per_request:
            print(
                f"answers per request carrying answers, one-portal scenario: mean "
                f"{statistics.mean(per_request):.1f}, max {max(per_request)} "
                f"({len(per_request)} requests)"
            )
        if args.booking:
            made, overlaps = _bookings(portals)
            print(f"pre-bookings on resource 1: one portal {one_booked[0]}, "
                  f"{n_portals} portals {made - one_booked[0]}; overlapping pairs "
                  f"{one_booked[1]} / {overlaps}")  # fmt: skip
        refused = len(emu.calls(error="QUERY_LIMIT_EXCEEDED"))
        print(f"QUERY_LIMIT_EXCEEDED answers (both scenarios): {refused}")
    finally:
        for worker in workers:
            worker.stop()
        gunicorn.terminate()
        gunicorn.wait(timeout=30)
        emu.stop()
        services.dispose()
        redis.stop()


def holds_bench(services: Any, portals: list[EmuPortal], visitors: int, think: float,
                timeout: float) -> None:  # fmt: skip
    """The issue-19 attack on two portals (one phone / a phone each), then the holds' expiry."""
    from rq.job import Job
    from sqlalchemy import func
    from sqlalchemy import select

    from b24app.i18n import translate
    from b24app.storage.models import AssistantDialog
    from b24app.storage.models import AssistantTurn

    started = time.monotonic()
    threads = []
    for p, portal in enumerate(portals):
        for i in range(visitors):
            script = hold_script(i, own_phone=p == 1)
            threads.append(threading.Thread(target=play, args=(portal, script, think, i, timeout),
                                            daemon=True))  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - started
    refusal = translate("ru", "assistant.hold_elsewhere")

    def count(portal: EmuPortal) -> tuple[int, int, int]:
        with services.db() as session:
            portal_id = get_portal(session, portal.member_id).id  # type: ignore[union-attr]
            mine = AssistantDialog.portal_id == portal_id
            held = session.scalar(select(func.count()).where(
                mine, AssistantDialog.booking_start.is_not(None)))  # fmt: skip
            refused = session.scalar(
                select(func.count()).select_from(AssistantTurn)
                .join(AssistantDialog, AssistantDialog.id == AssistantTurn.dialog_id)
                .where(mine, AssistantTurn.reply == refusal)
            )  # fmt: skip
            limited = session.scalar(select(func.count()).where(
                mine, AssistantDialog.handoff_reason == "rate_limited"))  # fmt: skip
        return int(held or 0), int(refused or 0), int(limited or 0)

    print(f"\nholds bench: {visitors} visitors per portal, think {think}s, wall {seconds:.1f}s")
    for name, portal in zip(("one phone", "a phone each"), portals, strict=False):
        held, refused, limited = count(portal)
        print(f"{name:>13}: times held {held}, taps refused {refused}, "
              f"chats to operators (rate) {limited}")  # fmt: skip
    registry = services.queue("timers").scheduled_job_registry
    due = [j for j in registry.get_job_ids() if j.startswith("asst-hold-")]
    print(f"release jobs scheduled: {len(due)}")
    for job_id in due:  # drive the clock: every release job is due now
        registry.schedule(Job.fetch(job_id, connection=services.redis), time_now_utc())
    _wait(lambda: all(count(portal)[0] == 0 for portal in portals), timeout, "holds released")
    print(f"held after the release jobs ran: {[count(portal)[0] for portal in portals]}, "
          f"{time.monotonic() - started - seconds:.1f}s after the drive")  # fmt: skip


def time_now_utc() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.UTC)


def _bookings(portals: list[EmuPortal]) -> tuple[int, int]:
    """Bookings on the portals' resource 1, and how many pairs of them overlap in time (two
    clients pre-booked into the same slot: the assistant's re-check must keep this at 0)."""
    made = overlaps = 0
    for portal in portals:
        with portal.lock:
            periods = sorted(
                (b["datePeriod"]["from"]["timestamp"], b["datePeriod"]["to"]["timestamp"])
                for b in portal.booking.bookings.values()
                if 1 in b["resourceIds"]
            )
        made += len(periods)
        overlaps += sum(
            1 for i, (_, end) in enumerate(periods) for start, _ in periods[i + 1 :] if start < end
        )
    return made, overlaps


if __name__ == "__main__":
    main()
