"""The RQ job a timer wakes: :func:`fire_timer` sends the SLA reminder/escalation or the
appointment reminder, once per timer.

Delivery guarantee — claim, send, mark:

1. **Re-read** the timer, the portal and the lead's lifecycle record. Not pending any more,
   lead handled (replied, confirmed, closed, deleted), portal uninstalled or waiting for
   re-authorisation → the row becomes ``skipped`` and nothing is sent.
2. **Claim**: a conditional ``UPDATE … SET claimed_at = now WHERE state = 'pending' AND
   fired_at IS NULL AND (claimed_at IS NULL OR claimed_at < now - STALE_CLAIM)``, committed
   on its own. Of two jobs for the same timer (two workers, an RQ retry, a job re-created by
   reconciliation) exactly one gets the row; the other returns ``busy`` and sends nothing.
   (An appointment reminder claims in the transaction of step 1 and records steps 3–4 in one
   more: :mod:`b24app.appointments.remind`.)
3. **Send** the REST calls. Each completed step (``notify``, ``task``, ``comment``, ``todo``)
   is written to the row's ``payload["done"]`` at once, so a retry resumes after the last
   step that went through instead of repeating it.
4. **Mark** ``fired`` with ``fired_at`` and ``recipient_user_id``.

Failures: a transient error (rate limit, 5xx, network, expired token) clears the claim and
re-raises, so RQ's ``Retry`` (set at enqueue) runs the job again — a failed send never counts
as sent. After the last retry the failed job expires with its ``failure_ttl`` and
reconciliation schedules the still-pending timer again. A permanent error (access denied,
portal gone, token revoked, lead not found) marks the timer ``skipped`` with the reason:
retrying cannot help. If the worker dies between claim and mark (SIGKILL, OOM, host loss), the
claim goes stale after :data:`STALE_CLAIM`; reconciliation (every minute) enqueues the timer
again and the new job re-claims it.

So sending is exactly once in every case but one: a crash after a REST call succeeded and
before its step was recorded re-sends that one call (at-least-once there). That window is a
few milliseconds; for the notification it is harmless besides, because every notification
carries a ``TAG`` unique to lead + policy + level and Bitrix24 replaces an older notification
with the same TAG instead of showing two.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import update

from b24app import context
from b24app import logs
from b24app import metrics
from b24app.bitrix.budget import urgent_rest
from b24app.bitrix.errors import AccessDenied
from b24app.bitrix.errors import AuthRevoked
from b24app.bitrix.errors import NotFound
from b24app.bitrix.errors import PortalUnavailable
from b24app.context import Services
from b24app.leads.journeys import crm_target
from b24app.leads.journeys import journey_where
from b24app.settings import load_settings
from b24app.sla.engine import lead_handled
from b24app.sla.engine import REMINDER_POLICY
from b24app.storage.db import rows_affected
from b24app.storage.models import Lead
from b24app.storage.models import Portal
from b24app.storage.models import PortalStatus
from b24app.storage.models import Timer
from b24app.storage.models import TimerState
from b24app.storage.models import utc_now

log = logging.getLogger(__name__)

# A claim this old without fired_at is a worker that died mid-send: reconciliation retries it.
# Far above one send's worst case (a few REST calls with the client's own retries).
STALE_CLAIM = dt.timedelta(minutes=5)
# Retrying these cannot help: the timer is marked skipped with the error's name.
PERMANENT_ERRORS = (AccessDenied, AuthRevoked, NotFound, PortalUnavailable)

POLICY_NAMES = {
    "first_reply": ("первый ответ", "first reply"),
    "callback": ("перезвон", "call-back"),
    "confirmation": ("подтверждение записи", "booking confirmation"),
}


def _t(lang: str, ru: str, en: str) -> str:
    return ru if lang == "ru" else en


def lead_link(domain: str, lead_id: int, text: str, entity: str = "lead") -> str:
    return f"[URL=https://{domain}/crm/{entity}/details/{lead_id}/]{text}[/URL]"


def target_of(snap: dict[str, Any]) -> dict[str, Any]:
    """The snapshot's CRM target (``entity_type_id``, ``entity_id``, ``entity_type``)."""
    key = int(snap["lead_id"])
    default = dataclasses.asdict(crm_target(None, key))
    return dict(snap.get("target") or default)


def entity_title(lang: str, target: dict[str, Any]) -> str:
    number = target["entity_id"]
    if target["entity_type"] == "deal":
        return _t(lang, f"Сделка #{number}", f"Deal #{number}")
    return _t(lang, f"Лид #{number}", f"Lead #{number}")


