"""Ask who saw it: after each appointment, one question to the master — came, no-show, moved?

Timers (policy ``outcome`` on b24app/timers, registered on import like the reminders):

* ``ask@<appointment id>`` — due at the appointment's end (``starts_at`` + the setting's
  ``length_minutes``: Bitrix24 Booking keeps the end, the other routes do not) plus
  ``grace_minutes``; asks the journey's responsible user (the master), else the administrator;
* ``admin@<appointment id>`` — due at the close of that working day (the portal's calendar;
  never earlier than the first question + the grace); asks the administrator (settings'
  ``owner_user_id``, else the installing admin) once — skipped when the master is the
  administrator, or when the outcome is known by then.

The question (setting ``appointments.outcome.ask``): ``bot`` — a message of the app's bot
(the assistant's, b24app/assistant/bot.py) in the user's personal chat, with three buttons
whose ``COMMAND`` (registered with ``imbot.v2.Command.register``, idempotent, in the same
batch) brings ``ONIMBOTV2COMMANDADD`` back: :func:`enqueue_answer` → :func:`answer_job`;
``task`` — a task bound to the deal or lead with a checklist «Пришёл(ла)» / «Не пришёл(ла)»
/ «Перенесли», answered by ticking one (read back on ``ONTASKUPDATE``: :func:`task_job`) or
by moving the stage, and completed by the app once the outcome is known by any route
(b24app/appointments/question_task.py); ``off`` — nobody is asked. Without a registered bot
the question is a task.

The answer is a claim: the job records it only when the command names an appointment whose
question went to **that user** in **that message** (the timer's ``recipient_user_id`` and
``payload["message_id"]``), and only the first answer counts
(:func:`b24app.appointments.outcomes.record_outcome`). Assumed where the docs are silent: the
command event of a keyboard button carries the message holding the keyboard, and Bitrix24
offers no way to read back who pressed a button — the asked user and the message are what can
be checked. A stage moved by hand to came / no-show before the question answers it too
(:func:`b24app.appointments.outcomes.answer_from_stage`, also checked when a timer fires
and before a button is recorded).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from b24app import context
from b24app.appointments.outcomes import answer_from_stage
from b24app.appointments.outcomes import record_outcome
from b24app.appointments.outcomes import STAGE_WINDOW
from b24app.appointments.question_task import close_tasks
from b24app.appointments.question_task import create_task
from b24app.appointments.question_task import mark_closed
from b24app.appointments.question_task import question_timer
from b24app.appointments.question_task import read_answer
from b24app.assistant.bot import int_id
from b24app.context import Services
from b24app.event_queue import enqueue_once
from b24app.event_queue import retry
from b24app.i18n import translate
from b24app.leads.journeys import find_journey
from b24app.leads.journeys import journey_key
from b24app.settings import load_settings
from b24app.sla.worktime import WorkCalendar
from b24app.storage.models import Appointment
from b24app.storage.models import AppointmentStatus
from b24app.storage.models import Journey
from b24app.storage.models import Portal
from b24app.storage.models import PortalStatus
from b24app.storage.models import Timer
from b24app.storage.models import TimerState
from b24app.storage.models import utc_now
from b24app.storage.models import VisitOutcome
from b24app.timers.engine import cancel_where
from b24app.timers.engine import job_id_for
from b24app.timers.engine import naive_utc
from b24app.timers.engine import remove_job
from b24app.timers.engine import schedule_job
from b24app.timers.engine import seconds_per_minute
from b24app.timers.fire import send_claimed
from b24app.timers.fire import skip
from b24app.timers.fire import Steps
from b24app.timers.registry import register
from b24app.timers.registry import Send

log = logging.getLogger(__name__)

OUTCOME_POLICY = "outcome"
COMMAND = "b24app_outcome"
BUTTONS = ((VisitOutcome.CAME, "outcome.came"), (VisitOutcome.NO_SHOW, "outcome.no_show"),
           (VisitOutcome.MOVED, "outcome.moved"))  # fmt: skip
_PARAMS = re.compile(r"^\s*(\d{1,12})\s+(came|no_show|moved)\s*$")


def _minutes(value: float) -> dt.timedelta:
    """Policy minutes (``B24APP_SLA_SECONDS_PER_MINUTE`` shortens them in tests)."""
    return dt.timedelta(seconds=value * seconds_per_minute())


def due_times(appt: Appointment, settings: dict[str, Any]) -> tuple[dt.datetime, dt.datetime]:
    """When the master is asked, and when the administrator is."""
    config = settings["appointments"]["outcome"]
    grace = _minutes(int(config["grace_minutes"]))
    ask = (appt.starts_at + _minutes(int(config["length_minutes"])) + grace).replace(microsecond=0)
    calendar = WorkCalendar.from_settings(settings)
    day = calendar.interval_utc(calendar.local_date(ask))
    return ask, max(day[1] if day else ask, ask + grace)


def arm_question(services: Services, appointment_id: int, now: dt.datetime | None = None) -> int:
    """(Re)arm the appointment's two questions from its time (a question already asked for
    that time stays asked; a new time asks again; one whose time has passed when the
    appointment is learned or moved is never asked); cancel them once it is cancelled,
    answered or the portal asks nobody. Returns how many are pending."""
    moment = naive_utc(now)
    with services.db() as session:
        appt = session.get(Appointment, appointment_id)
        if appt is None:
            return 0
        if (
            appt.outcome == VisitOutcome.MOVED
            and appt.outcome_at is not None
            and (appt.starts_at > appt.outcome_at)
        ):
            appt.outcome = appt.outcome_at = appt.outcome_source = appt.outcome_by = None
        settings = load_settings(session, appt.portal_id)
        live = (appt.status != AppointmentStatus.CANCELLED and appt.outcome is None
                and settings["appointments"]["outcome"]["ask"] != "off")  # fmt: skip
        journey = session.get(Journey, appt.journey_id) if appt.journey_id else None
        key = journey_key(journey) if journey is not None else 0
        existing = {t.level: t for t in session.scalars(select(Timer).where(
            Timer.portal_id == appt.portal_id, Timer.policy == OUTCOME_POLICY,
            Timer.level.like(f"%@{appt.id}")))}  # fmt: skip
        armed, stale = _arm(session, appt, key, existing, due_times(appt, settings) if live
                            else None, moment)  # fmt: skip
        portal_id = appt.portal_id
    for job_id in stale:
        remove_job(services, job_id)
    if not live:
        cancelled = cancel_where(services, Timer.portal_id == portal_id,
                                 Timer.policy == OUTCOME_POLICY,
                                 Timer.level.like(f"%@{appointment_id}"))  # fmt: skip
        close_tasks(services, appointment_id, OUTCOME_POLICY)  # answered: its tasks are done
        return cancelled
    for job in armed:
        schedule_job(services, job, moment)
    return len(armed)


def _arm(
    session: Session, appt: Appointment, key: int, existing: dict[str, Timer],
    dues: tuple[dt.datetime, dt.datetime] | None, moment: dt.datetime,
) -> tuple[list[Timer], list[str]]:  # fmt: skip
    """The rows of :func:`arm_question`: (timers to schedule, jobs to remove)."""
    armed: list[Timer] = []
    stale: list[str] = []
    for timer in existing.values():
        timer.journey_key = key
    late = max(moment, utc_now())  # a replay's clock (the demo's) is never later than ours
    for level, due in zip(("ask", "admin"), dues or (), strict=False):
        name = f"{level}@{appt.id}"
        row = existing.get(name)
        if due <= late and (row is None or row.due_at != due):
            if row is not None and row.state == TimerState.PENDING:
                row.state = TimerState.CANCELLED
                stale.append(row.job_id)
            continue  # learned (or moved) too late to ask: never asked late, as reminders
        if row is not None and row.due_at == due:
            if row.state == TimerState.PENDING:
                armed.append(row)
            continue  # asked (or skipped) for this very time
        if row is None:
            row = Timer(portal_id=appt.portal_id, journey_key=key, policy=OUTCOME_POLICY,
                        level=name, job_id=job_id_for(appt.portal_id, 0, OUTCOME_POLICY, name))  # fmt: skip
            session.add(row)
        elif row.state == TimerState.PENDING:
            stale.append(row.job_id)
        row.state, row.due_at, row.started_at = TimerState.PENDING, due, moment
        row.payload = {"appointment_id": appt.id}
        row.claimed_at = row.fired_at = row.recipient_user_id = None
        armed.append(row)
    session.flush()
    return [Timer(id=t.id, job_id=t.job_id, due_at=t.due_at) for t in armed], stale


def follow_stage(services: Services, member_id: str, entity: str, entity_id: int) -> int:
    """After a lead/deal event: a stage moved by hand to came / no-show answers the question
    of the journey's appointment of that time (first answer wins); returns how many."""
    with services.db() as session:
        portal = session.scalar(select(Portal).where(Portal.member_id == member_id,
                                                     Portal.status == PortalStatus.ACTIVE))  # fmt: skip
        if portal is None:
            return 0
        ids = {"lead_id": entity_id} if entity == "lead" else {"deal_id": entity_id}
        journey = find_journey(session, portal.id, **ids)
        if journey is None or (journey.came_at is None and journey.no_show_at is None):
            return 0
        rows = session.scalars(select(Appointment).where(
            Appointment.portal_id == portal.id, Appointment.journey_id == journey.id,
            Appointment.outcome.is_(None), Appointment.status != AppointmentStatus.CANCELLED,
            Appointment.starts_at <= utc_now() + STAGE_WINDOW,
        ))  # fmt: skip
        answered = [appt.id for appt in rows if answer_from_stage(session, appt, journey)]
    for appointment_id in answered:
        arm_question(services, appointment_id)  # the pending questions go
    return len(answered)


