"""The ``assistant`` queue: one job per client message (or per "bot joined" event).

Job id ``asst-<member_id>-<chat>-<message id>`` with RQ's ``unique=True``: a delivery that
comes twice while its job waits is enqueued once, and a later repeat finds its turn already
recorded (unique per dialog and message id) and sends nothing. Nothing slow shares the queue,
so a worker listening on it first answers within the 3 s target.

The job carries ids only (portal, chat, message): the client's text and name wait in the chat's
waiting list below, which expires after ``WAITING_TTL``, so a failed job kept for
``FAILURE_TTL`` holds no phone numbers or health words (issue 19).

Order: two quick messages of one chat are two jobs that two workers may start together, and
either may take the chat's lock first. So every message also waits in a small per-chat list
(Redis, by message id; Bitrix24's ids grow within a chat): the job holding the lock answers the
chat's earlier waiting messages first, and their own jobs later find them answered.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from dataclasses import dataclass

from rq import get_current_job
from rq import Retry
from rq.exceptions import DuplicateJobError

from b24app import context
from b24app.context import Services

QUEUE = "assistant"
RETRY = Retry(max=2, interval=[1, 5])
FAILURE_TTL = 7 * 86400
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class Turn:
    """One bot event, reduced to primitives (what the job needs and nothing else)."""

    member_id: str
    bot_id: int
    chat_id: str
    dialog_id: str
    message_id: int  # 0: the bot joined the chat
    text: str
    user_id: int
    user_name: str
    entity_id: str  # <connector>|<line>|<connector chat>|<connector user>
    entity_data2: str  # LEAD|id|COMPANY|id|CONTACT|id|DEAL|id
    received_at: float  # when the event reached us (epoch seconds)


def turn_job_id(turn: Turn) -> str:
    suffix = str(turn.message_id) if turn.message_id else "join"
    return _UNSAFE.sub("_", f"asst-{turn.member_id}-{turn.chat_id}-{suffix}")


WAITING_TTL = 3600  # a chat's waiting list outlives any job of it (retries included)


def _waiting_keys(member_id: str, chat_id: str) -> tuple[str, str]:
    base = f"b24app:asst:waiting:{member_id}:{chat_id}"
    return base + ":order", base + ":turns"


def _waiting_turn(services: Services, member_id: str, chat_id: str, message_id: int) -> Turn | None:
    """The waiting message ``message_id`` of a chat; None when it was answered (or expired)."""
    _order, turns = _waiting_keys(member_id, chat_id)
    raw = services.redis.hget(turns, str(message_id))
    if raw is None:
        return None
    try:
        return Turn(**json.loads(raw))
    except (TypeError, ValueError):
        return None  # written by another version


def waiting_before(services: Services, turn: Turn) -> list[Turn]:
    """The chat's messages still waiting that came before ``turn``, oldest first."""
    order, turns = _waiting_keys(turn.member_id, turn.chat_id)
    ids = [str(m.decode() if isinstance(m, bytes) else m)
           for m in services.redis.zrangebyscore(order, "-inf", f"({turn.message_id}")]  # fmt: skip
    if not ids:
        return []
    found = []
    for raw in services.redis.hmget(turns, ids):
        if raw is None:
            continue
        try:
            found.append(Turn(**json.loads(raw)))
        except (TypeError, ValueError):
            continue  # written by another version: its own job answers it
    return found


def answered(services: Services, turn: Turn) -> None:
    """``turn`` no longer waits (answered, or found answered)."""
    order, turns = _waiting_keys(turn.member_id, turn.chat_id)
    member = str(turn.message_id)
    pipe = services.redis.pipeline(transaction=False)
    pipe.zrem(order, member)
    pipe.hdel(turns, member)
    pipe.execute()


def enqueue_turn(services: Services, turn: Turn) -> bool:
    """Queue the answer to one message; False if the same delivery is already queued."""
    order, turns = _waiting_keys(turn.member_id, turn.chat_id)
    member = str(turn.message_id)
    pipe = services.redis.pipeline(transaction=False)
    pipe.zadd(order, {member: turn.message_id})
    pipe.hset(turns, member, json.dumps(asdict(turn), ensure_ascii=False))
    pipe.expire(order, WAITING_TTL)
    pipe.expire(turns, WAITING_TTL)
    pipe.execute()
    try:
        services.queue(QUEUE).enqueue(
            answer_turn,
            member_id=turn.member_id,
            chat_id=turn.chat_id,
            message_id=turn.message_id,
            job_id=turn_job_id(turn),
            unique=True,
            result_ttl=0,
            failure_ttl=FAILURE_TTL,
            retry=RETRY,
        )
    except DuplicateJobError:
        return False
    return True


def answer_turn(member_id: str, chat_id: str, message_id: int) -> str:
    """RQ job: show typing, understand, answer, write to the CRM, hand off when needed.

    The message is read from the chat's waiting list; gone means an earlier job of the chat
    answered it under the chat's lock (or it waited longer than ``WAITING_TTL``)."""
    from b24app.assistant.service import process_turn

    services = context.current()
    turn = _waiting_turn(services, member_id, chat_id, message_id)
    if turn is None:
        return "answered_already"
    try:
        return process_turn(services, turn)
    except Exception:
        job = get_current_job()
        if job is None or not job.retries_left:
            # its last try failed: the chat's later messages no longer answer it first
            answered(services, turn)
        raise


def release_hold(member_id: str, dialog_pk: int, booked_at: str) -> str:
    """RQ job (``timers``, scheduled at the pre-booking): an unconfirmed pre-booking expires,
    see :mod:`b24app.assistant.holds`."""
    from b24app.assistant.holds import expire

    return expire(context.current(), member_id, dialog_pk, booked_at)


def enqueue_tagging(services: Services, portal_id: int, lead_id: int, channel: str) -> None:
    """Tag the dialog's lead as an AI-lead, on the background ``events`` queue (once)."""
    try:
        services.queue("events").enqueue(
            tag_lead, portal_id, lead_id, channel,
            job_id=f"asst-tag-{portal_id}-{lead_id}", unique=True, result_ttl=0,
            failure_ttl=FAILURE_TTL, retry=Retry(max=3, interval=[5, 30, 120]),
        )  # fmt: skip
    except DuplicateJobError:
        pass


def tag_lead(portal_id: int, lead_id: int, channel: str) -> bool:
    """RQ job: the AI-lead field and timeline comment (idempotent: once per lead)."""
    from b24app.leads.tagging import tag_ai_lead

    return tag_ai_lead(context.current(), portal_id, lead_id, channel,
                       note="ИИ-ассистент / AI assistant")  # fmt: skip
