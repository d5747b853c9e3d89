"""fire_timer against the emulator over HTTP: claim → send → mark, skips, retries, recipients.

The job function is called in this process (the real-worker runs are in test_integration);
that lets a test stand exactly between claim and send, or between two REST steps.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import update

from b24app import context
from b24app.bitrix.errors import BitrixError
from b24app.config import Settings
from b24app.context import Services
from b24app.settings import save_settings
from b24app.sla import engine
from b24app.storage.models import Portal
from b24app.storage.models import PortalStatus
from b24app.storage.models import Timer
from b24app.storage.models import TimerState
from b24app.storage.models import utc_now
from b24app.timers.fire import claim
from b24app.timers.fire import fire_timer
from b24app.timers.fire import STALE_CLAIM
from b24app.timers.reconcile import reconcile
from tests.sla.conftest import make_lead
from tests.sla.conftest import portal_id_of
from tests.sla.conftest import timer_row
from tests.sla.conftest import update_lead


def sent(emulator: Any, portal: Any, method: str = "im.notify.system.add") -> list[dict[str, Any]]:
    """Params of the calls Bitrix24 accepted."""
    return [c.params for c in emulator.calls(method=method, portal=portal) if c.ok]


@pytest.fixture
def portal_id(installed_portal: Any, services: Services) -> int:
    return portal_id_of(services, installed_portal.member_id)


def chat_lead(installed_portal: Any, services: Services, portal_id: int, **fields: Any) -> int:
    """A lead in the emulator's CRM and its lifecycle row (responsible manager 2)."""
    lead_id = int(installed_portal.add_lead({"TITLE": "Чат", "ASSIGNED_BY_ID": 2}, events=False))
    make_lead(services, portal_id, lead_id, **{"assigned_by_id": 2, **fields})
    return lead_id


def test_a_claimed_timer_is_sent_once_and_a_stale_claim_is_recovered(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int
) -> None:
    """A worker that claimed and died: the duplicate job does nothing; after STALE_CLAIM the
    reconciliation enqueues it again and it is sent exactly once."""
    lead_id = chat_lead(installed_portal, services, portal_id)
    engine.start_timer(services, portal_id, lead_id, "first_reply")
    timer = timer_row(services, lead_id, "remind")
    crashed_at = utc_now()
    assert claim(services, timer.id, crashed_at)  # the worker that will "die"
    assert not claim(services, timer.id, crashed_at)
    assert fire_timer(timer.id) == "busy"
    assert sent(emulator, installed_portal) == []
    assert reconcile(services)["stale_claims"] == 0  # a fresh claim is left alone
    # STALE_CLAIM later, nobody has marked it fired: the worker is gone.
    with services.db() as session:
        session.execute(
            update(Timer)
            .where(Timer.id == timer.id)
            .values(claimed_at=crashed_at - STALE_CLAIM - dt.timedelta(seconds=1))
        )
    counts = reconcile(services)
    assert counts["stale_claims"] == 1 and counts["overdue"] == 1
    assert timer.job_id in services.queue("timers").get_job_ids()  # enqueued at once
    assert fire_timer(timer.id) == "fired"
    assert fire_timer(timer.id) == "skipped"
    assert [n["TAG"] for n in sent(emulator, installed_portal)] == [
        f"b24app|sla|{lead_id}|first_reply|remind"
    ]
    fired = timer_row(services, lead_id, "remind")
    assert fired.state == TimerState.FIRED
    assert fired.recipient_user_id == 2 and fired.fired_at is not None


def test_handled_lead_or_inactive_portal_sends_nothing(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int
) -> None:
    """A replied lead's timer and a timer of a portal needing re-auth are skipped, unsent."""
    replied = chat_lead(installed_portal, services, portal_id)
    waiting = chat_lead(installed_portal, services, portal_id)
    engine.start_timer(services, portal_id, replied, "first_reply")
    engine.start_timer(services, portal_id, waiting, "first_reply")
    update_lead(services, portal_id, replied, first_reply_at=utc_now())
    assert fire_timer(timer_row(services, replied, "remind").id) == "skipped"
    assert timer_row(services, replied, "remind").payload["skip_reason"] == "handled"
    with services.db() as session:
        session.execute(
            update(Portal).where(Portal.id == portal_id).values(status=PortalStatus.REAUTH_REQUIRED)
        )
    assert fire_timer(timer_row(services, waiting, "escalate").id) == "skipped"
    row = timer_row(services, waiting, "escalate")
    assert row.state == TimerState.SKIPPED and row.payload["skip_reason"] == "portal_inactive"
    assert sent(emulator, installed_portal) == []


