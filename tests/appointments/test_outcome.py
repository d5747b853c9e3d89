"""End to end through a real ``b24app worker``: the client's «1» confirms the appointment and
its journey, moves the deal to the mapped stage and stops the confirmation SLA; after the
appointment the master is asked who came — answered by a button, by a stage moved by hand, or
(unanswered) the administrator is asked once.

Policy minutes are seconds (``B24APP_SLA_SECONDS_PER_MINUTE=1``, set before the worker
starts); bookings are made ten minutes ahead and the timers' due times are then driven
(``drive``), so a slow machine never races them; waits are deadlines, never timings.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import requests
from rq.registry import StartedJobRegistry
from sqlalchemy import select

from b24app.context import Services
from b24app.settings import save_settings
from b24app.sla.engine import start_timer
from b24app.storage.models import AppointmentStatus
from b24app.storage.models import Journey
from b24app.storage.models import Timer
from b24app.storage.models import TimerState
from b24app.storage.models import VisitOutcome
from devportal.bot_taps import tap
from tests.appointments.conftest import appointment_timers
from tests.appointments.conftest import appointments
from tests.appointments.conftest import drive_reminders
from tests.appointments.conftest import utc_now
from tests.plugins.worker import WorkerProcess
from tests.waiting import wait_for

MASTER, ADMIN = 3, 1
STAGES = {"confirmed": "PREPARATION", "came": "WON", "no_show": "LOSE"}


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("B24APP_SLA_SECONDS_PER_MINUTE", "1")


def at(seconds: float) -> dt.datetime:
    return utc_now().replace(tzinfo=dt.UTC, microsecond=0) + dt.timedelta(seconds=seconds)


def setup_deal(services: Services, portal: Any, portal_id: int, worker: WorkerProcess) -> int:
    """The admin's stage map and question settings, a deal of the master (its journey made
    by the intake), the worker running."""
    with services.db() as session:
        save_settings(session, portal_id, {
            "deal_stage_map": {"0": STAGES}, "owner_user_id": ADMIN,
            "appointments": {"offsets": ["20m"],
                             "outcome": {"ask": "bot", "length_minutes": 60, "grace_minutes": 30}},
        })  # fmt: skip
    worker.start()
    deal = int(portal.add_deal({"TITLE": "Маникюр", "ASSIGNED_BY_ID": MASTER}))
    wait_for(lambda: journey_of(services, deal) is not None, what="the deal's journey")
    return deal


def journey_of(services: Services, deal_id: int) -> Journey | None:
    with services.db() as session:
        row = session.scalar(select(Journey).where(Journey.deal_id == deal_id))
        if row is not None:
            session.expunge(row)
        return row


def outcome_timers(services: Services) -> dict[str, Timer]:
    with services.db() as session:
        rows = list(session.scalars(select(Timer).where(Timer.policy == "outcome")))
        session.expunge_all()
    return {t.level.split("@")[0]: t for t in rows}


def drive(services: Services, level: str) -> None:
    """Make the pending ``level`` question due a second from now (its job moves with it)."""
    from b24app.timers.engine import remove_job
    from b24app.timers.engine import schedule_job

    now = utc_now().replace(microsecond=0)
    with services.db() as session:
        timer = session.scalar(select(Timer).where(Timer.policy == "outcome",
                                                   Timer.level.like(f"{level}@%")))  # fmt: skip
        assert timer is not None and timer.state == TimerState.PENDING
        timer.due_at = now + dt.timedelta(seconds=1)
        session.flush()
        session.expunge(timer)
    remove_job(services, timer.job_id)
    schedule_job(services, timer, now)


def asked(portal: Any, user_id: int) -> list[dict[str, Any]]:
    with portal.lock:
        return [dict(m) for m in portal.imbot.personal.to_user(user_id)]


def settled(services: Services) -> bool:
    """No event job waiting or running: the booking's follow-up events (which re-arm the
    questions from the booking's time) are all read, so a driven due time stays driven."""
    queue = services.queue("events")
    return queue.count == 0 and StartedJobRegistry(queue=queue).count == 0


def book(portal: Any, services: Services, deal: int, contact: int) -> None:
    portal.add_booking(at(600), name="Маникюр", deal_id=deal, contact_id=contact)
    wait_for(lambda: len(appointments(services)) == 1 and len(outcome_timers(services)) == 2,
             what="the appointment and its questions")  # fmt: skip
    assert portal.emu.wait_idle()
    wait_for(lambda: settled(services), what="the booking's events read")


