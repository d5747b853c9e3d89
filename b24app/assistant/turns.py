"""A client's turn as the assistant keeps it: the ``Turn`` type, the per-chat waiting list
and the ``assistant`` queue's settings.

Below the jobs module (:mod:`b24app.assistant.jobs` enqueues and runs turns; the service, the
hand-off and the outbox only need what is here), so nothing in the domain imports a jobs
module.

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

from rq.exceptions import DuplicateJobError

from b24app.context import Services
from b24app.event_queue import retry

QUEUE = "assistant"
RETRY_INTERVALS = (1, 5)  # a turn retries soon: the client waits for its answer
FAILURE_TTL = 7 * 86400
WAITING_TTL = 3600  # a chat's waiting list outlives any job of it (retries included)
# named by its import path: the domain never imports a jobs module
TAG_JOB = "b24app.assistant.jobs.tag_lead"
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


def _waiting_keys(member_id: str, chat_id: str) -> tuple[str, str]:
    base = f"b24app:asst:waiting:{member_id}:{chat_id}"
    return base + ":order", base + ":turns"


def wait(services: Services, turn: Turn) -> None:
    """``turn`` waits in its chat's list (for ``WAITING_TTL``) until answered."""
    order, turns = _waiting_keys(turn.member_id, turn.chat_id)
    member = str(turn.message_id)
    pipe = services.redis.pipeline(transaction=False)
    pipe.zadd(order, {member: turn.message_id})
    pipe.hset(turns, member, json.dumps(asdict(turn), ensure_ascii=False))
    pipe.expire(order, WAITING_TTL)
    pipe.expire(turns, WAITING_TTL)
    pipe.execute()


def waiting_turn(services: Services, member_id: str, chat_id: str, message_id: int) -> Turn | None:
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


def enqueue_tagging(services: Services, portal_id: int, lead_id: int, channel: str) -> None:
    """Tag the dialog's lead as an AI-lead, on the background ``events`` queue (once)."""
    try:
        services.queue("events").enqueue(
            TAG_JOB, portal_id, lead_id, channel,
            job_id=f"asst-tag-{portal_id}-{lead_id}", unique=True, result_ttl=0,
            failure_ttl=FAILURE_TTL, retry=retry(),
        )  # fmt: skip
    except DuplicateJobError:
        pass
