"""The ``assistant`` queue: one job per client message (or per "bot joined" event).

Job id ``asst-<member_id>-<chat>-<message id>`` with RQ's ``unique=True``: a delivery that
comes twice while its job waits is enqueued once, and a later repeat finds its turn already
recorded (unique per dialog and message id) and sends nothing. Nothing slow shares the queue,
so a worker listening on it first answers within the 3 s target.

The jobs sit on top: the turn's type, its chat's waiting list and the queue's settings are in
:mod:`b24app.assistant.turns`, which the domain below uses without importing this module.
"""

from __future__ import annotations

from rq import get_current_job

from b24app import context
from b24app.appointments.replies import route_bot_message
from b24app.assistant import holds
from b24app.assistant import service
from b24app.assistant.turns import answered
from b24app.assistant.turns import FAILURE_TTL
from b24app.assistant.turns import QUEUE
from b24app.assistant.turns import RETRY_INTERVALS
from b24app.assistant.turns import Turn
from b24app.assistant.turns import turn_job_id
from b24app.assistant.turns import wait
from b24app.assistant.turns import waiting_turn
from b24app.context import Services
from b24app.event_queue import enqueue_once
from b24app.event_queue import retry
from b24app.leads.tagging import tag_ai_lead


def enqueue_turn(services: Services, turn: Turn) -> bool:
    """Queue the answer to one message; False if the same delivery is already queued."""
    wait(services, turn)
    return enqueue_once(
        services.queue(QUEUE),
        answer_turn,
        member_id=turn.member_id,
        chat_id=turn.chat_id,
        message_id=turn.message_id,
        job_id=turn_job_id(turn),
        result_ttl=0,
        failure_ttl=FAILURE_TTL,
        retry=retry(RETRY_INTERVALS),
    )


def answer_turn(member_id: str, chat_id: str, message_id: int) -> str:
    """RQ job: show typing, understand, answer, write to the CRM, hand off when needed.

    The message is read from the chat's waiting list; gone means an earlier job of the chat
    answered it under the chat's lock (or it waited longer than ``WAITING_TTL``)."""
    services = context.current()
    turn = waiting_turn(services, member_id, chat_id, message_id)
    if turn is None:
        return "answered_already"
    # the client's answer to a reminder in this chat goes to the reply handler, not the dialog
    routed = route_bot_message(services, member_id, int(chat_id), message_id)
    if routed is not None:
        answered(services, turn)
        return f"reminder_{routed}"
    try:
        return service.process_turn(services, turn)
    except Exception:
        job = get_current_job()
        if job is None or not job.retries_left:
            # its last try failed: the chat's later messages no longer answer it first
            answered(services, turn)
        raise


def release_hold(member_id: str, dialog_pk: int, booked_at: str) -> str:
    """RQ job (``timers``, scheduled at the pre-booking): an unconfirmed pre-booking expires,
    see :mod:`b24app.assistant.holds`."""
    return holds.expire(context.current(), member_id, dialog_pk, booked_at)


def release_overdue_holds() -> int:
    """Recurring job (every minute): release the pre-bookings whose own release job Redis lost
    (see :mod:`b24app.assistant.holds`). Returns how many were released."""
    services = context.current()
    released = 0
    for member_id, dialog_pk, booked_at in holds.overdue(services):
        released += holds.expire(services, member_id, dialog_pk, booked_at) == "released"
    return released


def tag_lead(portal_id: int, lead_id: int, channel: str) -> bool:
    """RQ job (queued by :func:`b24app.assistant.turns.enqueue_tagging`): the AI-lead field
    and timeline comment (idempotent: once per lead)."""
    return tag_ai_lead(context.current(), portal_id, lead_id, channel,
                       note="ИИ-ассистент / AI assistant")  # fmt: skip