def test_the_clients_1_confirms_moves_the_deal_and_stops_the_confirmation_sla(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, fast: None,
    live_app: Any, rq_worker: WorkerProcess,
) -> None:  # fmt: skip
    portal = installed_portal
    contact = portal.add_contact("Анна", "Петрова")
    deal = setup_deal(services, portal, portal_id, rq_worker)
    start_timer(services, portal_id, -deal, "confirmation", minutes=600)
    chat = portal.open_chat([("deal", deal)])
    book(portal, services, deal, contact)
    drive_reminders(services, portal_id)
    wait_for(lambda: any(t.state == TimerState.FIRED for t in appointment_timers(services)))
    portal.client_writes(chat.id, "1")
    wait_for(lambda: portal.deal(deal)["STAGE_ID"] == STAGES["confirmed"], what="deal moved")
    (appt,) = appointments(services)
    assert appt.status == AppointmentStatus.CONFIRMED and appt.confirmed_at is not None
    journey = journey_of(services, deal)
    assert journey is not None and journey.confirmed_at is not None
    with services.db() as session:
        sla = list(session.scalars(select(Timer).where(Timer.policy == "confirmation")))
    assert sla and all(t.state == TimerState.CANCELLED for t in sla)
    wait_for(lambda: journey_of(services, deal).stage == "confirmed", what="intake read it")  # type: ignore[union-attr]


def test_the_master_answers_by_button_and_a_forged_answer_is_ignored(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, fast: None,
    live_app: Any, rq_worker: WorkerProcess,
) -> None:  # fmt: skip
    portal = installed_portal
    deal = setup_deal(services, portal, portal_id, rq_worker)
    book(portal, services, deal, portal.add_contact("Анна", "Петрова"))
    drive(services, "ask")
    wait_for(lambda: len(asked(portal, MASTER)) == 1, what="the master asked")
    (question,) = asked(portal, MASTER)
    assert "Анна Петрова" in question["text"] and "Маникюр" in question["text"]
    assert [b["TEXT"] for b in question["keyboard"]] == ["Да", "Нет", "Перенесли"]
    # Another employee posts the button's event as if the master had said "no": ignored
    # (the question went to the master). The queue is FIFO: it runs before the real tap.
    forged = _command_event(
        portal, question, user_id=2, params=f"{question_appt(services)} no_show"
    )
    assert portal.employee_posts(f"{live_app.url}/assistant/events", forged).status_code == 200
    # the master taps «Да» on their page of the emulated portal (devportal/staff_pages.py)
    page = f"{emulator.url}/{portal.slug}/page/staff/{MASTER}"
    shown = requests.get(page, timeout=10).text
    assert "Анна Петрова" in shown and 'value="Перенесли"' in shown
    assert requests.post(page, data={"message_id": question["id"], "text": "Да"},
                         timeout=10).status_code == 200  # fmt: skip
    assert portal.imbot.personal.taps[-1] == {"user_id": MASTER, "message_id": question["id"],
                                              "text": "Да"}  # fmt: skip
    wait_for(lambda: appointments(services)[0].outcome is not None, what="the outcome")
    (appt,) = appointments(services)
    assert (appt.outcome, appt.outcome_source, appt.outcome_by) == (
        VisitOutcome.CAME,
        "button",
        MASTER,
    )
    wait_for(lambda: portal.deal(deal)["STAGE_ID"] == STAGES["came"], what="deal moved to came")
    assert not tap(portal, MASTER, question["id"], "Нет")  # BLOCK=Y: one answer
    wait_for(lambda: outcome_timers(services)["admin"].state == TimerState.CANCELLED)
    journey = journey_of(services, deal)
    assert journey is not None and journey.came_at is not None and journey.no_show_at is None