def claim_statement(timer_id: int, now: dt.datetime) -> Any:
    """The conditional UPDATE that claims a pending timer (one row affected: ours)."""
    return (
        update(Timer)
        .where(
            Timer.id == timer_id,
            Timer.state == TimerState.PENDING,
            Timer.fired_at.is_(None),
            or_(
                Timer.claimed_at.is_(None),
                Timer.claimed_at < now - STALE_CLAIM,
            ),
        )
        .values(claimed_at=now)
        .execution_options(synchronize_session=False)
    )


def claim(services: Services, timer_id: int, now: dt.datetime) -> bool:
    """Claim a pending timer for sending; False if someone else holds (or held) it."""
    with services.db() as session:
        return bool(rows_affected(session.execute(claim_statement(timer_id, now))))


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

    See the module docstring for the claim → send → mark sequence and its guarantees.
    """
    services = context.current()
    now = utc_now()
    with services.db() as session:
        timer = session.get(Timer, timer_id)
        if timer is None or timer.state != TimerState.PENDING:
            return "skipped"
        claimed: str | dict[str, Any] | None = None
        if timer.policy == "appointment":  # a client appointment reminder (b24app.appointments)
            from b24app.appointments.remind import claim_appointment_timer

            # checked, claimed and read in this one transaction
            claimed = claim_appointment_timer(services, session, timer, now)
    if isinstance(claimed, str):
        return claimed
    if claimed is not None:
        from b24app.appointments.remind import send_appointment_reminder

        return send_appointment_reminder(services, claimed)
    with services.db() as session:
        timer = session.get(Timer, timer_id)
        if timer is None or timer.state != TimerState.PENDING:
            return "skipped"
        portal = session.get(Portal, timer.portal_id)
        lead = session.scalar(
            select(Lead).where(Lead.portal_id == timer.portal_id, journey_where(timer.lead_id))
        )
        reason = skip_reason(timer, portal, lead, now)
        if reason is not None:
            timer.state = TimerState.SKIPPED
            timer.payload = {**(timer.payload or {}), "skip_reason": reason}
            return "skipped"
        assert portal is not None
        settings = load_settings(session, portal.id)
        snapshot: dict[str, Any] = {
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
            # Where the journey lives now (its deal, once converted): links, comments, to-dos.
            "target": dataclasses.asdict(crm_target(lead, timer.lead_id)),
        }

    def send(steps: Steps) -> int:
        if snapshot["policy"] == REMINDER_POLICY:
            from b24app.sla.reminders import send_reminder

            return send_reminder(services, snapshot, settings, steps)
        return send_sla(services, snapshot, settings, steps)

    with logs.bind(member_id=snapshot["member_id"], lead_id=snapshot["lead_id"]):
        outcome = send_claimed(services, timer_id, now, snapshot["payload"], send)
    if outcome == "fired":
        metrics.ESCALATIONS_SENT.labels(snapshot["level"]).inc()
    return outcome


def send_claimed(
    services: Services,
    timer_id: int,
    now: dt.datetime,
    payload: dict[str, Any],
    send: Callable[[Steps], int],
) -> str:
    """Claim the timer, ``send(steps)`` (returns the recipient), mark it: ``fired``,
    ``skipped`` (a permanent error) or ``busy`` (someone else holds it); a transient error
    releases the claim and is raised for the job's retry (see the module docstring)."""
    if not claim(services, timer_id, now):
        return "busy"
    steps = Steps(services, timer_id, payload)
    # A due reminder/escalation goes before bulk reads in the portal's bucket (issue 14).
    try:
        with urgent_rest():
            recipient = send(steps)
    except PERMANENT_ERRORS as exc:
        log.warning("timer %s not sent: %s", timer_id, type(exc).__name__)
        _finish(services, timer_id, TimerState.SKIPPED, skip=type(exc).__name__)
        return "skipped"
    except Exception:
        _release(services, timer_id)
        raise
    _finish(services, timer_id, TimerState.FIRED, recipient=recipient)
    return "fired"


def skip_reason(
    timer: Timer, portal: Portal | None, lead: Lead | None, now: dt.datetime
) -> str | None:
    """Why a due timer must not send (``None``: send it)."""
    if portal is None or portal.status != PortalStatus.ACTIVE:
        return "portal_inactive"
    if lead_handled(lead, timer.policy):
        return "handled"
    if timer.policy == REMINDER_POLICY:
        appointment = (timer.payload or {}).get("appointment_at")
        if appointment and dt.datetime.fromisoformat(appointment) <= now:
            return "appointment_passed"  # a reminder after the visit is noise
    return None