def test_permanent_error_marks_the_timer_skipped(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int
) -> None:
    """The lead is gone from the CRM (NOT_FOUND when looking up its manager): skipped, no retry."""
    make_lead(services, portal_id, 987654, assigned_by_id=None)
    engine.start_timer(services, portal_id, 987654, "callback")
    timer = timer_row(services, 987654, "remind")
    assert fire_timer(timer.id) == "skipped"
    row = timer_row(services, 987654, "remind")
    assert row.state == TimerState.SKIPPED and row.payload["skip_reason"] == "NotFound"
    assert sent(emulator, installed_portal) == []


@pytest.fixture
def no_client_retries(settings: Settings, services: Services) -> Iterator[Services]:
    """Services whose REST client gives up at the first error (RQ's Retry is what retries)."""
    quick = context.build_services(dataclasses.replace(settings, rest_max_retries=0))
    context.set_current(quick)
    yield quick
    context.set_current(services)
    quick.dispose()


def test_a_failed_step_releases_the_claim_and_the_retry_resumes_after_it(
    emulator: Any,
    installed_portal: Any,
    services: Services,
    portal_id: int,
    no_client_retries: Services,
) -> None:
    """Escalation with task + comment; tasks.task.add fails once: the job raises (RQ retries),
    the claim is released, and the retry sends the task and comment without a second notice."""
    with services.db() as session:
        save_settings(session, portal_id, {"sla": {"create_task": True, "timeline_comment": True}})
    lead_id = chat_lead(installed_portal, services, portal_id)
    engine.start_timer(services, portal_id, lead_id, "first_reply")
    timer = timer_row(services, lead_id, "escalate")
    emulator.inject_fault(
        "internal_error", count=1, portal=installed_portal, method="tasks.task.add"
    )
    with pytest.raises(BitrixError):
        fire_timer(timer.id)
    failed = timer_row(services, lead_id, "escalate")
    assert failed.state == TimerState.PENDING and failed.claimed_at is None
    assert failed.payload["done"] == ["notify"]
    assert fire_timer(timer.id) == "fired"
    assert len(sent(emulator, installed_portal)) == 1
    tasks = sent(emulator, installed_portal, "tasks.task.add")
    assert len(tasks) == 1
    assert tasks[0]["fields"]["UF_CRM_TASK"] == [f"L_{lead_id}"]
    comments = sent(emulator, installed_portal, "crm.timeline.comment.add")
    assert len(comments) == 1 and str(comments[0]["fields"]["ENTITY_ID"]) == str(lead_id)
    assert timer_row(services, lead_id, "escalate").payload["done"] == [
        "notify",
        "task",
        "comment",
    ]


@pytest.mark.parametrize(
    ("owner", "manager", "expected"),
    [
        (3, 2, 3),  # the configured owner
        (None, 2, 4),  # the head of manager 2's department (user 4)
        (None, 4, 1),  # the manager heads the department himself: the installer (admin)
    ],
)
def test_escalation_goes_to_owner_else_department_head_else_installer(
    emulator: Any,
    installed_portal: Any,
    services: Services,
    portal_id: int,
    owner: int | None,
    manager: int,
    expected: int,
) -> None:
    """Escalation recipient: owner_user_id, else UF_HEAD of the manager's department, else admin."""
    with services.db() as session:
        save_settings(session, portal_id, {"owner_user_id": owner})
    lead_id = chat_lead(installed_portal, services, portal_id, assigned_by_id=manager)
    engine.start_timer(services, portal_id, lead_id, "first_reply")
    assert fire_timer(timer_row(services, lead_id, "escalate").id) == "fired"
    [notice] = sent(emulator, installed_portal)
    assert int(notice["USER_ID"]) == expected
    assert timer_row(services, lead_id, "escalate").recipient_user_id == expected
    assert f"(ответственный #{manager})" in notice["MESSAGE"]


def test_english_portal_gets_english_text_with_a_link_to_the_lead(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int
) -> None:
    """An English portal's manager reminder is in English, with a BB-code link to the lead."""
    with services.db() as session:
        session.execute(update(Portal).where(Portal.id == portal_id).values(lang="en"))
    lead_id = chat_lead(installed_portal, services, portal_id)
    engine.start_timer(services, portal_id, lead_id, "confirmation")
    assert fire_timer(timer_row(services, lead_id, "remind").id) == "fired"
    [notice] = sent(emulator, installed_portal)
    link = f"[URL=https://{installed_portal.domain}/crm/lead/details/{lead_id}/]Lead #{lead_id}"
    assert notice["MESSAGE"].startswith(f"b24app: {link}[/URL] is waiting")
    assert "booking confirmation" in notice["MESSAGE"]