def prepare_question(
    services: Services, session: Session, timer: Timer, now: dt.datetime
) -> str | Send:
    """The ``outcome`` policy: re-read the appointment; nothing to ask once it is answered
    (by a button or a stage), cancelled, or the portal is gone; else claim → ask → mark."""
    appt = session.get(Appointment, int((timer.payload or {}).get("appointment_id") or 0))
    portal = session.get(Portal, timer.portal_id)
    if portal is None or portal.status != PortalStatus.ACTIVE:
        return skip(timer, "portal_inactive")
    if appt is None or appt.status == AppointmentStatus.CANCELLED:
        return skip(timer, "cancelled")
    journey = session.get(Journey, appt.journey_id) if appt.journey_id else None
    if appt.outcome is not None or answer_from_stage(session, appt, journey) is not None:
        skipped, appointment_id = skip(timer, "answered"), appt.id
        return lambda: _close_then(services, appointment_id, skipped)
    settings = load_settings(session, portal.id)
    admin = int(settings.get("owner_user_id") or portal.installer_user_id or 1)
    master = int((journey.assigned_by_id if journey is not None else None) or admin)
    level = timer.level.split("@", 1)[0]
    if level == "admin" and master == admin:
        return skip(timer, "master_is_admin")
    bot = ((portal.registration or {}).get("assistant_bot") or {}).get("id")
    snap = {
        "member_id": portal.member_id, "lang": portal.lang or "ru",
        "user_id": admin if level == "admin" else master,
        "mode": settings["appointments"]["outcome"]["ask"] if bot else "task",
        "bot_id": bot, "appointment_id": appt.id, "deal_id": appt.deal_id,
        "lead_id": appt.lead_id, "service": appt.service, "client": appt.client_name or "",
        "when": _local_time(appt.starts_at, settings),
    }  # fmt: skip
    payload = dict(timer.payload or {})
    return lambda: send_claimed(services, timer.id, now, payload,
                                lambda steps: _ask(services, snap, steps))  # fmt: skip


