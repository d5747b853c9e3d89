"""Handing a dialog to a person, and the lead's first-reply SLA around it.

While the assistant holds the chat, the lead's first-reply clock is held (its timer rows are
cancelled, so a lead event cannot restart them from the lead's creation); at the hand-off it
starts from that moment through the SLA engine's public API (``start_timer`` revives the held
rows). If no operator answers, the engine reminds and escalates as for any lead.

The hand-off itself (one batch): the summary paragraph posted in the chat as a system message
of the bot (for the operator), ``imopenlines.bot.session.operator`` (to a free operator) or
``imopenlines.bot.session.transfer`` with ``QUEUE_ID`` (the line's queue), and the summary as a
timeline comment on the lead.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from b24app.assistant.dialog import DialogState
from b24app.assistant.dialog import Script
from b24app.assistant.dialog import summary
from b24app.assistant.turns import Turn
from b24app.bitrix.errors import BitrixError
from b24app.context import Services
from b24app.sla import engine
from b24app.storage.models import AssistantDialog
from b24app.storage.models import Timer
from b24app.storage.models import TimerState
from b24app.storage.models import utc_now
from b24app.timers.engine import new_timer

log = logging.getLogger(__name__)

POLICY = "first_reply"
LEVELS = ("remind", "escalate")


def hold_first_reply(services: Services, portal_id: int, lead_id: int) -> None:
    """Stop the lead's first-reply clock while the assistant talks (idempotent)."""
    engine.stop_timers(services, portal_id, lead_id, POLICY)
    now = utc_now()
    with services.db() as session:
        have = set(
            session.scalars(
                select(Timer.level).where(
                    Timer.portal_id == portal_id,
                    Timer.journey_key == lead_id,
                    Timer.policy == POLICY,
                )
            )
        )
        for level in LEVELS:
            if level not in have:
                session.add(
                    new_timer(
                        portal_id, lead_id, POLICY, level, now, now, state=TimerState.CANCELLED
                    )  # fmt: skip
                )


def session_handoff_call(chat_id: str, assistant: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``imopenlines.bot.session.operator`` or a transfer to the configured line's queue."""
    if assistant.get("handoff") == "queue" and assistant.get("queue_id"):
        return "imopenlines.bot.session.transfer", {
            "CHAT_ID": chat_id,
            "QUEUE_ID": int(assistant["queue_id"]),
            "LEAVE": "Y",
        }
    return "imopenlines.bot.session.operator", {"CHAT_ID": chat_id}


@dataclass(frozen=True)
class HandoffPlan:
    """The hand-off's commands (summary, session call, timeline comment) and what
    :func:`finish_handoff` needs once they ran."""

    writes: dict[str, tuple[str, dict[str, Any]]]
    method: str
    lead_id: int | None
    triggered: dt.datetime
    reason: str


def plan_handoff(
    services: Services,
    turn: Turn,
    dialog_pk: int,
    state: DialogState,
    script: Script,
    assistant: dict[str, Any],
) -> HandoffPlan | None:
    """The hand-off's batch commands; None when an operator was notified already."""
    triggered = utc_now()
    with services.db() as session:
        dialog = session.get(AssistantDialog, dialog_pk)
        assert dialog is not None
        if dialog.operator_notified_at is not None:
            return None
        dialog.handoff_at = dialog.handoff_at or triggered
        lead_id = dialog.lead_id
    text = summary(state, script, turn.user_name)
    method, params = session_handoff_call(turn.chat_id, assistant)
    writes: dict[str, tuple[str, dict[str, Any]]] = {
        "handoff_summary": (
            "imbot.v2.Chat.Message.send",
            {
                "botId": turn.bot_id,
                "dialogId": turn.dialog_id,
                "fields": {"message": text, "system": True},
            },
        ),  # fmt: skip
        "handoff_session": (method, params),
    }
    if lead_id:
        writes["handoff_comment"] = (
            "crm.timeline.comment.add",
            {"fields": {"ENTITY_ID": lead_id, "ENTITY_TYPE": "lead", "COMMENT": text}},
        )
    return HandoffPlan(writes, method, lead_id, triggered, state.handoff_reason or "")


def finish_handoff(services: Services, result: Any, plan: HandoffPlan, dialog_pk: int,
                   portal_id: int) -> None:  # fmt: skip
    """After the batch that carried :attr:`HandoffPlan.writes`: the operator is notified
    and the lead's first-reply SLA starts from the trigger.

    :raise BitrixError: the session call was refused (the job's retry hands off again).
    """
    session_error = result.errors.get("handoff_session")
    if session_error and str(session_error.get("error")) != "WRONG_CHAT":
        # WRONG_CHAT "Operator is not a bot": a person already holds the dialog — done.
        raise BitrixError(
            str(session_error.get("error") or "HANDOFF_FAILED"),
            str(session_error.get("error_description") or ""),
            method=plan.method,
        )
    with services.db() as session:
        dialog = session.get(AssistantDialog, dialog_pk)
        assert dialog is not None
        dialog.operator_notified_at = utc_now()
    if plan.lead_id:
        engine.start_timer(services, portal_id, plan.lead_id, POLICY, now=plan.triggered)
    log.info("dialog handed off (%s)", plan.reason)


def hand_off(
    services: Services,
    client: Any,
    turn: Turn,
    dialog_pk: int,
    portal_id: int,
    state: DialogState,
    script: Script,
    assistant: dict[str, Any],
) -> bool:
    """Post the summary, pass the session to a person, start the first-reply SLA (one
    batch of its own: a retried hand-off; a turn's hand-off rides with its answer)."""
    plan = plan_handoff(services, turn, dialog_pk, state, script, assistant)
    if plan is None:
        return False
    finish_handoff(services, client.batch(plan.writes, halt=False), plan, dialog_pk, portal_id)
    return True
