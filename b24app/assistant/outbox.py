"""Answers that wait for the portal's bucket go out together (issue 13, item 5 "Speed").

Every answer costs one REST request (the reply and the CRM write, one ``batch``), and a portal
allows 2 requests a second. 50 busy chats on one portal send about 6 answers a second, so one
request per answer queues them behind each other for many seconds. Here answers of different
chats that wait for the same bucket share one request, the way lead events are coalesced
(:mod:`b24app.leads.coalesce`):

* **No added latency**: an answer that finds room in the bucket goes at once, alone, from its
  own job (:func:`has_room`), exactly as before.
* **When the bucket is empty** the turn's commands are appended to the portal's *outbox* (a
  Redis list) and the job tries to become the portal's *sender* (a short Redis lock). The
  sender waits for the bucket, then sends the oldest waiting answers, as many as fit in 50
  ``batch`` commands, in ONE request, and repeats until the outbox is empty. A job that finds
  a sender running returns at once: its worker goes on to compute the next answer instead of
  waiting, and that answer rides in the sender's next request.
* **Only answers nobody reads back are queued**: the reply and the CRM write. A turn whose
  later steps need results (a pre-booking's ``booking.add`` id, the release of one, a hand-off
  after the answer) keeps the direct path (:func:`process_turn` decides).
* **Order per chat**: a chat with an answer in the outbox queues its next answer behind it
  (the outbox is FIFO and a ``batch`` runs its commands in order); a direct-path turn of such
  a chat first waits for the earlier answer to leave. Turns of one chat are serialized by the
  chat's lock, so the per-chat counter is exact.
* **Exactly once**: the turn is recorded (unique per message id) before its answer is queued,
  so a repeated delivery sends nothing; an answer leaves the outbox only after its request.
  A sender that dies leaves its answers there; the lock expires and the next queued answer,
  or the cron sweep :func:`flush_waiting_portals`, sends them (at-least-once after a crash).
* **Fairness**: a sender works for at most :data:`SLICE_SECONDS`, then queues a continuation
  job, so one busy portal does not hold a worker forever.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import asdict
from dataclasses import dataclass
from typing import Any

from redis.exceptions import LockError
from sqlalchemy import select

from b24app import context
from b24app.assistant.turns import FAILURE_TTL
from b24app.assistant.turns import QUEUE
from b24app.assistant.turns import RETRY_INTERVALS
from b24app.bitrix.client import MAX_BATCH
from b24app.context import Services
from b24app.event_queue import retry
from b24app.storage.models import AssistantTurn
from b24app.storage.models import utc_now

log = logging.getLogger(__name__)

OUTBOX = "b24app:asst-outbox:"  # list of JSON entries, oldest first
CHATS = "b24app:asst-outbox-chats:"  # hash chat id → answers of the chat in the outbox
PORTALS = "b24app:asst-outbox-portals"  # member_ids with a non-empty outbox
SENDER = "b24app:lock:asst-sender:"
SENDER_TTL = 60
OUTBOX_TTL = 86400
SLICE_SECONDS = 10.0
CHAT_WAIT_SECONDS = 20.0  # a direct turn waits at most this long for its chat's queued answer

Commands = dict[str, tuple[str, dict[str, Any]]]


@dataclass(frozen=True)
class Entry:
    """One queued answer: the turn it belongs to and its batch commands."""

    chat_id: str
    dialog_pk: int
    message_id: int
    received_at: float
    commands: dict[str, list[Any]]  # local name → [method, params]


def has_room(client: Any) -> bool:
    """True when a request may go now without waiting for the bucket."""
    try:
        return float(client.bucket.level()) + 1 <= client.bucket.burst
    except Exception:  # diagnostics only: when unsure, send directly as before
        return True


def portal_waiting(services: Services, member_id: str) -> int:
    return int(services.redis.llen(OUTBOX + member_id))


def chat_waiting(services: Services, member_id: str, chat_id: str) -> int:
    return int(services.redis.hget(CHATS + member_id, chat_id) or 0)


def wait_for_chat(services: Services, member_id: str, chat_id: str) -> None:
    """Before a direct answer: let the chat's queued answers leave first (its order)."""
    deadline = time.monotonic() + CHAT_WAIT_SECONDS
    while chat_waiting(services, member_id, chat_id) > 0:
        if time.monotonic() > deadline:
            log.warning("chat %s: queued answers still waiting; answering anyway", chat_id)
            return
        if not services.redis.exists(SENDER + member_id):
            flush(services, member_id)
        time.sleep(0.05)


def push(services: Services, member_id: str, entry: Entry) -> None:
    pipe = services.redis.pipeline()
    pipe.hincrby(CHATS + member_id, entry.chat_id, 1)
    pipe.rpush(OUTBOX + member_id, json.dumps(asdict(entry)))
    pipe.expire(OUTBOX + member_id, OUTBOX_TTL)
    pipe.expire(CHATS + member_id, OUTBOX_TTL)
    pipe.sadd(PORTALS, member_id)
    pipe.execute()


FLUSH_QUEUED = "b24app:asst-flush-queued:"  # a flush job is queued (set NX: one at a time)


def send_or_schedule(services: Services, member_id: str) -> str:
    """After queuing an answer: send the outbox now if the bucket has room (its request
    carries everything waiting), else leave it to a flush job queued *behind* the answers
    being computed, so that this worker computes them instead of waiting for the bucket and
    the flush job's request carries them all. Returns ``sent`` or ``scheduled``."""
    client = services.bitrix(member_id, interactive=True)
    if has_room(client) and flush(services, member_id, may_wait=False) is not None:
        return "sent"
    schedule_flush(services, member_id)
    return "scheduled"


