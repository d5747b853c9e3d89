"""Appointment reminders for the client (24 h / 2 h before, or custom), on the timer machinery.

Each offset is a :class:`~b24app.storage.models.Timer` with policy ``reminder`` and level =
the offset (``"24h"``, ``"2h"``, ``"30m"``), due ``appointment - offset``. Scheduling again
with another appointment time moves them (the old job is removed, the row re-armed); offsets
already in the past are skipped; :func:`cancel_reminders` cancels them all.

Delivery choice: the text is rendered at send time from the portal's template
(``settings["reminders"]["templates"][template][lang]``) with ``{client_name}`` (the contact's
or the lead's name read with the appointment at creation and kept on it, never a deal's
title; deleted with the portal's data on an uninstall with ``CLEAN``),
``{service}``, ``{date}``, ``{time}`` (portal time zone) and ``{business_name}``. It is
delivered as a CRM to-do for the responsible manager (``crm.activity.todo.add`` on the lead,
deadline = the appointment) plus a timeline comment with the text. Why not an SMS/message to
the client directly: the REST API has no portal-independent "send SMS" method (``messageservice``
is for SMS *providers*), open-line sending needs an active chat session, and the dev emulator
models neither. A to-do is visible and actionable on every plan; in production the portal's
own SMS provider or open line sends the text from an automation rule on the to-do (or the
manager sends it in one click from the lead card).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from collections.abc import Callable
from typing import Any
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import select

from b24app import templating
from b24app.appointments.names import person_name
from b24app.context import Services
from b24app.settings import DEFAULTS
from b24app.sla.engine import cancel_where
from b24app.sla.engine import ceil_second
from b24app.sla.engine import job_id_for
from b24app.sla.engine import journey_where
from b24app.sla.engine import naive_utc
from b24app.sla.engine import REMINDER_POLICY
from b24app.sla.engine import remove_job
from b24app.sla.engine import schedule_job
from b24app.storage.models import Lead
from b24app.storage.models import Timer
from b24app.storage.models import TimerState

if TYPE_CHECKING:
    from b24app.sla.jobs import Steps

log = logging.getLogger(__name__)

_OFFSET = re.compile(r"^(\d{1,4})([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_offset(offset: str) -> dt.timedelta:
    """``"24h"`` → 24 hours, ``"30m"`` → 30 minutes, ``"1d"`` → 1 day."""
    match = _OFFSET.match(offset.strip())
    if not match:
        raise ValueError(f"bad reminder offset: {offset!r}")
    return dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def schedule_reminders(
    services: Services,
    portal_id: int,
    lead_id: int,
    appointment_at: dt.datetime,
    *,
    service: str,
    offsets: list[str],
    template: str = "default",
    now: dt.datetime | None = None,
) -> int:
    """(Re)schedule the client reminders of one appointment; returns how many are pending.

    ``appointment_at`` is naive UTC. Idempotent: the same call again changes nothing.
    """
    moment = naive_utc(now)
    appointment = naive_utc(appointment_at)
    wanted = {o.strip(): ceil_second(appointment - parse_offset(o)) for o in offsets}
    payload = {"service": service, "template": template, "appointment_at": appointment.isoformat()}
    to_schedule: list[Timer] = []
    to_remove: list[str] = []
    with services.db() as session:
        lead = session.scalar(
            select(Lead).where(Lead.portal_id == portal_id, journey_where(lead_id))
        )
        if lead is not None:
            lead.booking_at = appointment
        existing = {
            t.level: t
            for t in session.scalars(
                select(Timer).where(
                    Timer.portal_id == portal_id,
                    Timer.lead_id == lead_id,
                    Timer.policy == REMINDER_POLICY,
                )
            )
        }
        for level, timer in existing.items():
            if timer.state == TimerState.PENDING and (
                level not in wanted or wanted[level] <= moment
            ):
                timer.state = TimerState.CANCELLED
                to_remove.append(timer.job_id)
        for level, due in wanted.items():
            if due <= moment:
                continue
            found = existing.get(level)
            if found is not None and found.state in (TimerState.PENDING, TimerState.FIRED):
                stored = {k: (found.payload or {}).get(k) for k in payload}
                if found.due_at == due and stored == payload:
                    # Unchanged: a pending one keeps (or regains) its job, a sent one stays sent.
                    if found.state == TimerState.PENDING:
                        to_schedule.append(found)
                    continue
            row = found
            if row is None:
                row = Timer(
                    portal_id=portal_id,
                    lead_id=lead_id,
                    policy=REMINDER_POLICY,
                    level=level,
                    job_id=job_id_for(portal_id, lead_id, REMINDER_POLICY, level),
                )
                session.add(row)
            elif row.state == TimerState.PENDING:
                to_remove.append(row.job_id)  # moved: the old wake-up call goes
            row.state = TimerState.PENDING
            row.due_at = due
            row.started_at = moment
            row.payload = payload
            row.claimed_at = None
            row.fired_at = None
            row.recipient_user_id = None
            to_schedule.append(row)
        session.flush()
        jobs = [Timer(id=t.id, job_id=t.job_id, due_at=t.due_at) for t in to_schedule]
    for job_id in to_remove:
        remove_job(services, job_id)
    for job in jobs:
        schedule_job(services, job, moment)
    return len(jobs)


def cancel_reminders(services: Services, portal_id: int, lead_id: int) -> int:
    """Cancel the lead's pending appointment reminders (booking cancelled)."""
    return cancel_where(
        services,
        Timer.portal_id == portal_id,
        Timer.lead_id == lead_id,
        Timer.policy == REMINDER_POLICY,
    )


