"""The SLA policies on the timer engine: a due level reminds the responsible manager
(``remind``) or escalates to the owner (``escalate``), for ``first_reply``, ``callback``,
``confirmation`` and every ladder a robot starts under a name of its own.

Registered with :mod:`b24app.timers.registry` on import; sent through
:func:`b24app.timers.fire.send_claimed` (claim → send → mark, each REST step once). Every
notification carries a ``TAG`` unique to journey + policy + level: Bitrix24 replaces an
older notification with the same TAG instead of showing two, which covers the one
at-least-once window of the engine.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from b24app import logs
from b24app import metrics
from b24app.context import Services
from b24app.leads.journeys import crm_target
from b24app.leads.journeys import journey_where
from b24app.settings import load_settings
from b24app.sla.engine import lead_handled
from b24app.sla.engine import LEVELS
from b24app.sla.engine import SLA_POLICIES
from b24app.storage.models import Journey
from b24app.storage.models import Portal
from b24app.storage.models import PortalStatus
from b24app.storage.models import Timer
from b24app.timers.fire import send_claimed
from b24app.timers.fire import skip
from b24app.timers.fire import Steps
from b24app.timers.registry import register
from b24app.timers.registry import Send
from b24app.timers.registry import UnknownPolicy

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


def prepare_sla(services: Services, session: Session, timer: Timer, now: dt.datetime) -> str | Send:
    """The SLA policy (:mod:`b24app.timers.registry`): skip a handled journey or a portal
    that is gone, else snapshot what the send needs and send it after the transaction."""
    if timer.level not in LEVELS:
        # Not a ladder's level: a timer of a policy whose module this process did not import
        # (registered for every other name, this policy must not take it for an SLA).
        raise UnknownPolicy(f"{timer.policy!r} ({timer.level!r}) is no SLA ladder")
    portal = session.get(Portal, timer.portal_id)
    lead = session.scalar(
        select(Journey).where(
            Journey.portal_id == timer.portal_id, journey_where(timer.journey_key)
        )
    )
    reason = skip_reason(timer, portal, lead)
    if reason is not None:
        return skip(timer, reason)
    assert portal is not None
    settings = load_settings(session, portal.id)
    snapshot: dict[str, Any] = {
        "timer_id": timer.id,
        "policy": timer.policy,
        "level": timer.level,
        "lead_id": timer.journey_key,
        "payload": dict(timer.payload or {}),
        "member_id": portal.member_id,
        "domain": portal.domain,
        "lang": portal.lang or "ru",
        "installer_user_id": portal.installer_user_id,
        "responsible": lead.assigned_by_id if lead is not None else None,
        # Where the journey lives now (its deal, once converted): links, comments, to-dos.
        "target": dataclasses.asdict(crm_target(lead, timer.journey_key)),
    }
    return lambda: _send(services, snapshot, settings, now)


def _send(
    services: Services, snapshot: dict[str, Any], settings: dict[str, Any], now: dt.datetime
) -> str:
    with logs.bind(member_id=snapshot["member_id"], lead_id=snapshot["lead_id"]):
        outcome = send_claimed(
            services,
            snapshot["timer_id"],
            now,
            snapshot["payload"],
            lambda steps: send_sla(services, snapshot, settings, steps),
        )
    if outcome == "fired":
        metrics.ESCALATIONS_SENT.labels(snapshot["level"]).inc()
    return outcome


def skip_reason(timer: Timer, portal: Portal | None, lead: Journey | None) -> str | None:
    """Why a due SLA timer must not send (``None``: send it)."""
    if portal is None or portal.status != PortalStatus.ACTIVE:
        return "portal_inactive"
    if lead_handled(lead, timer.policy):
        return "handled"
    return None


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


register(prepare_sla, *SLA_POLICIES, others=True)
