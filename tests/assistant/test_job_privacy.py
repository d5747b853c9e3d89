"""Issue 19 item 3d: an assistant job that failed is kept for days (``FAILURE_TTL``) for the
operators to look at; it must hold ids, not the client's words (phones, health details)."""

from __future__ import annotations

from typing import Any

import pytest
from rq.job import Job
from rq.registry import FailedJobRegistry

from b24app.assistant import turns
from b24app.context import Services
from b24app.worker import InProcessAppWorker
from tests.assistant.test_views import form
from tests.assistant.test_views import post
from tests.assistant.test_views import stored_portal  # noqa: F401 (a fixture)

TEXT = "Запишите на чистку, мой номер +7 916 123-45-67, у меня диабет"
NAME = "Зинаида Крайне-Редкая"


@pytest.mark.usefixtures("stored_portal")
def test_a_failed_job_holds_no_client_text(
    client: Any,
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> str:
        raise RuntimeError("the portal answered 500")

    monkeypatch.setattr("b24app.assistant.service.process_turn", broken)
    response = post(client, form(**{"data[message][text]": TEXT, "data[user][name]": NAME}))
    assert response.get_json() == {"status": "queued"}
    queue = services.queue(turns.QUEUE)
    job = queue.jobs[0]
    job.retries_left = 0  # this run is its last try: straight to the failed registry
    job.save()
    InProcessAppWorker([queue], connection=services.redis).work(burst=True)

    failed = FailedJobRegistry(queue=queue).get_job_ids()
    assert failed == [job.id]
    kept = Job.fetch(job.id, connection=services.redis)
    assert kept.args == () and set(kept.kwargs) == {"member_id", "chat_id", "message_id"}
    # nothing of the message anywhere in what RQ keeps of the job (its data is compressed:
    # read through RQ, and the raw hash for any plain copy)
    stored = repr((kept.args, kept.kwargs, kept.meta, kept.exc_info)).encode()
    raw = b"".join(v for v in services.redis.hgetall(f"rq:job:{job.id}").values())
    for word in ("123-45-67", "диабет", "Зинаида"):
        assert word.encode() not in stored and word.encode() not in raw
    # the text waited only in the chat's list (expiring within WAITING_TTL); its last try
    # failed, so the message left that list too (later messages are not held behind it)
    for key in turns._waiting_keys(kept.kwargs["member_id"], kept.kwargs["chat_id"]):
        dumped = services.redis.dump(key) or b""
        for word in ("123-45-67", "диабет", "Зинаида"):
            assert word.encode() not in dumped


@pytest.mark.usefixtures("stored_portal")
def test_a_waiting_message_expires_with_the_chats_list(client: Any, services: Services) -> None:
    post(client, form(**{"data[message][text]": TEXT, "data[user][name]": NAME}))
    kwargs = services.queue(turns.QUEUE).jobs[0].kwargs
    order, waiting = turns._waiting_keys(kwargs["member_id"], kwargs["chat_id"])
    assert 0 < services.redis.ttl(waiting) <= turns.WAITING_TTL


@pytest.mark.usefixtures("stored_portal")
def test_the_job_answers_the_waiting_message_it_names(
    client: Any,
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The job reads its message back from the waiting list; once answered, it is a no-op."""
    seen: list[turns.Turn] = []

    def record(_services: Services, turn: turns.Turn) -> str:
        seen.append(turn)
        turns.answered(_services, turn)
        return "answered"

    monkeypatch.setattr("b24app.assistant.service.process_turn", record)
    post(client, form(**{"data[message][text]": TEXT, "data[user][name]": NAME}))
    job = services.queue(turns.QUEUE).jobs[0]
    assert job.func(*job.args, **job.kwargs) == "answered"
    assert [(t.text, t.user_name, t.message_id) for t in seen] == [(TEXT, NAME, 41047)]
    assert job.func(*job.args, **job.kwargs) == "answered_already" and len(seen) == 1