class Steps:
    """The REST steps of one send already done, persisted as they complete (resumable)."""

    def __init__(self, services: Services, timer_id: int, payload: dict[str, Any]) -> None:
        self.services = services
        self.timer_id = timer_id
        self.payload = dict(payload)
        self.done: list[str] = list(self.payload.get("done") or [])

    def __contains__(self, step: str) -> bool:
        return step in self.done

    def mark(self, step: str) -> None:
        """Record ``step`` as done (its own transaction: it survives a later failure)."""
        self.done.append(step)
        self.payload["done"] = list(self.done)
        with self.services.db() as session:
            session.execute(
                update(Timer)
                .where(Timer.id == self.timer_id)
                .values(payload=dict(self.payload))
                .execution_options(synchronize_session=False)
            )


def _finish(
    services: Services,
    timer_id: int,
    state: str,
    *,
    recipient: int | None = None,
    skip: str | None = None,
) -> None:
    with services.db() as session:
        timer = session.get(Timer, timer_id)
        if timer is None:
            return
        timer.state = state
        if state == TimerState.FIRED:
            timer.fired_at = utc_now()
            timer.recipient_user_id = recipient
        if skip is not None:
            timer.payload = {**(timer.payload or {}), "skip_reason": skip}


def _responsible(services: Services, snap: dict[str, Any]) -> int | None:
    if snap["responsible"]:
        return int(snap["responsible"])
    target = target_of(snap)
    item = services.bitrix(snap["member_id"]).call(
        "crm.item.get", {"entityTypeId": target["entity_type_id"], "id": target["entity_id"]}
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


def send_sla(
    services: Services, snap: dict[str, Any], settings: dict[str, Any], steps: Steps
) -> int:
    """Send one SLA level (each REST step once, see :class:`Steps`); returns the recipient."""
    client = services.bitrix(snap["member_id"])
    lang, lead_id, policy, level = snap["lang"], snap["lead_id"], snap["policy"], snap["level"]
    name_ru, name_en = POLICY_NAMES.get(policy, (policy, policy))
    target = target_of(snap)
    link = lead_link(
        snap["domain"], target["entity_id"], entity_title(lang, target), target["entity_type"]
    )
    manager = _responsible(services, snap)
    # Unique per lead + policy + level: Bitrix24 replaces a notification with the same TAG.
    tag = f"b24app|sla|{lead_id}|{policy}|{level}"
    if level == "remind":
        recipient = manager or int(snap["installer_user_id"] or 1)
        message = _t(
            lang,
            f"b24app: {link} ждёт обработки — срок SLA «{name_ru}» истёк.",
            f"b24app: {link} is waiting — the “{name_en}” SLA is due.",
        )
        if "notify" not in steps:
            client.call(
                "im.notify.system.add", {"USER_ID": recipient, "MESSAGE": message, "TAG": tag}
            )
            steps.mark("notify")
        return recipient
    recipient = escalation_recipient(services, snap, settings, manager)
    who = f"#{manager}" if manager else "—"
    message = _t(
        lang,
        f"b24app: эскалация — {link} не обработан, SLA «{name_ru}» нарушен (ответственный {who}).",
        f"b24app: escalation — {link} is still not handled, the “{name_en}” SLA is breached "
        f"(responsible {who}).",
    )
    if "notify" not in steps:
        client.call("im.notify.system.add", {"USER_ID": recipient, "MESSAGE": message, "TAG": tag})
        steps.mark("notify")
    sla = settings.get("sla") or {}
    if sla.get("create_task") and "task" not in steps:
        client.call(
            "tasks.task.add",
            {
                "fields": {
                    "TITLE": _t(
                        lang,
                        f"Обработать: {entity_title(lang, target)} (SLA)",
                        f"Handle {entity_title(lang, target)} (SLA)",
                    ),
                    "RESPONSIBLE_ID": manager or recipient,
                    "UF_CRM_TASK": [
                        ("L_" if target["entity_type_id"] == 1 else "D_") + str(target["entity_id"])
                    ],
                }
            },
        )
        steps.mark("task")
    if sla.get("timeline_comment") and "comment" not in steps:
        client.call(
            "crm.timeline.comment.add",
            {
                "fields": {
                    "ENTITY_ID": target["entity_id"],
                    "ENTITY_TYPE": target["entity_type"],
                    "COMMENT": _t(
                        lang,
                        f"b24app: SLA «{name_ru}» нарушен, руководитель #{recipient} уведомлён.",
                        f"b24app: the “{name_en}” SLA was breached, owner #{recipient} notified.",
                    ),
                }
            },
        )
        steps.mark("comment")
    return recipient