def render_reminder(
    settings: dict[str, Any],
    *,
    template: str,
    lang: str,
    client_name: str,
    service: str,
    appointment_at: dt.datetime,
    rewrite: Callable[[str, str], str] | None = None,
) -> str:
    """The reminder text in ``lang`` from the portal's template (default template as fallback).

    ``rewrite(template, lang)`` may replace the template before rendering (the optional
    model rephrasing, :mod:`b24app.reach.rephrase`, which answers the template on any doubt).
    """
    templates = (settings.get("reminders") or {}).get("templates") or {}
    chosen = templates.get(template) or templates.get("default") or {}
    text = chosen.get(lang) or chosen.get("ru") or chosen.get("en") or ""
    if rewrite is not None and text:
        text = rewrite(text, lang)
    local = appointment_at.replace(tzinfo=dt.UTC).astimezone(
        ZoneInfo(settings.get("time_zone") or "Europe/Moscow")
    )
    values = {
        "client_name": client_name,
        "service": service,
        "date": local.strftime("%d.%m.%Y"),
        "time": local.strftime("%H:%M"),
        "business_name": (settings.get("reminders") or {}).get("business_name", ""),
    }
    try:
        return templating.render(text, values).strip()
    except templating.TemplateError as exc:
        # Saved before templates were validated: the default text, and one warning per text.
        fallback = DEFAULTS["reminders"]["templates"]["default"]
        key = hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()
        if key not in _WARNED:
            _WARNED.add(key)
            log.warning(
                "reminder template %r (%s) is invalid, the default text is used: %s",
                template,
                lang,
                "; ".join(exc.problems),
            )
        default = fallback.get(lang) or fallback["ru"]
        return templating.render(default, values).strip()


_WARNED: set[str] = set()


def send_reminder(
    services: Services, snap: dict[str, Any], settings: dict[str, Any], steps: Steps
) -> int:
    """Deliver one reminder: a to-do for the responsible manager + a timeline comment (each
    step once, see :class:`b24app.sla.jobs.Steps`); returns the manager's user id."""
    client = services.bitrix(snap["member_id"])
    from b24app.sla.jobs import target_of

    target = target_of(snap)
    entity_id = target["entity_id"]
    payload = snap["payload"]
    commands: dict[str, tuple[str, dict[str, Any]]] = {
        "item": ("crm.item.get", {"entityTypeId": target["entity_type_id"], "id": entity_id})
    }
    deal = target["entity_type_id"] == 2
    if deal:  # a deal's person is its contact, read in the same request
        commands["contact"] = ("crm.contact.get", {"ID": "$result[item][item][contactId]"})
    answer = client.batch(commands)
    error = answer.error("item")
    if error is not None:
        raise error
    item = (answer.results.get("item") or {}).get("item") or {}
    # Never the deal's TITLE ("Стрижка — Telegram") as a person's name: its contact's, or none
    # (the template's greeting then).
    contact = answer.results.get("contact")
    if not deal:
        client_name = person_name(item)
    elif isinstance(contact, dict) and str(contact.get("ID")) == str(item.get("contactId")):
        client_name = person_name(contact)
    else:
        client_name = ""
    if not client_name:
        client_name = "Здравствуйте" if snap["lang"] == "ru" else "Hello"
    appointment = dt.datetime.fromisoformat(payload["appointment_at"])
    text = render_reminder(
        settings,
        template=payload.get("template") or "default",
        lang=snap["lang"],
        client_name=client_name,
        service=str(payload.get("service") or ""),
        appointment_at=appointment,
    )
    responsible = snap["responsible"] or item.get("assignedById") or snap["installer_user_id"] or 1
    title = (
        f"Напомнить клиенту о записи ({snap['level']})"
        if snap["lang"] == "ru"
        else f"Remind the client of the appointment ({snap['level']})"
    )
    if "todo" not in steps:
        client.call(
            "crm.activity.todo.add",
            {
                "ownerTypeId": target["entity_type_id"],
                "ownerId": entity_id,
                "deadline": appointment.replace(tzinfo=dt.UTC).isoformat(),
                "title": title,
                "description": text,
                "responsibleId": int(responsible),
            },
        )
        steps.mark("todo")
    if "comment" not in steps:
        client.call(
            "crm.timeline.comment.add",
            {
                "fields": {
                    "ENTITY_ID": entity_id,
                    "ENTITY_TYPE": target["entity_type"],
                    "COMMENT": text,
                }
            },
        )
        steps.mark("comment")
    return int(responsible)
