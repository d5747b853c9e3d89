"""Answers of one portal's chats that wait for its bucket share one ``batch`` request: end to
end through two real ``b24app worker`` processes against the emulator with its limiter on
(2 req/s, burst 50), the app's and the portal's buckets drained first. Every step is awaited
by condition (the recorded turns, the bot's messages), never by time."""

from __future__ import annotations

from collections.abc import Callable

from rq.registry import StartedJobRegistry
from sqlalchemy import select

from b24app.assistant import outbox
from b24app.context import Services
from b24app.storage.models import AssistantDialog
from b24app.storage.models import AssistantTurn
from devportal import DevPortal
from devportal.portal import Portal as EmuPortal
from tests.assistant.conftest import enable_assistant
from tests.assistant.test_worker import start_chat_n
from tests.assistant.test_worker import turns
from tests.assistant.test_worker import WorkerChat
from tests.plugins.worker import WorkerProcess
from tests.waiting import wait_for

CHATS = 4


def _idle(emulator: DevPortal, services: Services) -> bool:
    started = [StartedJobRegistry(queue=services.queue(q)) for q in ("assistant", "events")]
    queues = [services.queue(q) for q in ("assistant", "events")]
    return (
        emulator.wait_idle(timeout=0.05)
        and all(q.count == 0 for q in queues)
        # a dequeued job is in RQ's intermediate list before its worker registers it started
        and all(services.redis.llen(q.intermediate_queue_key) == 0 for q in queues)
        and all(r.count == 0 for r in started)
    )


def _replies_of(services: Services, chat: WorkerChat) -> list[str]:
    with services.db() as session:
        dialog_pk = session.scalar(
            select(AssistantDialog.id).where(AssistantDialog.chat_id == str(chat.chat_id))
        )
        return [
            r
            for r in session.scalars(
                select(AssistantTurn.reply)
                .where(AssistantTurn.dialog_id == dialog_pk)
                .order_by(AssistantTurn.id)
            )
        ]


def _drain_buckets(services: Services, portal: EmuPortal) -> None:
    """Another client of the portal used the whole burst (both sides agree), up to the top
    the answers may use (they are interactive)."""
    services.bitrix(portal.member_id, interactive=True).bucket.fill()
    portal.bucket.prefill(portal.bucket.burst)


