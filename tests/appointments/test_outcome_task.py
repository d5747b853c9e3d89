"""The outcome question as a task (``outcome.ask = task``), end to end through a real ``b24app
worker``: the master ticks the task's checklist and completes it (``ONTASKUPDATE``, form
encoded, read back with the app's token) → the outcome is recorded and the administrator is
not asked; a stage moved by hand answers → the app completes the task itself; a task
completed with nothing ticked tells nothing (until an item is ticked); an event about another
task is not read.

Policy minutes are seconds, due times are driven (tests/appointments/test_outcome.py).
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from b24app.context import Services
from b24app.settings import save_settings
from b24app.storage.models import TimerState
from b24app.storage.models import VisitOutcome
from tests.appointments.conftest import appointments
from tests.appointments.test_outcome import ADMIN
from tests.appointments.test_outcome import book
from tests.appointments.test_outcome import drive
from tests.appointments.test_outcome import MASTER
from tests.appointments.test_outcome import outcome_timers
from tests.appointments.test_outcome import settled
from tests.appointments.test_outcome import setup_deal
from tests.appointments.test_outcome import STAGES
from tests.plugins.worker import WorkerProcess
from tests.waiting import wait_for


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("B24APP_SLA_SECONDS_PER_MINUTE", "1")


@pytest.fixture
def asked(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, fast: None,
    live_app: Any, rq_worker: WorkerProcess,
) -> tuple[Any, int, dict[str, Any]]:  # fmt: skip
    """A booked deal of the master, asked by task: (the portal, the deal id, the task)."""
    portal = installed_portal
    deal = setup_deal(services, portal, portal_id, rq_worker)
    with services.db() as session:
        save_settings(session, portal_id, {"appointments": {"outcome": {"ask": "task"}}})
    book(portal, services, deal, portal.add_contact("Анна", "Петрова"))
    drive(services, "ask")
    wait_for(lambda: outcome_timers(services)["ask"].state == TimerState.FIRED, what="asked")
    (task,) = [t for t in portal.tasks if "клиент пришёл?" in t["title"]]
    assert task["responsibleId"] == str(MASTER) and task["ufCrmTask"] == [f"D_{deal}"]
    items = [i["TITLE"] for i in portal.tasks_area.items(int(task["id"]))]
    assert items == ["Пришёл(ла)", "Не пришёл(ла)", "Перенесли"]
    return portal, deal, task


def test_the_master_ticks_no_show_and_completes_the_task(
    asked: tuple[Any, int, dict[str, Any]], services: Services
) -> None:
    portal, deal, task = asked
    task_id = int(task["id"])
    portal.tick_task_item(task_id, "Не пришёл(ла)", by_user=MASTER)
    portal.complete_task(task_id, by_user=MASTER)
    wait_for(lambda: appointments(services)[0].outcome == VisitOutcome.NO_SHOW, what="outcome")
    appt = appointments(services)[0]
    assert (appt.outcome_source, appt.outcome_by) == ("task", MASTER)
    wait_for(lambda: portal.deal(deal)["STAGE_ID"] == STAGES["no_show"], what="deal moved")
    wait_for(lambda: outcome_timers(services)["admin"].state == TimerState.CANCELLED)
    assert task["closedBy"] == str(MASTER)  # completed by the master, not again by the app
    assert not [t for t in portal.tasks if t["responsibleId"] == str(ADMIN)]


def test_a_stage_moved_by_hand_answers_and_the_app_completes_the_task(
    asked: tuple[Any, int, dict[str, Any]], services: Services
) -> None:
    portal, deal, task = asked
    assert task["status"] == "2"
    portal.update_deal(deal, {"STAGE_ID": STAGES["came"]}, by_user=MASTER)
    wait_for(lambda: appointments(services)[0].outcome == VisitOutcome.CAME, what="outcome")
    wait_for(lambda: task["status"] == "5", what="the question task completed by the app")
    assert task["closedBy"] != str(MASTER)
    assert outcome_timers(services)["admin"].state == TimerState.CANCELLED
    assert outcome_timers(services)["ask"].payload["task_closed"] is True
    assert not [t for t in portal.tasks if t["responsibleId"] == str(ADMIN)]


def test_a_task_completed_with_nothing_ticked_tells_nothing_and_a_forged_event_is_not_read(
    asked: tuple[Any, int, dict[str, Any]], services: Services, live_app: Any
) -> None:
    portal, _, task = asked
    portal.complete_task(int(task["id"]), by_user=MASTER)
    # read back: completed by the master, so nothing is left for the app to close
    wait_for(lambda: outcome_timers(services)["ask"].payload.get("task_closed") is True,
             what="the task read back")  # fmt: skip
    wait_for(lambda: settled(services), what="the task's job done")
    assert appointments(services)[0].outcome is None
    assert outcome_timers(services)["admin"].state == TimerState.PENDING  # still asked
    # an event naming a task that is not the app's question (form-encoded, as Bitrix24 posts)
    other = requests.post(f"{live_app.url}/handlers/tasks", data={
        "event": "ONTASKUPDATE", "data[FIELDS_BEFORE][ID]": "9999",
        "data[FIELDS_AFTER][ID]": "9999", "data[IS_ACCESSIBLE_BEFORE]": "undefined",
        "data[IS_ACCESSIBLE_AFTER]": "undefined", "ts": "1796650000",
        "auth[member_id]": portal.member_id, "auth[application_token]": portal.application_token,
        "auth[domain]": portal.domain,
    }, timeout=10)  # fmt: skip
    assert other.status_code == 200, other.text
    wait_for(lambda: settled(services), what="the forged event's job")
    drive(services, "admin")
    wait_for(lambda: outcome_timers(services)["admin"].state == TimerState.FIRED)
    (admin_task,) = [t for t in portal.tasks if t["responsibleId"] == str(ADMIN)]
    # the master ticks the completed task after all: that answers, and the administrator's
    # open task is completed by the app
    portal.tick_task_item(int(task["id"]), "Пришёл(ла)", by_user=MASTER)
    wait_for(lambda: appointments(services)[0].outcome == VisitOutcome.CAME, what="outcome")
    wait_for(lambda: admin_task["status"] == "5", what="the administrator's task completed")
