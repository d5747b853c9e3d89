"""``b24app-demo`` (what ``./dev demo`` runs): the whole app on one machine with embedded defaults.

Starts a private ``redis-server`` (unless ``B24APP_REDIS_URL`` is set), an SQLite database under
``instance/demo/``, the portal emulator, the web app, an RQ worker with its scheduler and the
cron process; installs the app into an emulated salon portal exactly as Bitrix24 would, seeds 90 days of
the salon's history (``devportal.demo_data``) and prints what to look at.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from typing import TYPE_CHECKING

import click
from redis import Redis
from werkzeug.serving import make_server

from b24app.config import Settings
from devportal.deals import SIMPLE
from devportal.ports import free_port

if TYPE_CHECKING:
    from devportal.portal import Portal as EmuPortal
    from devportal.server import DevPortal

DEMO_CLIENT_ID = "local.b24app.demo"


def _demo_secrets(workdir: Path) -> dict[str, str]:
    """Random ``client_secret``/``secret_key`` for the demo, made once and kept in the work
    directory (the demo's stored tokens stay readable across runs). The worker and cron the
    demo starts refuse default secrets like any production process; ``B24APP_*`` values
    given in the environment win."""
    import json
    import secrets

    path = workdir / "secrets.json"
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        stored = {}
    if not isinstance(stored, dict) or not all(
        isinstance(stored.get(k), str) for k in ("client_secret", "secret_key")
    ):
        stored = {k: secrets.token_urlsafe(48) for k in ("client_secret", "secret_key")}
        path.write_text(json.dumps(stored))
        path.chmod(0o600)
    return {
        "client_secret": os.environ.get("B24APP_CLIENT_SECRET") or stored["client_secret"],
        "secret_key": os.environ.get("B24APP_SECRET_KEY") or stored["secret_key"],
    }


def _start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    binary = shutil.which("redis-server")
    if binary is None:
        raise click.ClickException("redis-server is not installed (./dev demo installs it)")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(100):
        try:
            if Redis(port=port).ping():
                return proc, f"redis://127.0.0.1:{port}/0"
        except Exception:
            time.sleep(0.05)
    proc.kill()
    raise click.ClickException("redis-server did not start")


def _wait_backfilled(services: Any, member_id: str, timeout: float = 300.0) -> int:
    """The install's backfill (in the worker) has imported the portal's leads."""
    from sqlalchemy import select

    from b24app.storage.models import BackfillState
    from b24app.storage.models import Portal

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with services.db() as session:
            state = session.scalar(
                select(BackfillState).join(Portal, Portal.id == BackfillState.portal_id)
                .where(Portal.member_id == member_id)
            )  # fmt: skip
            if state is not None and state.phase == "done":
                return int(state.imported)
        time.sleep(0.2)
    raise click.ClickException("the demo's backfill did not finish in time")


def _seed_crm(portal: Any) -> Any:
    """Before the install: the salon's 90 days in the emulated CRM (devportal.demo_data)."""
    from devportal import demo_data

    demo_data.prepare_portal(portal)
    seeded = demo_data.seed_portal(portal)
    seeded.silent = demo_data.silent_whatsapp_client(portal)
    return seeded


def _finish_seed(settings: Settings, portal: Any, seeded: Any, started: float) -> str:
    """After the install's backfill: the app-side history, names, roll-up, live leads;
    returns the summary to print."""
    from sqlalchemy import select

    from b24app import context
    from b24app import directory
    from b24app.kpi import rollup
    from b24app.settings import load_settings
    from b24app.storage.models import Portal
    from devportal import demo_data
    from devportal import demo_replay

    services = context.build_services(settings)
    context.set_current(services)
    imported = _wait_backfilled(services, portal.member_id)
    t_backfill = time.perf_counter()
    counts = demo_data.fill_store(services, portal.member_id, seeded)
    t_replay = time.perf_counter()
    replayed = demo_replay.replay_reminders(services, portal, seeded)
    t_replayed = time.perf_counter()
    directory.refresh(services, portal.member_id)
    with services.db() as session:
        portal_id = session.scalar(select(Portal.id).where(Portal.member_id == portal.member_id))
        assert portal_id is not None
        rollup.refresh_portal(session, portal_id, load_settings(session, portal_id))
    live = demo_data.live_leads(portal)
    demo_data.visit_to_ask_about(portal)
    silent = _remind_silent_client(services, portal, seeded)
    done = time.perf_counter()
    return (
        f"  seeded:            {seeded.leads:,} journeys over {demo_data.DAYS} days in the CRM "
        f"({seeded.seconds:.1f} s); the install's backfill imported {imported:,} leads "
        f"({t_backfill - started - seeded.seconds:.1f} s after the install began); "
        f"{counts['breaches']} SLA breaches, {counts['escalations']} escalations; "
        f"{replayed['appointments']:,} appointments, {replayed['reminders']:,} reminders "
        f"({replayed['attempts']:,} attempts), {replayed['replies']:,} client answers and "
        f"{replayed['reinvitations']:,} re-invitations replayed ({t_replayed - t_replay:.1f} s); "
        f"history ready in {done - started:.1f} s\n"
        f"  live now:          leads {', '.join(map(str, live))} (Олег's chats): their "
        "first-reply reminders fire in 3 minutes, escalations in 30\n"
        f"  WhatsApp, 24 h window closed: {silent}\n"
    )


def _remind_silent_client(services: Any, portal: Any, seeded: Any, timeout: float = 60.0) -> str:
    """Book the visit of the WhatsApp client silent for days (devportal.demo_data) and wait
    until the worker has tried her chat and gone on to the SMS workflow; returns the line to
    print."""
    from sqlalchemy import select

    from b24app.storage.models import Appointment
    from b24app.storage.models import ReminderAttempt
    from devportal import demo_data

    lead, deal = seeded.silent
    booking = demo_data.book_silent_client(portal, deal)
    deadline = time.monotonic() + timeout
    tried: list[tuple[str, bool, str]] = []
    while time.monotonic() < deadline:
        with services.db() as session:
            tried = [tuple(row) for row in session.execute(
                select(ReminderAttempt.channel, ReminderAttempt.ok, ReminderAttempt.error)
                .join(Appointment, Appointment.id == ReminderAttempt.appointment_id)
                .where(Appointment.booking_id == booking).order_by(ReminderAttempt.id)
            )]  # fmt: skip
        if any(ok for _channel, ok, _error in tried):
            break
        time.sleep(0.2)
    went = " → ".join(f"{c} ({'ok' if ok else error})" for c, ok, error in tried) or "not yet"
    return (
        f"lead {lead} / deal {deal} (Марина, last wrote {demo_data.SILENT_DAYS} days ago): {went}"
    )


def _seed(portal: EmuPortal) -> None:
    """A few leads like a salon's morning: two via the AI assistant, one call, one web form."""
    add = portal.crm.add_lead
    update = portal.crm.update_lead
    ai_chat = add({"TITLE": "Маникюр, Telegram-бот", "NAME": "Анна", "SOURCE_ID": "2|TELEGRAM",
                   "ASSIGNED_BY_ID": 2, "OPPORTUNITY": "2500"})  # fmt: skip
    add({"TITLE": "Стрижка", "NAME": "Мария", "SOURCE_ID": "WEB", "UTM_SOURCE": "ai_bot",
         "UTM_CAMPAIGN": "autumn_ai", "ASSIGNED_BY_ID": 3})  # fmt: skip
    call = add({"TITLE": "Пропущенный звонок", "NAME": "Олег", "SOURCE_ID": "CALL",
                "ASSIGNED_BY_ID": 2})  # fmt: skip
    add({"TITLE": "Запись на массаж", "NAME": "Ирина", "SOURCE_ID": "WEBFORM",
         "UTM_SOURCE": "yandex", "UTM_CAMPAIGN": "massage_nov", "ASSIGNED_BY_ID": 3})  # fmt: skip
    if portal.crm.crm_mode == SIMPLE:
        # Simple mode: every lead became a deal at once; the AI chat client books and comes.
        deal = portal.crm.deal_of_lead(ai_chat)
        assert deal is not None  # in the simple mode every lead is a deal at once
        portal.crm.update_deal(deal, {"STAGE_ID": "PREPARATION"}, by_user=2)
        portal.crm.update_deal(deal, {"STAGE_ID": "WON"}, by_user=2)
        return
    update(ai_chat, {"STATUS_ID": "IN_PROCESS"})
    update(call, {"STATUS_ID": "IN_PROCESS"})
    # Classic mode: the AI chat client books, the manager converts the lead into a deal.
    deal = portal.crm.convert_lead(ai_chat, by_user=2)
    portal.crm.update_deal(deal, {"STAGE_ID": "WON"}, by_user=2)


def _enable_assistant(settings: Settings, member_id: str) -> None:
    """The demo salon answers its open-line chats with the AI assistant."""
    from b24app import context
    from b24app.settings import save_settings
    from b24app.storage.portals import get_portal

    services = context.build_services(settings)
    try:
        with services.db() as session:
            row = get_portal(session, member_id)
            if row is not None:
                save_settings(session, row.id, {"assistant": {"enabled": True},
                                                "reminders": {"business_name": "Салон «Лето»"}})  # fmt: skip
    finally:
        services.dispose()


@click.command()
@click.option("--port", default=5000, show_default=True, type=int, help="the app's port")
@click.option("--emulator-port", default=5080, show_default=True, type=int)
@click.option("--workdir", default="instance/demo", show_default=True)
@click.option("--seed/--no-seed", default=True, show_default=True,
              help="Seed 90 days of the salon's history (classic CRM mode)")  # fmt: skip
@click.option(
    "--crm-mode",
    type=click.Choice(["classic", "simple"]),
    default="classic",
    show_default=True,
    help="the emulated portal's CRM mode: classic (leads + deals) or simple (deals only)",
)
def demo(port: int, emulator_port: int, workdir: str, crm_mode: str, seed: bool) -> None:
    """Run the local demo: app + worker + cron + an emulated Bitrix24 portal."""
    from b24app.storage.migrate import upgrade

    work = Path(workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        redis_url = os.environ.get("B24APP_REDIS_URL")
        if not redis_url:
            redis_proc, redis_url = _start_redis(work)
            stack.callback(redis_proc.kill)
        settings = _demo_settings(work, port, redis_url)
        upgrade(settings.database_url)
        _start_roles(stack, settings, ["worker"], ["worker", "--queue", "assistant"])
        emulator = _start_servers(stack, settings, port, emulator_port)
        started = time.perf_counter()
        summary = _open_salon(settings, emulator, crm_mode, seed, started)
        # cron once the history is in: its timer reconciliation (every minute) would take the
        # replay's past timers, whose jobs live in the replay's own Redis database, for lost
        # ones and expire them, so a replay slower than a minute lost reminders
        _start_roles(stack, settings, ["cron"])
        click.echo(
            f"\nb24app demo is running (Ctrl-C to stop), started in "
            f"{time.perf_counter() - started:.1f} s\n{summary}"
            + _what_to_open(settings, emulator.url, crm_mode)
        )
        _wait_for_stop()


def _demo_settings(work: Path, port: int, redis_url: str) -> Settings:
    secrets = _demo_secrets(work)
    return Settings.from_env(
        client_id=os.environ.get("B24APP_CLIENT_ID", DEMO_CLIENT_ID),
        client_secret=secrets["client_secret"],
        secret_key=secrets["secret_key"],
        public_url=f"http://127.0.0.1:{port}",
        database_url=os.environ.get("B24APP_DATABASE_URL", f"sqlite:///{work / 'b24app.sqlite'}"),
        redis_url=redis_url,
        allow_insecure_endpoints=True,
        rest_rate=5.0,
        rest_burst=250,
    )


def _start_roles(stack: ExitStack, settings: Settings, *roles: list[str]) -> None:
    """``b24app <role>`` processes on the demo's settings: the RQ worker, the assistant's own
    worker (nothing slow shares it), cron."""
    env = dict(os.environ)
    env.update({
        "B24APP_CLIENT_ID": settings.client_id, "B24APP_CLIENT_SECRET": settings.client_secret,
        "B24APP_PUBLIC_URL": settings.public_url, "B24APP_DATABASE_URL": settings.database_url,
        "B24APP_REDIS_URL": settings.redis_url, "B24APP_SECRET_KEY": settings.secret_key,
        "B24APP_ALLOW_INSECURE_ENDPOINTS": "1", "B24APP_REST_RATE": "5",
        "B24APP_REST_BURST": "250",
    })  # fmt: skip
    for args in roles:
        proc = subprocess.Popen([sys.executable, "-m", "b24app.cli", *args], env=env)
        stack.callback(proc.terminate)


def _start_servers(
    stack: ExitStack, settings: Settings, port: int, emulator_port: int
) -> DevPortal:
    """The emulator and the app's HTTP server, each on its thread."""
    import threading

    from b24app import create_app
    from devportal import DevPortal

    emulator = DevPortal(
        settings.client_id, settings.client_secret, settings.public_url,
        rate=5, burst=250, port=emulator_port,
    ).start()  # fmt: skip
    stack.callback(emulator.stop)
    app = create_app(settings=settings)
    server = make_server("127.0.0.1", port, app, threaded=True)
    stack.callback(server.shutdown)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return emulator


def _open_salon(
    settings: Settings, emulator: DevPortal, crm_mode: str, seed: bool, started: float
) -> str:
    """The salon: its history (classic mode), the install, today's journeys, the assistant;
    returns the history's summary ("" without one)."""
    portal = emulator.create_portal(slug="salon", lang="ru", crm_mode=crm_mode)
    # The 90-day history is a classic (leads first) portal's; simple mode gets the few
    # journeys of _seed below only.
    seeded = _seed_crm(portal) if seed and crm_mode == "classic" else None
    result = portal.app.install()
    if result.installer is None or result.installer.status_code != 200:
        raise click.ClickException("the demo install failed: see the log above")
    summary = _finish_seed(settings, portal, seeded, started) if seeded else ""
    if seeded is None:
        # The install job registers the events, then imports the (empty) CRM: waiting for
        # the import's end means the journeys below reach the app as events, bound.
        from b24app import context

        waiting = context.build_services(settings)
        try:
            _wait_backfilled(waiting, portal.member_id)
        finally:
            waiting.dispose()
    _seed(portal)  # today's few journeys through real events (one across lead and deal)
    _enable_assistant(settings, portal.member_id)
    for _ in range(300):  # the bot is registered by the install job; then attach it
        if portal.imbot.bots:
            with portal.lock:
                portal.imbot.attach(1)
            break
        time.sleep(0.1)
    return summary


def _what_to_open(settings: Settings, url: str, crm_mode: str) -> str:
    from devportal.demo_data import ASKED_MASTER

    tab = f"{url}/salon/page/placement/CRM_LEAD_DETAIL_TAB?ID="
    return (
        f"  app health:        {settings.public_url}/health\n"
        f"  portal (emulated): {url}/salon/page/app\n"
        f"  KPI widget:        {url}/salon/page/placement/CRM_ANALYTICS_MENU\n"
        f"  lead tab:          {tab}1\n"
        f"  deal tab:          {url}/salon/page/placement/CRM_DEAL_DETAIL_TAB?ID=1\n"
        f"  CRM mode:          {crm_mode}\n"
        f"  client chat (AI):  {url}/salon/page/chat\n"
        f"  play the master:   {url}/salon/page/staff/{ASKED_MASTER}  (in 2 minutes the app's\n"
        f"                     bot asks whether Алина came: Да / Нет / Перенесли; a tap moves the deal)\n"
        f"  play the client:   {url}/salon/page/client  (book in 121 minutes: the\n"
        f"                     2 h reminder reaches the chat a minute later; answer 1 or 2:\n"
        f"                     the app reads it back from the chat within 3 minutes)\n"
        f"  database:          {settings.database_url}\n"
        "\nWhat to look at:\n"
        "  * the KPI widget, 30 days then 90 days: conversion, no-shows (10–20 %), revenue\n"
        "    and the average check, the trend; sources by their portal names (Telegram,\n"
        "    WhatsApp, Instagram bots, the web form, calls, walk-ins);\n"
        "  * its «Записи и напоминания клиентам»: every appointment (the leads' visit time\n"
        "    field), reminded in the client's chat, by the SMS workflow (set up 45 days ago)\n"
        "    or not at all (walk-ins; a to-do before the workflow), the no-show rate of each\n"
        "    (90 days: reminded clients miss fewer visits), and the delivery by channel (the\n"
        "    chat falls through to SMS for clients with no open chat, or when the messenger\n"
        "    refused it); the clients' «1» in the confirmed share; visits moved and cancelled\n"
        "    in the chat, freed times refilled from the waitlist and their revenue;\n"
        "    re-invitations after no-shows, and the clients who booked again;\n"
        "  * the lead tab of Марина (the «WhatsApp, 24 h window closed» line above): her chat\n"
        "    refused, and why, then the SMS workflow that carried the message;\n"
        "  * Employees: Олег Продажин answers in ~20 minutes (breaches, escalations, fewer\n"
        "    bookings), Светлана Быстрова in under a minute;\n"
        "  * Marketing: vk_autumn and yandex_direct with their costs, CPL and ROI;\n"
        "  * the ROI page; the lead tab of any lead (its stage history and timers);\n"
        "  * in 3 minutes: the reminders of the three live leads in the emulator's\n"
        "    notifications (Олег), and the breaches count going up.\n"
    )


def _wait_for_stop() -> None:
    """Until SIGTERM or Ctrl-C."""
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stop:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":  # python -m devportal.demo, as the tests start it
    demo()