def test_a_stage_moved_by_hand_answers_and_nobody_is_asked(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, fast: None,
    live_app: Any, rq_worker: WorkerProcess,
) -> None:  # fmt: skip
    portal = installed_portal
    deal = setup_deal(services, portal, portal_id, rq_worker)
    book(portal, services, deal, portal.add_contact("Анна", "Петрова"))
    portal.update_deal(deal, {"STAGE_ID": STAGES["no_show"]}, by_user=MASTER)
    wait_for(lambda: appointments(services)[0].outcome == VisitOutcome.NO_SHOW, what="outcome")
    assert appointments(services)[0].outcome_source == "stage"
    # the questions are cancelled just after the outcome is committed (the same job)
    wait_for(lambda: {t.state for t in outcome_timers(services).values()}
             == {TimerState.CANCELLED}, what="the questions cancelled")  # fmt: skip
    assert asked(portal, MASTER) == [] and asked(portal, ADMIN) == []


def test_unanswered_the_administrator_is_asked_once_and_answers(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, fast: None,
    live_app: Any, rq_worker: WorkerProcess,
) -> None:  # fmt: skip
    portal = installed_portal
    deal = setup_deal(services, portal, portal_id, rq_worker)
    book(portal, services, deal, portal.add_contact("Анна", "Петрова"))
    drive(services, "ask")
    wait_for(lambda: outcome_timers(services)["ask"].state == TimerState.FIRED)
    drive(services, "admin")
    wait_for(lambda: outcome_timers(services)["admin"].state == TimerState.FIRED)
    (question,) = asked(portal, ADMIN)
    assert len(asked(portal, MASTER)) == 1
    assert outcome_timers(services)["admin"].recipient_user_id == ADMIN
    assert tap(portal, ADMIN, question["id"], "Нет")
    wait_for(lambda: portal.deal(deal)["STAGE_ID"] == STAGES["no_show"], what="deal moved")
    (appt,) = appointments(services)
    assert (appt.outcome, appt.outcome_by) == (VisitOutcome.NO_SHOW, ADMIN)
    # The master's late answer changes nothing: the first answer won.
    (late,) = asked(portal, MASTER)
    assert tap(portal, MASTER, late["id"], "Да")
    wait_for(lambda: portal.deal(deal)["STAGE_ID"] == STAGES["no_show"])
    assert appointments(services)[0].outcome == VisitOutcome.NO_SHOW
    assert len(asked(portal, ADMIN)) == 1


def question_appt(services: Services) -> int:
    return int(appointments(services)[0].id)


def _command_event(
    portal: Any, question: dict[str, Any], *, user_id: int, params: str
) -> dict[str, Any]:
    bot = next(iter(portal.imbot.bots.values()))
    return {
        "event": "ONIMBOTV2COMMANDADD",
        "data": {
            "bot": {"id": str(bot["id"]), "code": bot["code"]},
            "command": {
                "id": "40",
                "command": "/b24app_outcome",
                "params": params,
                "context": "keyboard",
            },  # fmt: skip
            "message": {
                "id": str(question["id"]),
                "chatId": "700002",
                "authorId": str(bot["id"]),
                "text": question["text"],
            },  # fmt: skip
            "chat": {
                "id": str(700_000 + user_id),
                "dialogId": str(user_id),
                "type": "private",
                "entityType": "",
            },  # fmt: skip
            "user": {"id": str(user_id), "name": "x", "bot": "0", "connector": "0"},
        },
        "auth": {
            "member_id": portal.member_id,
            "application_token": portal.application_token,
            "domain": portal.domain,
        },  # fmt: skip
    }


def test_the_task_way_asks_with_a_task_bound_to_the_deal(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, run_jobs: Any
) -> None:
    """``outcome.ask = task``: the master gets a task on the deal (answered by its stage)."""
    from b24app.timers.fire import fire_timer

    portal = installed_portal
    with services.db() as session:
        save_settings(session, portal_id, {"appointments": {"outcome": {"ask": "task"}}})
    deal = int(portal.add_deal({"TITLE": "Маникюр", "ASSIGNED_BY_ID": MASTER}))
    assert emulator.wait_idle()
    run_jobs()
    portal.add_booking(at(3600), name="Маникюр", deal_id=deal)
    assert emulator.wait_idle()
    run_jobs()
    assert fire_timer(outcome_timers(services)["ask"].id) == "fired"
    (task,) = [t for t in portal.tasks if "клиент пришёл?" in t["title"]]
    assert task["responsibleId"] == str(MASTER) and task["ufCrmTask"] == [f"D_{deal}"]
    assert asked(portal, MASTER) == []
    assert fire_timer(outcome_timers(services)["ask"].id) == "skipped"  # once