def test_waiting_answers_of_many_chats_share_requests(
    emulator: DevPortal,
    installed_portal: EmuPortal,
    services: Services,
    rq_worker_factory: Callable[..., WorkerProcess],
) -> None:
    enable_assistant(services, installed_portal)
    # The workers' bucket refills at 1/s instead of 2/s: once filled (below), a slow machine
    # that takes s seconds to restart them frees s slots, not 2s, before the answers meet
    # it (the greetings fit the empty bucket's burst).
    slow = {"B24APP_REST_RATE": "1"}
    workers = [rq_worker_factory(env=slow), rq_worker_factory(env=slow)]
    chats = [start_chat_n(emulator, installed_portal, services, n + 1) for n in range(CHATS)]
    wait_for(lambda: _idle(emulator, services), what="the greetings and their tagging")
    requests_before = len(emulator.calls(portal=installed_portal, in_batch=False))
    sends_before = len(emulator.calls("imbot.v2.chat.message.send", installed_portal))

    # every answer job is queued before any runs: however slow the event delivery, the
    # answers meet a busy bucket together instead of trickling one request each
    for worker in workers:
        worker.stop()
    for chat in chats:  # two messages per chat, back to back
        chat.portal.client_writes(chat.chat_id, "маникюр")
        chat.portal.client_writes(chat.chat_id, "завтра после 18")
    assistant = services.queue("assistant")
    wait_for(lambda: assistant.count >= 2 * CHATS, what="every answer job queued")
    _drain_buckets(services, installed_portal)
    for worker in workers:
        worker.start()
    wait_for(lambda: len(turns(services)) == 3 * CHATS, what="every turn")
    wait_for(lambda: all(len(c.bot_messages()) == 3 for c in chats), what="every answer")
    wait_for(lambda: _idle(emulator, services), what="the senders to stop")

    answers = 2 * CHATS
    sends = emulator.calls("imbot.v2.chat.message.send", installed_portal)[sends_before:]
    assert len(sends) == answers  # each answer exactly once
    assert all(s.ok and s.in_batch for s in sends)
    made = emulator.calls(portal=installed_portal, in_batch=False)[requests_before:]
    carrying = [c for c in made if "message.send" in str(c.params.get("cmd")).lower()]
    assert len(carrying) <= answers // 2, f"{len(carrying)} requests for {answers} answers"
    # each turn first reads its chat back (issue 19): at most one read per message, one
    # request each (reads of different chats do not share a request yet)
    reads = [c for c in made if "session.history.get" in str(c.params.get("cmd")).lower()]
    assert len(reads) <= answers and len(made) <= len(carrying) + len(reads)
    # the chat shows its answers in the order its turns were taken (the chat's lock orders
    # the turns; an answer queued behind another of the same chat never overtakes it)
    for chat in chats:
        shown = [m["text"] for m in chat.bot_messages()]
        assert shown == _replies_of(services, chat)
        ids = [t.message_id for t in turns(services) if t.dialog_id == _pk(services, chat)]
        assert len(ids) == len(set(ids)) == 3  # the greeting and one turn per message
    assert all(t.answered_at is not None and t.total_ms > 0 for t in turns(services))
    redis = services.redis
    assert redis.llen(outbox.OUTBOX + installed_portal.member_id) == 0
    assert not any(int(v) for v in redis.hvals(outbox.CHATS + installed_portal.member_id))

    # a lone message with room in the bucket goes at once in its own request
    services.bitrix(installed_portal.member_id).bucket.reset()
    installed_portal.bucket.prefill(0)
    requests_before = emulator.http_requests(installed_portal)
    batches_before = len(emulator.calls("batch", installed_portal))
    chats[0].say("+7 (912) 345-67-89")
    wait_for(lambda: len(chats[0].bot_messages()) == 4, what="the lone answer")
    read, answer = emulator.calls("batch", installed_portal)[batches_before:]
    assert len(answer.params["cmd"]) == 1  # the answer alone
    # the read of the chat (issue 19) carries the typing: the bucket had room for it
    assert sorted(str(c).split("?")[0] for c in read.params["cmd"].values()) == [
        "imbot.v2.Chat.InputAction.notify", "imopenlines.session.history.get"]  # fmt: skip
    assert emulator.http_requests(installed_portal) - requests_before == 2  # read + answer


def _pk(services: Services, chat: WorkerChat) -> int:
    with services.db() as session:
        pk = session.scalar(
            select(AssistantDialog.id).where(AssistantDialog.chat_id == str(chat.chat_id))
        )
        assert pk is not None
        return pk


def test_a_sender_that_died_is_replaced_by_the_sweep(
    emulator: DevPortal, installed_portal: EmuPortal, services: Services
) -> None:
    """Answers left in the outbox with no sender are sent by the cron sweep's job."""
    member = installed_portal.member_id
    outbox.push(services, member, outbox.Entry("chat1", 0, 1, 0.0, {"send": [
        "imbot.v2.Chat.Message.send",
        {"botId": 1, "dialogId": "chat1", "fields": {"message": "x"}}]}))  # fmt: skip
    services.redis.set(outbox.SENDER + member, "dead", px=50)  # a sender's lock, expiring
    assert outbox.flush(services, member) is None  # the (dead) sender holds the portal
    wait_for(lambda: not services.redis.exists(outbox.SENDER + member), what="the lock to expire")
    assert outbox.flush(services, member) == 1
    assert services.redis.llen(outbox.OUTBOX + member) == 0
    assert outbox.chat_waiting(services, member, "chat1") == 0
