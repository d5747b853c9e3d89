"""Reminders of an appointment, on the timer engine (:mod:`b24app.timers`), and their
delivery to the client by the first channel that works.

Timers
======

Each offset (``settings["appointments"]["offsets"]``, default ``24h`` and ``2h``) is a
:class:`~b24app.storage.models.Timer` with policy ``appointment``, level ``<offset>@<appointment
id>`` (unique per appointment) and ``journey_key`` (0 until the appointment is
linked to a journey), due ``starts_at - offset``; its RQ job (``sla-<portal>-0-appointment-…``)
wakes :func:`b24app.timers.fire.fire_timer`, which hands it to :func:`prepare_reminder`
(registered for the policy on import). Reconciliation, claims and retries work as for SLA
timers, in two transactions per send: :func:`claim_appointment_timer` checks, claims and
reads everything in the job's first one (committed before any REST call), and
:func:`send_appointment_reminder` records the attempts, the appointment's ``reminded_*``, the
timer's state (``payload["done"]``: the channel that delivered) and the send's REST log rows in
one more.

**Offsets already past are skipped, never fired at once.** A new appointment booked less than
its first offset ahead gets one immediate confirmation request instead (level ``confirm``):
booked 3 h ahead → the request now and the ``2h`` reminder, no ``24h`` one. Due times keep out
of the quiet hours in the booking's own time zone (:func:`wanted_times`,
:mod:`b24app.appointments.quiet`). A moved appointment re-arms its offsets from the new time (a
sent reminder whose due time moves is sent again for the new time); a cancelled one cancels
its pending timers.

Offsets are scaled by ``B24APP_SLA_SECONDS_PER_MINUTE`` like SLA minutes (tests only).

Delivery
========

Channels in the admin's order (``chat`` → ``workflow`` → ``todo`` by default); a channel that
fails for a reason of its own (no active chat, sender refused, no workflow, template mismatch,
free plan, access denied, the messenger's rule: :mod:`b24app.appointments.delivery`) falls
through to the next **in the same run** — the same minute; a chat send found undelivered at
its check (timer policy :data:`CHECK_POLICY`) falls through then.
Limits, 5xx and network errors are raised instead, and the timer job's retries run the whole
reminder again, resuming after the channel that already went through. Every attempt is a
:class:`~b24app.storage.models.ReminderAttempt` row (channel, time, ok, error, state). The
to-do says why the client was not reached. Consent is asked once, right after the claim
(:func:`b24app.consent.policy.may_message`): a client who wrote «СТОП» gets nothing on any channel.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from b24app import logs
from b24app.appointments import delivery
from b24app.appointments.question import arm_question
from b24app.appointments.quiet import out_of_quiet
from b24app.appointments.quiet import zone
from b24app.appointments.reminder_text import parse_offset
from b24app.appointments.reminder_text import render_reminder
from b24app.appointments.resources import offsets_beside_booking
from b24app.appointments.watch import watch_reminder
from b24app.bitrix.budget import urgent_rest
from b24app.bitrix.client import BitrixClient
from b24app.consent.contact import Contact
from b24app.consent.policy import may_message
from b24app.context import Services
from b24app.leads.journeys import find_journey
from b24app.leads.journeys import journey_key
from b24app.reach import Delivery
from b24app.reach.todo import add_todo
from b24app.reach.workflow import start_workflow
from b24app.settings import effective_settings
from b24app.settings import load_settings
from b24app.storage.db import rows_affected
from b24app.storage.models import Appointment
from b24app.storage.models import AppointmentStatus
from b24app.storage.models import AssistantDialog
from b24app.storage.models import Journey
from b24app.storage.models import Portal
from b24app.storage.models import PortalSettings
from b24app.storage.models import PortalStatus
from b24app.storage.models import ReminderAttempt
from b24app.storage.models import Timer
from b24app.storage.models import TimerState
from b24app.storage.models import utc_now
from b24app.storage.portals import portal_auth
from b24app.timers.engine import cancel_where
from b24app.timers.engine import ceil_second
from b24app.timers.engine import job_id_for
from b24app.timers.engine import naive_utc
from b24app.timers.engine import new_timer
from b24app.timers.engine import remove_job
from b24app.timers.engine import schedule_job
from b24app.timers.engine import seconds_per_minute
from b24app.timers.fire import claim_statement
from b24app.timers.fire import PERMANENT_ERRORS
from b24app.timers.fire import skip
from b24app.timers.registry import register
from b24app.timers.registry import Send

log = logging.getLogger(__name__)

APPOINTMENT_POLICY = "appointment"
# The manager-only reminders of earlier versions (a to-do per offset); nothing schedules them
# any more, and one still pending is skipped (the appointment route cancels them first).
LEGACY_REMINDER_POLICY = "reminder"


def level_for(offset: str, appointment_id: int) -> str:
    return f"{offset}@{appointment_id}"


def scaled_offset(offset: str) -> dt.timedelta:
    """The offset before the appointment (``B24APP_SLA_SECONDS_PER_MINUTE`` shortens it)."""
    return parse_offset(offset) * (seconds_per_minute() / 60.0)


def _timers(session: Any, portal_id: int, appointment_id: int) -> dict[str, Timer]:
    rows = session.scalars(
        select(Timer).where(
            Timer.portal_id == portal_id,
            Timer.policy == APPOINTMENT_POLICY,
            Timer.level.like(f"%@{appointment_id}"),
        )
    )
    return {t.level: t for t in rows}


CONFIRM_LEVEL = "confirm"


def quiet_due(
    due: dt.datetime, starts_at: dt.datetime, now: dt.datetime, time_zone: str | None,
    settings: dict[str, Any],
) -> dt.datetime | None:  # fmt: skip
    """When a client message due at ``due`` may go: out of the portal's quiet hours in the
    booking's time zone (else the portal's), before the visit; None when no time is left
    (:func:`b24app.appointments.quiet.out_of_quiet`)."""
    quiet = settings["appointments"].get("quiet_hours") or {}
    tz = zone(time_zone, settings.get("time_zone"))
    return out_of_quiet(due, starts_at, now, tz, quiet.get("from", ""), quiet.get("to", ""))


def wanted_times(
    appt: Appointment, offsets: list[str], settings: dict[str, Any], moment: dt.datetime,
    *, first_time: bool,
) -> dict[str, dt.datetime]:  # fmt: skip
    """Level → due time of the appointment's reminders, out of the quiet hours (in the
    booking's time zone, else the portal's); a reminder with no time left is left out, and
    two that land on one moment are one. A new appointment whose first offset is already
    past gets one immediate confirmation request (``confirm``) instead."""
    wanted: dict[str, dt.datetime] = {}
    taken: set[dt.datetime] = set()
    planned = [(level_for(o, appt.id), appt.starts_at - scaled_offset(o)) for o in offsets]
    if (
        first_time
        # the assistant's pre-booking was agreed in the chat; a confirmed one needs no request
        and appt.source != "assistant"
        and appt.status != AppointmentStatus.CONFIRMED
        and planned
        and max(appt.starts_at - due for _, due in planned) >= (appt.starts_at - moment)
    ):
        planned.insert(0, (level_for(CONFIRM_LEVEL, appt.id), moment))
    for level, due in planned:
        if due < moment and not level.startswith(f"{CONFIRM_LEVEL}@"):
            continue  # past offsets are skipped, never sent at once (module docstring)
        moved = quiet_due(due, appt.starts_at, moment, appt.time_zone, settings)
        if moved is None or ceil_second(moved) in taken:
            continue
        wanted[level] = ceil_second(moved)
        taken.add(wanted[level])
    return wanted


def schedule_appointment(
    services: Services, appointment_id: int, now: dt.datetime | None = None
) -> int:
    """(Re)arm the reminders of one appointment from its current time and status; returns
    how many are pending. Idempotent: the same call again changes nothing."""
    moment = naive_utc(now)
    to_schedule: list[tuple[int, str, dt.datetime]] = []
    to_remove: list[str] = []
    with services.db() as session:
        appt = session.get(Appointment, appointment_id)
        if appt is None:
            return 0
        if appt.journey_id is None:  # the journey may have appeared since (backfill, events)
            found = find_journey(
                session, appt.portal_id, lead_id=appt.lead_id, deal_id=appt.deal_id,
                contact_id=appt.contact_id,
            )  # fmt: skip
            appt.journey_id = found.id if found is not None else None
        settings = load_settings(session, appt.portal_id)
        offsets = [o.strip() for o in (appt.offsets or settings["appointments"]["offsets"])]
        # where Bitrix24 Booking itself confirms or reminds, no second copy (resources.py)
        offsets = offsets_beside_booking(
            offsets, appt.booking_sends, bool(settings["appointments"].get("booking_nudge"))
        )
        journey = session.get(Journey, appt.journey_id) if appt.journey_id else None
        key = journey_key(journey) if journey is not None else 0
        live = appt.status != AppointmentStatus.CANCELLED and appt.starts_at > moment
        existing = _timers(session, appt.portal_id, appt.id)
        wanted = wanted_times(appt, offsets, settings, moment, first_time=not existing)
        for level, timer in existing.items():
            timer.journey_key = key
            if timer.state == TimerState.PENDING and (
                not live
                or (level not in wanted and not level.startswith(f"{CONFIRM_LEVEL}@"))
                or (level in wanted and wanted[level] < moment)
            ):
                timer.state = TimerState.CANCELLED
                to_remove.append(timer.job_id)
        payload = {"appointment_id": appt.id, "starts_at": appt.starts_at.isoformat()}
        for level, due in wanted.items() if live else ():
            if due < moment:
                continue
            row = existing.get(level)
            if row is not None and row.due_at == due and row.state in (
                TimerState.PENDING, TimerState.FIRED,
            ):  # fmt: skip
                if row.state == TimerState.PENDING:
                    to_schedule.append((row.id, row.job_id, row.due_at))
                continue
            if row is None:
                row = Timer(
                    portal_id=appt.portal_id,
                    journey_key=key,
                    policy=APPOINTMENT_POLICY,
                    level=level,
                    job_id=job_id_for(appt.portal_id, 0, APPOINTMENT_POLICY, level),
                )
                session.add(row)
            elif row.state == TimerState.PENDING:
                to_remove.append(row.job_id)
            row.state = TimerState.PENDING
            row.due_at = due
            row.started_at = moment
            row.payload = dict(payload)
            row.claimed_at = None
            row.fired_at = None
            row.recipient_user_id = None
            session.flush()
            to_schedule.append((row.id, row.job_id, row.due_at))
    for job_id in to_remove:
        remove_job(services, job_id)
    for timer_id, job_id, due_at in to_schedule:
        schedule_job(services, Timer(id=timer_id, job_id=job_id, due_at=due_at), moment)
    arm_question(services, appointment_id, moment)  # and who saw it is asked afterwards
    return len(to_schedule)


# --- firing ---------------------------------------------------------------------------------


def _skip(appt: Appointment | None, journey: Journey | None, portal: Portal | None,
          now: dt.datetime) -> str | None:  # fmt: skip
    if portal is None or portal.status != PortalStatus.ACTIVE:
        return "portal_inactive"
    if appt is None or appt.status == AppointmentStatus.CANCELLED:
        return "cancelled"
    if appt.starts_at <= now:
        return "appointment_passed"
    if journey is not None and journey.deleted_at is not None:
        # Came / no-show of the journey are about an earlier visit: a repeat client's next
        # appointment is still reminded.
        return "journey_deleted"
    return None


def _chat_typed_phone() -> Any:
    """A pre-booking of the assistant on a chat bound to a lead only: the lead's phone is the
    one a chat visitor typed (the assistant wrote it there), and no one at the salon has
    confirmed it; no SMS workflow goes to it (a deal's or contact's phone is the CRM's own)."""
    return (
        select(AssistantDialog.id)
        .where(
            AssistantDialog.portal_id == Appointment.portal_id,
            AssistantDialog.appointment_id == Appointment.id,
            AssistantDialog.deal_id.is_(None),
            AssistantDialog.contact_id.is_(None),
        )
        .exists()
        .label("chat_typed_phone")
    )


def claim_appointment_timer(
    services: Services, session: Session, timer: Timer, now: dt.datetime
) -> str | dict[str, Any]:
    """Check, claim and snapshot a due appointment reminder in the caller's transaction
    (:func:`b24app.timers.fire.fire_timer`'s, which read ``timer``): ``"skipped"`` / ``"busy"``
    or the snapshot :func:`send_appointment_reminder` sends from. One transaction instead of a
    read, a claim and a re-read: the claim is committed with it, before anything is sent."""
    # The appointment, its portal, journey, settings and whether the phone is one a chat
    # visitor typed, in one statement (each round trip is a send's lateness).
    found = session.execute(
        select(Appointment, Portal, Journey, PortalSettings, _chat_typed_phone())
        .join(Portal, Portal.id == Appointment.portal_id)
        .outerjoin(Journey, Journey.id == Appointment.journey_id)
        .outerjoin(PortalSettings, PortalSettings.portal_id == Appointment.portal_id)
        .where(
            Appointment.id == int((timer.payload or {}).get("appointment_id") or 0),
            Appointment.portal_id == timer.portal_id,
        )
    ).first()
    appt, portal, journey, settings_row, chat_typed_phone = found if found else (None,) * 5
    if portal is None:
        portal = session.get(Portal, timer.portal_id)
    reason = _skip(appt, journey, portal, now)
    if reason is not None:
        timer.state = TimerState.SKIPPED
        timer.payload = {**(timer.payload or {}), "skip_reason": reason}
        return "skipped"
    assert appt is not None and portal is not None
    if not rows_affected(session.execute(claim_statement(timer.id, now))):
        return "busy"
    return {
        "timer_id": timer.id,
        "appointment_id": appt.id,
        "portal_id": portal.id,
        "member_id": portal.member_id,
        # The tokens as read here: the job's first REST call needs no read of its own.
        "auth": portal_auth(portal),
        "lang": portal.lang or "ru",
        "installer": portal.installer_user_id or 1,
        "responsible": journey.assigned_by_id if journey is not None else None,
        "level": timer.level.split("@", 1)[0],
        "lead_id": appt.lead_id,
        "deal_id": appt.deal_id,
        "contact_id": appt.contact_id,
        "client_name": appt.client_name or "",
        "starts_at": appt.starts_at,
        "service": appt.service,
        "confirmed": appt.status == AppointmentStatus.CONFIRMED,
        "chat_id": appt.chat_id,
        "chat_facts": delivery.chat_facts(
            session,
            appt.portal_id,
            appt.chat_id,
            _targets(
                {"deal_id": appt.deal_id, "lead_id": appt.lead_id, "contact_id": appt.contact_id}
            ),
        ),
        "time_zone": appt.time_zone,
        "chat_typed_phone": bool(chat_typed_phone),
        "payload": dict(timer.payload or {}),
        "settings": effective_settings(settings_row),
    }


def send_appointment_reminder(
    services: Services, snap: dict[str, Any], now: dt.datetime | None = None
) -> str:
    """Deliver a claimed reminder and record the outcome — the attempts, the appointment's
    ``reminded_*``, the timer's state and the REST log rows — in **one** transaction:
    ``fired``, ``skipped`` (a permanent error) or, for a transient one, the claim released
    and the error raised for the job's retry (as :func:`b24app.timers.fire.send_claimed`).
    ``now`` (default: the clock) is when the attempts are recorded: the demo replays its
    salon's past reminders at their due times (``devportal.demo_data``)."""

    tried: list[dict[str, Any]] = []
    with (
        logs.bind(member_id=snap["member_id"], appointment_id=snap["appointment_id"]),
        services.deferred_rest_log(),
    ):
        try:
            with urgent_rest():  # a due reminder goes before bulk reads (issue 14)
                sent, recipient = deliver(services, snap, tried, now)
        except PERMANENT_ERRORS as exc:
            log.warning("timer %s not sent: %s", snap["timer_id"], type(exc).__name__)
            _close(services, snap, tried, TimerState.SKIPPED, skip=type(exc).__name__, now=now)
            return "skipped"
        except Exception:
            _close(services, snap, tried, None, now=now)
            raise
        _close(services, snap, tried, TimerState.FIRED, sent=sent, recipient=recipient, now=now)
    into = next((row for row in tried if row["ok"] and row.get("chat_id")), None)
    if into is not None and now is None and not snap["confirmed"]:
        # the client's answer is read back from the chat while it is awaited (replies.py)
        watch_reminder(services, snap["member_id"], snap["appointment_id"],
                       int(into["chat_id"]), into["attempted_at"])  # fmt: skip
    return "fired"


def _close(
    services: Services, snap: dict[str, Any], tried: list[dict[str, Any]], state: str | None,
    *, sent: str | None = None, recipient: int | None = None, skip: str | None = None,
    now: dt.datetime | None = None, marks: list[tuple[int, str, str]] | None = None,
    seen: list[dict[str, Any]] | None = None,
) -> None:  # fmt: skip
    """The one closing transaction (``state`` None: release the claim for a retry);
    ``marks``: (attempt id, state, reason) a delivery check found; ``seen``: chat facts."""
    now = now or utc_now()
    with services.db() as session:
        for attempt_id, mark, reason in marks or []:
            delivery.record_mark(session, attempt_id, mark, reason)
        attempts = [
            ReminderAttempt(
                portal_id=snap["portal_id"],
                appointment_id=snap["appointment_id"],
                level=snap["level"],
                channel=row["channel"],
                ok=row["ok"],
                error=row["error"],
                detail=row["detail"],
                attempted_at=row["attempted_at"],
                state=row.get("state", ""),
                message_id=row.get("message_id"),
            )  # fmt: skip
            for row in tried
        ]
        session.add_all(attempts)
        for learned in [*(row.get("seen") for row in tried), *(seen or [])]:
            if learned:
                delivery.remember_chat(session, snap["portal_id"], learned)
        delivered = next((row for row in tried if row["ok"]), None)
        if delivered is not None:
            values: dict[str, Any] = {"reminded_at": now}
            if delivered["channel"] != "todo":
                values["reminded_via"] = delivered["channel"]
            if delivered.get("chat_id") is not None:
                values["chat_id"] = delivered["chat_id"]
            session.execute(
                update(Appointment)
                .where(Appointment.id == snap["appointment_id"])
                .values(**values)
                .execution_options(synchronize_session=False)
            )
        timer = update(Timer).where(Timer.id == snap["timer_id"])
        if state is None:
            timer = timer.where(Timer.fired_at.is_(None)).values(claimed_at=None)
        else:
            payload = dict(snap["payload"])
            if sent is not None:
                payload["done"] = [*(payload.get("done") or []), f"sent:{sent}"]
            if skip is not None:
                payload["skip_reason"] = skip
            timer = timer.values(state=state, payload=payload)
            if state == TimerState.FIRED:
                timer = timer.values(fired_at=now, recipient_user_id=recipient)
        session.execute(timer.execution_options(synchronize_session=False))
        check = _arm_check(session, snap, tried, attempts, now) if delivered else None
        services.add_rest_log(session)
    if check is not None:
        schedule_job(services, check, now)


def _arm_check(
    session: Session, snap: dict[str, Any], tried: list[dict[str, Any]],
    attempts: list[ReminderAttempt], now: dt.datetime,
) -> Timer | None:  # fmt: skip
    """The delivery check of a chat send still ``accepted`` (module ``delivery``): a timer of
    policy :data:`CHECK_POLICY`, due :data:`~delivery.CHECK_MINUTES` later and before the
    visit; its attempt row id in the payload. None when there is nothing to check."""
    sent, attempt = next(((r, a) for r, a in zip(tried, attempts, strict=True)
                          if r["ok"] and r.get("state") == delivery.ACCEPTED), (None, None))  # fmt: skip
    if sent is None or attempt is None or not sent.get("message_id"):
        return None
    due = min(now + dt.timedelta(seconds=delivery.CHECK_MINUTES * seconds_per_minute()),
              snap["starts_at"] - dt.timedelta(seconds=1))  # fmt: skip
    session.flush()  # the attempt's id, from its INSERT (no query of its own)
    payload = {"appointment_id": snap["appointment_id"], "attempt_id": attempt.id,
               "chat_id": sent["chat_id"], "message_id": sent["message_id"]}  # fmt: skip
    return _check_timer(session, snap, due, payload, now)


def _check_timer(
    session: Session, snap: dict[str, Any], due: dt.datetime, payload: dict[str, Any],
    now: dt.datetime,
) -> Timer:  # fmt: skip
    """The reminder's delivery check timer (one per reminder level), pending at ``due``."""
    level = f"{snap['level']}@{snap['appointment_id']}"
    row = session.scalar(
        select(Timer).where(
            Timer.portal_id == snap["portal_id"], Timer.policy == CHECK_POLICY, Timer.level == level
        )  # fmt: skip
    )
    if row is None:
        row = new_timer(snap["portal_id"], 0, CHECK_POLICY, level, ceil_second(due), now,
                        payload=payload)  # fmt: skip
        session.add(row)
    else:  # a check again for the same level: the row comes back pending
        row.state, row.due_at, row.started_at = TimerState.PENDING, ceil_second(due), now
        row.claimed_at = row.fired_at = None
        row.payload = payload
    session.flush()
    return Timer(id=row.id, job_id=row.job_id, due_at=row.due_at)


def reminder_text(
    settings: dict[str, Any],
    snap: dict[str, Any],
    client_name: str = "",
    rewrite: Callable[[str, str], str] | None = None,
) -> str:
    """The portal's reminder template (+ the confirmation prompt while unconfirmed), in the
    booking's time zone; the immediate confirmation request (level ``confirm``) has its own
    text."""
    lang = snap["lang"] if snap["lang"] in ("ru", "en") else "ru"
    if snap.get("time_zone"):
        settings = {**settings, "time_zone": snap["time_zone"]}
    own = None
    if snap["level"] == CONFIRM_LEVEL:
        own = (settings["appointments"].get("confirm_request") or {}).get(lang) or None
    text = render_reminder(
        settings,
        template="default",
        template_text=own,
        lang=lang,
        client_name=client_name or ("Здравствуйте" if lang == "ru" else "Hello"),
        service=snap["service"] or ("запись" if lang == "ru" else "your appointment"),
        appointment_at=snap["starts_at"],
        rewrite=rewrite,
    )
    if not snap["confirmed"]:
        prompt = settings["appointments"]["confirm_prompt"].get(lang) or ""
        text = f"{text}\n{prompt}".strip()
    return text


def _targets(snap: dict[str, Any]) -> list[tuple[str, int]]:
    return [
        (kind, int(snap[f"{kind}_id"]))
        for kind in ("deal", "lead", "contact")
        if snap.get(f"{kind}_id")
    ]


def _try(
    client: BitrixClient, channel: str, snap: dict[str, Any], settings: dict[str, Any],
    text: str, why: list[str], now: dt.datetime,
) -> tuple[Delivery, dict[str, Any] | None]:  # fmt: skip
    """One channel's attempt: the delivery and, for the chat, what was learned of it."""
    config = settings["appointments"]
    if channel == "chat":
        sender = int(config.get("sender_user_id") or snap["installer"])
        targets = _targets(snap)
        return delivery.chat_step(client, snap, targets, sender, text, now)
    if channel == "workflow":
        if snap.get("chat_typed_phone"):
            return Delivery(False, error="phone_typed_in_chat"), None
        workflow = config["workflow"]
        kind = workflow.get("document_type") or "DEAL"
        local_time = snap["starts_at"].replace(tzinfo=dt.UTC).isoformat()
        return start_workflow(
            client,
            workflow.get("template_id"),
            kind,
            snap.get("deal_id") if kind == "DEAL" else snap.get("lead_id"),
            {workflow["text_param"]: text, workflow["time_param"]: local_time},
        ), None
    return _todo(client, snap, text, why), None


def _todo(client: BitrixClient, snap: dict[str, Any], text: str, why: list[str]) -> Delivery:
    owner = next(iter(_targets(snap)), None)
    ru = snap["lang"] == "ru"
    title = (
        f"Напомнить клиенту о записи ({snap['level']})"
        if ru
        else f"Remind the client of the appointment ({snap['level']})"
    )
    reason = "; ".join(why) or ("каналы не настроены" if ru else "no client channel configured")
    note = (
        f"Клиенту не удалось напомнить автоматически: {reason}." if ru
        else f"The client could not be reminded automatically: {reason}."
    )  # fmt: skip
    responsible = int(snap["responsible"] or snap["installer"])
    return add_todo(client, owner, responsible, title, f"{text}\n\n{note}", snap["starts_at"])


def _state(channel: str, result: Delivery, seen: dict[str, Any] | None,
           snap: dict[str, Any]) -> str:  # fmt: skip
    if not result.ok:
        return delivery.FAILED
    if channel == "chat" and delivery.needs_check(seen, snap.get("chat_facts")):
        return delivery.ACCEPTED  # checked later (_arm_check)
    # the manager has the to-do; a workflow's SMS and other chats report nothing back
    return delivery.DELIVERED if channel == "todo" else delivery.UNKNOWN


def _rephraser(services: Services, settings: dict[str, Any]) -> Callable[[str, str], str] | None:
    """The optional model rephrasing of the template: the portal opted in and a model is
    configured (``B24APP_LLM_API_KEY``); None otherwise (the template as written)."""
    config = services.settings
    if not settings["appointments"].get("rephrase") or not config.llm_api_key:
        return None
    from b24app.reach.rephrase import Rephraser

    rephraser = Rephraser(services.redis, config.llm_api_url, config.llm_api_key,
                          config.llm_model, session=services.http_session())  # fmt: skip
    return lambda template, lang: rephraser.template_for(template, lang)[0]


def deliver(
    services: Services, snap: dict[str, Any], tried: list[dict[str, Any]],
    now: dt.datetime | None = None, *, after: str | None = None,
    why: list[str] | None = None, only: list[str] | None = None,
) -> tuple[str | None, int]:  # fmt: skip
    """Try the channels in order until one works, appending each attempt to ``tried``;
    returns the channel that delivered (None: none did) and the recipient user id (the
    responsible manager for the to-do, 0 when the client was reached directly). ``after``:
    start after that channel (a chat send found undelivered falls through), ``why`` the
    reasons so far, ``only`` these channels (the order kept)."""
    settings = snap["settings"]
    manager = int(snap["responsible"] or snap["installer"])
    done = (snap["payload"] or {}).get("done") or []
    client = services.bitrix(snap["member_id"], auth=snap.get("auth"))
    text = reminder_text(
        settings, snap, snap.get("client_name") or "", _rephraser(services, settings)
    )
    why = list(why or [])
    channels = list(settings["appointments"]["channels"])
    if after in channels:
        channels = channels[channels.index(after) + 1 :]
    if only is not None:
        channels = [c for c in channels if c in only]
    for channel in channels:
        if f"sent:{channel}" in done:  # a retry after the send went through
            return None, 0 if channel != "todo" else manager
        result, seen = _try(client, channel, snap, settings, text, why, naive_utc(now))
        tried.append(
            {"channel": channel, "ok": result.ok, "error": result.error[:255],
             "detail": result.detail[:64], "attempted_at": now or utc_now(),
             "chat_id": result.chat_id, "message_id": result.message_id, "seen": seen,
             "state": _state(channel, result, seen, snap)}
        )  # fmt: skip
        if result.ok:
            return channel, 0 if channel != "todo" else manager
        why.append(f"{channel}: {result.error}")
        log.info("reminder channel %s failed: %s", channel, result.error)
    return None, 0


CHECK_POLICY = "reminder_delivery"


def check_delivery(services: Services, snap: dict[str, Any], now: dt.datetime | None = None) -> str:
    """A chat send's delivery check (module ``delivery``): read the chat back — with the chats
    of other sends still waiting, in one request — record the states, and on a "not
    delivered" go on with the channels after the chat, in this run (or, in the client's quiet
    hours, at the morning window: ``moved``, :func:`falls_through`). A send an earlier check
    already marked needs no read."""
    payload = snap["payload"]
    own: delivery.Check = (int(payload.get("attempt_id") or 0), int(payload.get("chat_id") or 0),
                           int(payload.get("message_id") or 0))  # fmt: skip
    tried: list[dict[str, Any]] = []
    with (
        logs.bind(member_id=snap["member_id"], appointment_id=snap["appointment_id"]),
        services.deferred_rest_log(),
    ):
        try:
            with urgent_rest():
                marks = {own[0]: (snap["attempt_state"], snap["attempt_error"])}
                if snap["attempt_state"] == delivery.ACCEPTED:
                    client = services.bitrix(snap["member_id"], auth=snap.get("auth"))
                    marks = delivery.read_marks(client, [own, *snap["also_check"]])
                state, reason = marks.get(own[0]) or ("", "")
                marks[own[0]] = (state or delivery.UNKNOWN, reason)
                sent, recipient, goes = None, 0, None
                if state == delivery.FAILED:
                    goes = falls_through(snap, naive_utc(now))
                    if isinstance(goes, list):
                        sent, recipient = deliver(services, {**snap, "chat_facts": None}, tried,
                                                  now, after="chat", why=[f"chat: {reason}"],
                                                  only=goes)  # fmt: skip
        except PERMANENT_ERRORS as exc:
            _close(services, snap, tried, TimerState.SKIPPED, skip=type(exc).__name__, now=now)
            return "skipped"
        except Exception:
            _close(services, snap, tried, None, now=now)
            raise
        chats = {attempt: chat for attempt, chat, _ in [own, *snap["also_check"]]}
        # VK's "user has not allowed messages": the chat is refused until the client writes
        refused = [{"chat_id": chats[a], "refused": "vk_901"}
                   for a, (st, why) in marks.items() if st == delivery.FAILED and "901" in why]  # fmt: skip
        _close(services, snap, tried, TimerState.FIRED, sent=sent, recipient=recipient, now=now,
               marks=[(a, st, why) for a, (st, why) in marks.items() if st], seen=refused)  # fmt: skip
    if isinstance(goes, dt.datetime):
        _check_again(services, snap, goes, naive_utc(now))
        return "moved"
    return "fired"


def falls_through(snap: dict[str, Any], now: dt.datetime) -> list[str] | dt.datetime:
    """Where a chat send found undelivered goes on: the channels after the chat, now — unless
    the next is client-facing and ``now`` is in the client's quiet hours: then the time it
    moves to (:func:`quiet_due`: the morning window, before the visit), or, with no time left
    before the visit, only the manager's to-do (a manager may be told at once)."""
    channels = list(snap["settings"]["appointments"]["channels"])
    rest = channels[channels.index("chat") + 1 :] if "chat" in channels else channels
    if not rest or rest[0] == "todo":
        return rest
    moved = quiet_due(now, snap["starts_at"], now, snap.get("time_zone"), snap["settings"])
    if moved is None:
        return [c for c in rest if c == "todo"]
    return rest if moved <= now else moved


def _check_again(services: Services, snap: dict[str, Any], at: dt.datetime,
                 now: dt.datetime) -> None:  # fmt: skip
    """The check, due again at ``at``: its attempt is marked failed now, so then it reads
    nothing and goes on with the channels after the chat."""
    with services.db() as session:
        row = _check_timer(session, snap, at, dict(snap["payload"]), now)
        timer = Timer(id=row.id, job_id=row.job_id, due_at=row.due_at)
    schedule_job(services, timer, now)


def prepare_delivery_check(
    services: Services, session: Session, timer: Timer, now: dt.datetime
) -> str | Send:
    """The delivery check policy: :func:`claim_delivery_check`, then :func:`check_delivery`."""
    claimed = claim_delivery_check(services, session, timer, now)
    if isinstance(claimed, str):
        return claimed
    return lambda: check_delivery(services, claimed)


def claim_delivery_check(
    services: Services, session: Session, timer: Timer, now: dt.datetime
) -> str | dict[str, Any]:
    """A delivery check claimed like a reminder (never after the visit), with its attempt's
    state and the portal's other sends waiting: what :func:`check_delivery` reads."""
    claimed = claim_appointment_timer(services, session, timer, now)
    if isinstance(claimed, str):
        return claimed
    attempt = session.get(ReminderAttempt, int(claimed["payload"].get("attempt_id") or 0))
    claimed["attempt_state"] = attempt.state if attempt is not None else delivery.UNKNOWN
    claimed["attempt_error"] = attempt.error if attempt is not None else ""
    claimed["also_check"] = (
        delivery.waiting_checks(session, claimed["portal_id"], attempt.id)
        if attempt is not None and attempt.state == delivery.ACCEPTED
        else []
    )
    return claimed


def prepare_reminder(
    services: Services, session: Session, timer: Timer, now: dt.datetime
) -> str | Send:
    """The appointment reminder policy (:mod:`b24app.timers.registry`): checked and claimed
    in the job's first transaction, delivered after it."""
    claimed = claim_appointment_timer(services, session, timer, now)
    if isinstance(claimed, str):
        return claimed
    client = Contact(contact_id=claimed["contact_id"], chat_id=claimed["chat_id"])
    if not may_message(session, claimed["portal_id"], client, "service"):
        return skip(timer, "opted_out")  # «СТОП» (b24app/consent/policy.py)
    return lambda: send_appointment_reminder(services, claimed)


def skip_legacy_reminder(
    services: Services, session: Session, timer: Timer, now: dt.datetime
) -> str:
    return skip(timer, "legacy_reminder")


def cancel_legacy_reminders(services: Services, portal_id: int, lead_id: int) -> int:
    """Cancel the journey's pending manager-only reminders of earlier versions."""
    return cancel_where(
        services,
        Timer.portal_id == portal_id,
        Timer.journey_key == lead_id,
        Timer.policy == LEGACY_REMINDER_POLICY,
    )


register(prepare_reminder, APPOINTMENT_POLICY)
register(prepare_delivery_check, CHECK_POLICY)
register(skip_legacy_reminder, LEGACY_REMINDER_POLICY)