def _close_then(services: Services, appointment_id: int, result: str) -> str:
    """After the timer's transaction: the answered appointment's question tasks close."""
    close_tasks(services, appointment_id, OUTCOME_POLICY)
    return result


def _local_time(moment: dt.datetime, settings: dict[str, Any]) -> str:
    zone = WorkCalendar.from_settings(settings).time_zone
    return moment.replace(tzinfo=dt.UTC).astimezone(zone).strftime("%d.%m %H:%M")


def question_text(snap: dict[str, Any]) -> str:
    lang = snap["lang"]
    client = snap["client"] or translate(lang, "outcome.client")
    service = snap["service"] or translate(lang, "outcome.visit")
    return translate(lang, "outcome.question", client=client[:100], service=service[:100],
                     when=snap["when"])  # fmt: skip


def _ask(services: Services, snap: dict[str, Any], steps: Steps) -> int:
    """Send the question (bot message with buttons, or a task); returns the asked user."""
    client = services.bitrix(snap["member_id"])
    text, lang, user = question_text(snap), snap["lang"], int(snap["user_id"])
    if snap["mode"] == "bot" and "question" not in steps:
        buttons: list[dict[str, Any]] = []
        for outcome, key in BUTTONS:
            buttons.append({"TEXT": translate(lang, key), "COMMAND": COMMAND, "BLOCK": "Y",
                            "COMMAND_PARAMS": f"{snap['appointment_id']} {outcome}",
                            "DISPLAY": "LINE"})  # fmt: skip
        answer = client.batch({
            "command": ("imbot.v2.Command.register", {"botId": snap["bot_id"], "fields": {
                "command": COMMAND, "hidden": True, "common": False}}),
            "question": ("imbot.v2.Chat.Message.send", {
                "botId": snap["bot_id"], "dialogId": str(user),
                "fields": {"message": text, "keyboard": {"BOT_ID": snap["bot_id"],
                                                         "BUTTONS": buttons}}}),
        })  # fmt: skip
        error = answer.error("question")
        if error is not None:
            raise error
        steps.payload["message_id"] = int_id(answer.results.get("question"))
        steps.mark("question")
        return user
    if snap["mode"] != "bot" and "task" not in steps:
        steps.payload.update(create_task(services, client, snap, text, steps.timer_id))
        steps.mark("task")
    return user


