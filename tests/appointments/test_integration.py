"""End to end through a real ``b24app worker``: a booking made in the emulator reaches the
client's chat as reminders at their times, the client's "1" confirms it on the dashboard; no
chat → the workflow; neither → the to-do; moved, deleted, short-notice and duplicate bookings.

Offsets are policy minutes: ``B24APP_SLA_SECONDS_PER_MINUTE=1`` (set before the worker starts,
which computes the due times in the booking job) makes "20m" twenty seconds. Bookings are made
ten minutes ahead and the reminders' time is then driven (``drive_reminders``), so a slow
machine never makes a reminder "already past"; waits are deadlines, never timings.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

import pytest
import requests

from b24app.context import Services
from b24app.settings import save_settings
from b24app.storage.models import AppointmentStatus
from b24app.storage.models import TimerState
from tests.appointments.conftest import appointment_timers
from tests.appointments.conftest import appointments
from tests.appointments.conftest import attempts
from tests.appointments.conftest import drive_reminders
from tests.appointments.conftest import make_journey
from tests.appointments.conftest import utc_now
from tests.plugins.worker import WorkerProcess
from tests.sla.test_integration import wait_for


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("B24APP_SLA_SECONDS_PER_MINUTE", "1")


def configure(services: Services, portal_id: int, **appointments_: Any) -> None:
    with services.db() as session:
        save_settings(session, portal_id, {"appointments": appointments_})


def at(seconds: float) -> dt.datetime:
    return utc_now().replace(tzinfo=dt.UTC, microsecond=0) + dt.timedelta(seconds=seconds)


def pending(services: Services) -> list[Any]:
    return [t for t in appointment_timers(services) if t.state == TimerState.PENDING]


def fired(services: Services) -> list[Any]:
    return [t for t in appointment_timers(services) if t.state == TimerState.FIRED]


def test_reminders_reach_the_chat_on_time_and_the_reply_shows_confirmed(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, fast: None,
    live_app: Any, rq_worker: WorkerProcess,
) -> None:  # fmt: skip
    configure(services, portal_id, offsets=["20m", "8m"])
    contact = installed_portal.add_contact("Анна", "Петрова")
    make_journey(services, portal_id, deal_id=501, contact_id=contact)
    chat = installed_portal.open_chat([("deal", 501)])
    rq_worker.start()
    installed_portal.add_booking(at(600), name="Окрашивание", deal_id=501, contact_id=contact)
    wait_for(lambda: len(pending(services)) == 2)
    starts = appointments(services)[0].starts_at
    assert [starts - t.due_at for t in pending(services)] == [
        dt.timedelta(seconds=20), dt.timedelta(seconds=8),
    ]  # "20m", "8m"  # fmt: skip
    drive_reminders(services, portal_id)
    # The message reaches the chat a moment before its timer is marked fired: wait for both.
    wait_for(lambda: len(fired(services)) == 2, timeout=90)
    messages = installed_portal.chat_messages(chat.id)
    assert len(messages) == 2
    # {client_name}: the booking's contact (read with the booking), not the greeting
    assert all(m["text"].startswith("Анна Петрова, напоминаем: Окрашивание") for m in messages)
    timers = appointment_timers(services)
    for timer in timers:  # never before its time
        assert timer.fired_at is not None and timer.fired_at >= timer.due_at
    assert timers[1].due_at - timers[0].due_at == dt.timedelta(seconds=12)
    installed_portal.client_writes(chat.id, "1")
    wait_for(lambda: appointments(services)[0].status == AppointmentStatus.CONFIRMED, timeout=90)
    page = installed_portal.open_app()
    token = re.search(r'name="t" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    today = dt.date.today()
    body = requests.get(
        f"{live_app.url}/app/api/dashboard.json",
        headers={"X-B24App-Session": token},
        params={"period": "custom", "from": str(today - dt.timedelta(days=1)),
                "to": str(today + dt.timedelta(days=1))},
        timeout=10,
    ).json()  # fmt: skip
    kpis = body["appointments"]
    assert kpis["appointments"] == 1 and kpis["confirmed"] == 1
    assert kpis["confirmed_pct"] == 100.0
    # delivered: the messenger's mark or the client's reply after it, not just "accepted"
    assert kpis["delivery"]["chat"] == {"attempts": 2, "accepted": 2, "delivered": 2,
                                        "delivery_pct": 100.0, "failed": 0, "unknown": 0}  # fmt: skip
    assert kpis["by_channel"]["chat"]["appointments"] == 1


def test_no_chat_goes_to_the_workflow_then_with_neither_to_the_todo(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, fast: None,
    rq_worker: WorkerProcess,
) -> None:  # fmt: skip
    configure(services, portal_id, offsets=["8m"], workflow={"template_id": 525})
    make_journey(services, portal_id, deal_id=502)
    make_journey(services, portal_id, deal_id=503)
    rq_worker.start()
    installed_portal.add_booking(at(600), name="Чистка", deal_id=502)
    wait_for(lambda: len(pending(services)) == 1)
    drive_reminders(services, portal_id)
    wait_for(lambda: len(installed_portal.workflows) == 1 and len(fired(services)) == 1)
    assert installed_portal.workflows[0]["document_id"][2] == "DEAL_502"
    configure(services, portal_id, workflow={"template_id": None})
    installed_portal.add_booking(at(600), name="Чистка", deal_id=503)
    wait_for(lambda: len(pending(services)) == 1)
    drive_reminders(services, portal_id)
    wait_for(lambda: len(fired(services)) == 2, timeout=90)
    assert [a[:2] for a in attempts(services)] == [
        ("chat", False), ("workflow", True), ("chat", False), ("workflow", False), ("todo", True),
    ]  # fmt: skip
    todo = list(installed_portal.activities.values())[-1]
    assert "no_active_chat" in str(todo)


def test_moved_deleted_short_notice_and_duplicate_bookings(
    emulator: Any, installed_portal: Any, services: Services, portal_id: int, fast: None,
    rq_worker: WorkerProcess,
) -> None:  # fmt: skip
    configure(services, portal_id, offsets=["24h", "8m"])  # 24h = 1440 s: always "too late"
    for deal in (601, 602, 603):
        make_journey(services, portal_id, deal_id=deal)
    moved_chat = installed_portal.open_chat([("deal", 601)])
    deleted_chat = installed_portal.open_chat([("deal", 602)])
    twice_chat = installed_portal.open_chat([("deal", 603)])
    rq_worker.start()
    moved = installed_portal.add_booking(at(600), deal_id=601)
    deleted = installed_portal.add_booking(at(600), deal_id=602)
    emulator.delivery.duplicate = True
    installed_portal.add_booking(at(600), deal_id=603)
    emulator.delivery.duplicate = False
    # booked less than 24 h ahead: a confirmation request each at once, and the 8 m reminder
    wait_for(lambda: len(appointments(services)) == 3
             and len([t for t in appointment_timers(services)]) == 6)  # fmt: skip
    new_start = at(605)  # moved 5 s: driven, the two reminders fire 5 s apart
    installed_portal.move_booking(moved, new_start)
    installed_portal.delete_booking(deleted)
    rows = {a.deal_id: a for a in appointments(services)}

    def moved_and_deleted() -> bool:
        rows.update({a.deal_id: a for a in appointments(services)})
        due = {t.level.split("@")[1]: t.due_at for t in pending(services)
               if not t.level.startswith("confirm@")}  # fmt: skip
        return (
            rows[602].status == AppointmentStatus.CANCELLED
            and str(rows[602].id) not in due
            and rows[601].starts_at == new_start.replace(tzinfo=None)  # the move was read
            and due.get(str(rows[601].id)) == rows[601].starts_at - dt.timedelta(seconds=8)
        )

    wait_for(moved_and_deleted)
    assert rows[601].starts_at == new_start.replace(tzinfo=None)
    # the confirmation requests go at once; then the 8 m reminders' time is driven
    wait_for(lambda: not [t for t in pending(services) if t.level.startswith("confirm@")])
    drive_reminders(services, portal_id)

    def reminders(chat: Any) -> list[str]:
        return [m["text"] for m in installed_portal.chat_messages(chat.id)
                if "напоминаем" in m["text"]]  # fmt: skip

    # the moved one and the twice one (and the confirmation requests)
    wait_for(lambda: len([t for t in fired(services) if t.level.startswith("8m")]) == 2,
             timeout=90)  # fmt: skip
    assert len(reminders(moved_chat)) == 1
    time.sleep(2)  # give a duplicate a chance to show up
    assert len(reminders(twice_chat)) == 1
    assert len(installed_portal.chat_messages(twice_chat.id)) == 2  # one confirmation request
    assert reminders(deleted_chat) == []
    rows = {a.deal_id: a for a in appointments(services)}
    assert rows[602].status == AppointmentStatus.CANCELLED
    levels = {t.level.split("@")[0] for t in appointment_timers(services)}
    assert levels == {"confirm", "8m"}  # booked "less than 24 h" ahead: no 24 h reminder
    moved_timer = next(t for t in appointment_timers(services) if t.level == f"8m@{rows[601].id}")
    assert moved_timer.fired_at is not None and moved_timer.fired_at >= moved_timer.due_at
