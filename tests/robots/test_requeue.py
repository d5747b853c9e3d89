"""A robot call whose queued job was lost (Redis restarted empty) is queued again from the
database, once, with the same arguments."""

from __future__ import annotations

import datetime as dt

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from rq.job import Job
from sqlalchemy import text
from sqlalchemy import update

from b24app.robots import definitions as d
from b24app.robots import jobs as robot_jobs
from b24app.robots.jobs import accept_call
from b24app.robots.jobs import job_id
from b24app.robots.jobs import requeue_lost_calls
from b24app.storage.models import RobotCall
from b24app.storage.models import utc_now
from b24app.storage.portals import InstallAuth
from b24app.storage.portals import upsert_install

TOKEN = "664fa13bbbb410.99176768|A40364_79843|MS1ekdI0CvXi8ycL8qNIn96hak8JEndG.5402"


def test_lost_job_is_requeued_once(services, redis_server) -> None:
    """After a Redis wipe the call is queued again; a second sweep finds nothing to do."""
    with services.db() as session:
        portal = upsert_install(
            session, InstallAuth(member_id="m" * 32, domain="s.bitrix24.ru",
                                 application_token="app-token-123456")
        )  # fmt: skip
        portal_id = portal.id
    props = {"channel": "telegram", "note": "Анна, +7 900 000-00-00"}
    assert accept_call(services, portal_id, "m" * 32, d.MARK_AI, TOKEN, "LEAD_5", props)
    services.redis.flushdb()  # the queued job is gone, the row is not
    assert not Job.exists(job_id(portal_id, TOKEN), connection=services.redis)
    with services.db() as session:
        session.execute(update(RobotCall).values(created_at=utc_now() - dt.timedelta(minutes=5)))
        raw = session.execute(text("SELECT request FROM robot_calls")).scalar_one()
    assert "Анна" not in raw and TOKEN not in raw  # stored encrypted
    assert requeue_lost_calls(older_than_s=60) == 1
    job = Job.fetch(job_id(portal_id, TOKEN), connection=services.redis)
    assert job.args == ("m" * 32, d.MARK_AI, TOKEN, "LEAD_5", props)
    assert requeue_lost_calls(older_than_s=60) == 0


def _portal(services) -> int:
    with services.db() as session:
        portal = upsert_install(
            session, InstallAuth(member_id="m" * 32, domain="s.bitrix24.ru",
                                 application_token="app-token-123456")
        )  # fmt: skip
        return portal.id


def _rows(services) -> int:
    with services.db() as session:  # a connection of its own: sees committed rows only
        return session.execute(text("SELECT count(*) FROM robot_calls")).scalar_one()


def test_the_job_is_queued_only_once_its_row_is_committed(services, redis_server, monkeypatch):
    """A worker may take the job the moment it is queued: the row must already be visible to
    it, or the call is dropped as lost and the workflow waits forever (seen under CI load)."""
    portal_id = _portal(services)
    seen_at_enqueue: list[int] = []
    enqueue = robot_jobs._enqueue

    def watching(*args, **kwargs):
        seen_at_enqueue.append(_rows(services))
        return enqueue(*args, **kwargs)

    monkeypatch.setattr(robot_jobs, "_enqueue", watching)
    assert accept_call(services, portal_id, "m" * 32, d.MARK_AI, TOKEN, "LEAD_5", {})
    assert seen_at_enqueue == [1]
    assert Job.exists(job_id(portal_id, TOKEN), connection=services.redis)


def test_a_failed_enqueue_withdraws_the_call(services, redis_server, monkeypatch) -> None:
    """Redis refuses the job: the error reaches the caller (a 5xx, so Bitrix24 may repeat),
    no row is left behind, and the repeat is accepted."""
    portal_id = _portal(services)

    def refused(*args, **kwargs):
        raise RedisConnectionError("Redis is down")

    with monkeypatch.context() as patch:
        patch.setattr(robot_jobs, "_enqueue", refused)
        with pytest.raises(RedisConnectionError):
            accept_call(services, portal_id, "m" * 32, d.MARK_AI, TOKEN, "LEAD_5", {})
    assert _rows(services) == 0
    assert accept_call(services, portal_id, "m" * 32, d.MARK_AI, TOKEN, "LEAD_5", {})
    assert _rows(services) == 1
    assert not accept_call(services, portal_id, "m" * 32, d.MARK_AI, TOKEN, "LEAD_5", {})
