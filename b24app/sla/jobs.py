"""The RQ job a timer wakes: :func:`fire_timer` sends the SLA reminder/escalation or the
appointment reminder, at most once per timer.

At-most-once: the job claims the row (``claimed_at``) in its own transaction before sending,
so a duplicate job (re-created by reconciliation, retried by RQ) finds it claimed or fired and
does nothing. A claim older than :data:`STALE_CLAIM` without ``fired_at`` is a worker that
died between claim and send; it may be claimed again. A send error clears the claim and
re-raises, so RQ's Retry runs the job again.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import and_
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import update

from b24app import context
from b24app import logs
from b24app import metrics
from b24app.context import Services
from b24app.settings import load_settings
from b24app.sla.engine import lead_handled
from b24app.sla.engine import REMINDER_POLICY
from b24app.storage.models import Lead
from b24app.storage.models import Portal
from b24app.storage.models import PortalStatus
from b24app.storage.models import Timer
from b24app.storage.models import TimerState
from b24app.storage.models import utc_now

log = logging.getLogger(__name__)

STALE_CLAIM = dt.timedelta(minutes=5)

POLICY_NAMES = {
    "first_reply": ("первый ответ", "first reply"),
    "callback": ("перезвон", "call-back"),
    "confirmation": ("подтверждение записи", "booking confirmation"),
}


def _t(lang: str, ru: str, en: str) -> str:
    return ru if lang == "ru" else en


def lead_link(domain: str, lead_id: int, text: str) -> str:
    return f"[URL=https://{domain}/crm/lead/details/{lead_id}/]{text}[/URL]"


def claim(services: Services, timer_id: int, now: dt.datetime) -> bool:
    """Claim a pending timer for sending; False if someone else holds (or held) it."""
    with services.db() as session:
        result = session.execute(
            update(Timer)
            .where(
                Timer.id == timer_id,
                Timer.state == TimerState.PENDING,
                Timer.fired_at.is_(None),
                or_(
                    Timer.claimed_at.is_(None),
                    and_(Timer.claimed_at < now - STALE_CLAIM),
                ),
            )
            .values(claimed_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)


def _release(services: Services, timer_id: int) -> None:
    with services.db() as session:
        session.execute(
            update(Timer)
            .where(Timer.id == timer_id, Timer.fired_at.is_(None))
            .values(claimed_at=None)
            .execution_options(synchronize_session=False)
        )


def fire_timer(timer_id: int) -> str:
    """RQ job: send what timer ``timer_id`` is for; returns ``fired``, ``skipped`` or ``busy``.

    Re-reads the timer, the lead's lifecycle record and the portal first: a timer that is no
    longer pending, a handled or deleted lead, or an inactive portal sends nothing.
    """
    services = context.current()
    now = utc_now()
    with services.db() as session:
        timer = session.get(Timer, timer_id)
        if timer is None or timer.state != TimerState.PENDING:
            return "skipped"
        portal = session.get(Portal, timer.portal_id)
        lead = session.scalar(
            select(Lead).where(Lead.portal_id == timer.portal_id, Lead.lead_id == timer.lead_id)
        )
        if (
            portal is None
            or portal.status != PortalStatus.ACTIVE
            or lead_handled(lead, timer.policy)
        ):
            timer.state = TimerState.SKIPPED
            return "skipped"
        settings = load_settings(session, portal.id)
        snapshot = {
            "timer_id": timer.id,
            "policy": timer.policy,
            "level": timer.level,
            "lead_id": timer.lead_id,
            "payload": dict(timer.payload or {}),
            "member_id": portal.member_id,
            "domain": portal.domain,
            "lang": portal.lang or "ru",
            "installer_user_id": portal.installer_user_id,
            "responsible": lead.assigned_by_id if lead is not None else None,
        }
    if not claim(services, timer_id, now):
        return "busy"
    with logs.bind(member_id=snapshot["member_id"], lead_id=snapshot["lead_id"]):
        try:
            if snapshot["policy"] == REMINDER_POLICY:
                from b24app.sla.reminders import send_reminder

                recipient = send_reminder(services, snapshot, settings)
            else:
                recipient = send_sla(services, snapshot, settings)
        except Exception:
            _release(services, timer_id)
            raise
    with services.db() as session:
        session.execute(
            update(Timer)
            .where(Timer.id == timer_id)
            .values(state=TimerState.FIRED, fired_at=utc_now(), recipient_user_id=recipient)
            .execution_options(synchronize_session=False)
        )
    metrics.ESCALATIONS_SENT.labels(snapshot["level"]).inc()
    return "fired"


def _responsible(services: Services, snap: dict[str, Any]) -> int | None:
    if snap["responsible"]:
        return int(snap["responsible"])
    item = services.bitrix(snap["member_id"]).call(
        "crm.item.get", {"entityTypeId": 1, "id": snap["lead_id"]}
    )
    assigned = ((item or {}).get("item") or {}).get("assignedById")
    return int(assigned) if assigned else None


def escalation_recipient(
    services: Services, snap: dict[str, Any], settings: dict[str, Any], manager: int | None
) -> int:
    """The owner: the robot's ``escalate_to``, the configured owner, the head of the manager's
    first department (one ``batch``: user.get + department.get), the installer, else 1."""
    for candidate in (snap["payload"].get("escalate_to"), settings.get("owner_user_id")):
        if candidate:
            return int(candidate)
    if manager:
        result = services.bitrix(snap["member_id"]).batch(
            {
                "user": ("user.get", {"ID": manager}),
                "dept": ("department.get", {"ID": "$result[user][0][UF_DEPARTMENT][0]"}),
            }
        )
        departments = result.results.get("dept") or []
        head = departments[0].get("UF_HEAD") if departments else None
        if head and int(head) != manager:
            return int(head)
    return int(snap["installer_user_id"] or 1)


def send_sla(services: Services, snap: dict[str, Any], settings: dict[str, Any]) -> int:
    """Send one SLA level; returns the recipient's user id."""
    client = services.bitrix(snap["member_id"])
    lang, lead_id, policy, level = snap["lang"], snap["lead_id"], snap["policy"], snap["level"]
    name_ru, name_en = POLICY_NAMES.get(policy, (policy, policy))
    link = lead_link(snap["domain"], lead_id, _t(lang, f"Лид #{lead_id}", f"Lead #{lead_id}"))
    manager = _responsible(services, snap)
    tag = f"b24app|sla|{lead_id}|{policy}|{level}"
    if level == "remind":
        recipient = manager or int(snap["installer_user_id"] or 1)
        message = _t(
            lang,
            f"b24app: {link} ждёт обработки — срок SLA «{name_ru}» истёк.",
            f"b24app: {link} is waiting — the “{name_en}” SLA is due.",
        )
        client.call("im.notify.system.add", {"USER_ID": recipient, "MESSAGE": message, "TAG": tag})
        return recipient
    recipient = escalation_recipient(services, snap, settings, manager)
    who = f"#{manager}" if manager else "—"
    message = _t(
        lang,
        f"b24app: эскалация — {link} не обработан, SLA «{name_ru}» нарушен (ответственный {who}).",
        f"b24app: escalation — {link} is still not handled, the “{name_en}” SLA is breached "
        f"(responsible {who}).",
    )
    client.call("im.notify.system.add", {"USER_ID": recipient, "MESSAGE": message, "TAG": tag})
    sla = settings.get("sla") or {}
    if sla.get("create_task"):
        client.call(
            "tasks.task.add",
            {
                "fields": {
                    "TITLE": _t(
                        lang, f"Обработать лид #{lead_id} (SLA)", f"Handle lead #{lead_id} (SLA)"
                    ),
                    "RESPONSIBLE_ID": manager or recipient,
                    "UF_CRM_TASK": [f"L_{lead_id}"],
                }
            },
        )
    if sla.get("timeline_comment"):
        client.call(
            "crm.timeline.comment.add",
            {
                "fields": {
                    "ENTITY_ID": lead_id,
                    "ENTITY_TYPE": "lead",
                    "COMMENT": _t(
                        lang,
                        f"b24app: SLA «{name_ru}» нарушен, руководитель #{recipient} уведомлён.",
                        f"b24app: the “{name_en}” SLA was breached, owner #{recipient} notified.",
                    ),
                }
            },
        )
    return recipient