def enqueue_answer(
    services: Services, member_id: str, user_id: int, message_id: int, params: str
) -> bool:
    """Queue a button's answer (``ONIMBOTV2COMMANDADD``): only ids and the params travel."""
    job_id = re.sub(r"[^A-Za-z0-9_-]", "_", f"outcome-{member_id}-{message_id}-{user_id}")
    return enqueue_once(
        services.queue("events"),
        answer_job, member_id, int(user_id), int(message_id), str(params)[:64],
        job_id=job_id, result_ttl=0, failure_ttl=7 * 86400,
        retry=retry(),
    )  # fmt: skip


def answer_job(member_id: str, user_id: int, message_id: int, params: str) -> str:
    """RQ job: record the answer of a question the app asked this user in this message
    (module docstring); ``recorded``, ``already_known`` or why it was ignored."""
    services = context.current()
    parsed = _PARAMS.match(params or "")
    if parsed is None:
        return "bad_params"
    appointment_id, outcome = int(parsed.group(1)), parsed.group(2)
    with services.db() as session:
        portal = session.scalar(select(Portal).where(Portal.member_id == member_id,
                                                     Portal.status == PortalStatus.ACTIVE))  # fmt: skip
        if portal is None:
            return "portal_inactive"
        asked = session.scalars(select(Timer).where(
            Timer.portal_id == portal.id, Timer.policy == OUTCOME_POLICY,
            Timer.level.like(f"%@{appointment_id}"), Timer.state == TimerState.FIRED,
            Timer.recipient_user_id == user_id,
        ))  # fmt: skip
        if not any((t.payload or {}).get("message_id") == message_id for t in asked):
            log.warning("outcome answer not matching a question asked: ignored")
            return "not_asked"
    result = record_outcome(services, appointment_id, outcome, source="button", by=user_id)
    if result == "recorded":
        arm_question(services, appointment_id)  # the administrator's question goes
    return result


def enqueue_task_update(services: Services, member_id: str, task_id: int, ts: int) -> bool:
    """Queue an ``ONTASKUPDATE`` (only the task's id travels: it is read back)."""
    job_id = re.sub(r"[^A-Za-z0-9_-]", "_", f"outcome-task-{member_id}-{task_id}-{ts}")
    return enqueue_once(
        services.queue("events"), task_job, member_id, int(task_id),
        job_id=job_id, result_ttl=0, failure_ttl=7 * 86400,
        retry=retry(),
    )  # fmt: skip


def task_job(member_id: str, task_id: int) -> str:
    """RQ job: a task changed; if it is a question task of the app, read it back and record
    the one answer its checklist tells (b24app/appointments/question_task.py)."""
    services = context.current()
    timer_id = question_timer(services, member_id, task_id)
    if timer_id is None:
        return "not_ours"  # the portal's other tasks: no database read, no request
    with services.db() as session:
        timer = session.get(Timer, timer_id)
        portal = session.get(Portal, timer.portal_id) if timer is not None else None
        payload = dict(timer.payload or {}) if timer is not None else {}
        if (timer is None or portal is None or portal.member_id != member_id
                or timer.policy != OUTCOME_POLICY or payload.get("task_id") != task_id):  # fmt: skip
            return "not_ours"
        asked = int(timer.recipient_user_id or 0)
        appointment_id = int(payload["appointment_id"])
        appt = session.get(Appointment, appointment_id)
        if appt is None or appt.outcome is not None:
            return "already_known"  # e.g. the event of the app's own tasks.task.complete
    said, completed = read_answer(
        services.bitrix(member_id), task_id, payload.get("task_items") or {}
    )
    if completed:
        mark_closed(services, timer_id)  # the person completed it: nothing for the app to close
    if said is None:
        return "unanswered"
    outcome, by = said
    result = record_outcome(services, appointment_id, outcome, source="task", by=by or asked)
    arm_question(services, appointment_id)  # the other questions go, their tasks close
    return result


register(prepare_question, OUTCOME_POLICY)