def schedule_flush(services: Services, member_id: str) -> None:
    if services.redis.set(FLUSH_QUEUED + member_id, "1", nx=True, ex=SENDER_TTL):
        enqueue_flush(services, member_id)


def _take(services: Services, member_id: str) -> list[Entry]:
    """The oldest entries whose commands fit in one batch (at least one)."""
    raw = services.redis.lrange(OUTBOX + member_id, 0, MAX_BATCH - 1)
    taken: list[Entry] = []
    used = 0
    for item in raw:
        data = json.loads(item)
        entry = Entry(**data)
        size = len(entry.commands)
        if taken and used + size > MAX_BATCH:
            break
        taken.append(entry)
        used += size
    return taken


def _room_or_yield(services: Services, client: Any, may_wait: bool) -> bool:
    """True once the bucket has a slot (without taking it: the entries are taken only then,
    so answers computed meanwhile ride in this request). False when the caller should give
    the worker back instead: it may not wait, or answer jobs wait in the queue (they will
    add to this request; a flush job queued behind them sends it)."""
    while not has_room(client):
        if not may_wait or services.queue(QUEUE).count > 0:
            return False
        try:
            needed = (float(client.bucket.level()) + 1 - client.bucket.burst) / client.bucket.rate
        except Exception:
            return True
        time.sleep(min(max(needed, 0.01), 0.1))
    return True


def _send_round(services: Services, member_id: str, client: Any) -> int:
    """Send one request's worth of the outbox; returns the answers sent."""
    entries = _take(services, member_id)
    if not entries:
        return 0
    commands: Commands = {}
    for i, entry in enumerate(entries):
        for name, (method, params) in entry.commands.items():
            commands[f"a{i}_{name}"] = (method, params)
    result = client.batch(commands, halt=False)
    answered_at = utc_now()
    redis = services.redis
    # only the sender (under its lock) removes from the head; pushers append at the tail
    pipe = redis.pipeline()
    pipe.ltrim(OUTBOX + member_id, len(entries), -1)
    for entry in entries:
        pipe.hincrby(CHATS + member_id, entry.chat_id, -1)
    pipe.execute()
    if result.errors:
        log.warning("queued assistant writes refused: %s", sorted(result.errors))
    _mark_answered(services, entries, answered_at, result.errors)
    return len(entries)


def _mark_answered(
    services: Services, entries: list[Entry], answered_at: dt.datetime, errors: dict[str, Any]
) -> None:
    """The turns' answer time (for the KPIs); an answer the portal refused stays unanswered."""
    with services.db() as session:
        for i, entry in enumerate(entries):
            if f"a{i}_send" in errors:
                continue
            turn = session.scalar(
                select(AssistantTurn).where(
                    AssistantTurn.dialog_id == entry.dialog_pk,
                    AssistantTurn.message_id == entry.message_id,
                )
            )
            if turn is None:
                continue
            received = dt.datetime.fromtimestamp(entry.received_at, dt.UTC).replace(tzinfo=None)
            turn.answered_at = answered_at
            turn.total_ms = max(0, int((answered_at - received).total_seconds() * 1000))


def flush(
    services: Services,
    member_id: str,
    *,
    may_wait: bool = True,
    slice_seconds: float = SLICE_SECONDS,
) -> int | None:
    """Become the portal's sender and send the outbox while it is not empty. Without room
    in the bucket the sender waits only when ``may_wait`` and no answer job is queued;
    otherwise it returns and a flush job (queued behind those answers) continues. None if
    another sender runs."""
    redis = services.redis
    sent = 0
    started = time.monotonic()
    while True:
        lock = redis.lock(SENDER + member_id, timeout=SENDER_TTL)
        if not lock.acquire(blocking=False):
            return sent or None
        handed_over = False
        try:
            client = services.bitrix(member_id, interactive=True)
            while redis.llen(OUTBOX + member_id):
                if time.monotonic() - started > slice_seconds or not _room_or_yield(
                    services, client, may_wait
                ):
                    handed_over = True
                    break
                sent += _send_round(services, member_id, client)
                lock.extend(SENDER_TTL, replace_ttl=True)
        finally:
            try:
                lock.release()
            except LockError:
                pass
        if handed_over:
            schedule_flush(services, member_id)  # now that the lock is free
            return sent
        # an answer pushed after our last look found the lock taken: look again
        if not redis.llen(OUTBOX + member_id):
            redis.srem(PORTALS, member_id)
            if redis.llen(OUTBOX + member_id):
                redis.sadd(PORTALS, member_id)
                continue
            return sent


def flush_job(member_id: str) -> int:
    """RQ job (``assistant``): send a portal's queued answers (waiting for the bucket while
    no answer job is queued)."""
    services = context.current()
    services.redis.delete(FLUSH_QUEUED + member_id)  # answers queued from now schedule anew
    return flush(services, member_id) or 0


def enqueue_flush(services: Services, member_id: str) -> None:
    services.queue(QUEUE).enqueue(
        flush_job, member_id, result_ttl=0, failure_ttl=FAILURE_TTL, retry=retry(RETRY_INTERVALS)
    )


def flush_waiting_portals() -> int:
    """Cron (every minute): a sender for every portal with queued answers and none running
    (its sender died); returns how many were started."""
    services = context.current()
    started = 0
    for raw in services.redis.smembers(PORTALS):
        member_id = raw.decode() if isinstance(raw, bytes) else str(raw)
        if not services.redis.llen(OUTBOX + member_id):
            services.redis.srem(PORTALS, member_id)
        elif not services.redis.exists(SENDER + member_id):
            services.redis.delete(FLUSH_QUEUED + member_id)  # that job may be lost
            enqueue_flush(services, member_id)
            started += 1
    return started
