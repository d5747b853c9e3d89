"""The timer engine's registry of policies: who fills it, and what a timer without a policy
does (the engine's RQ job, fire_timer, knows no policy of its own: b24app/timers/registry.py)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from typing import Any

import pytest

from b24app.context import Services
from b24app.storage.models import Timer
from b24app.storage.models import TimerState
from b24app.storage.models import utc_now
from b24app.timers import registry
from b24app.timers.engine import job_id_for
from b24app.timers.fire import fire_timer
from tests.sla.conftest import make_lead
from tests.sla.conftest import portal_id_of

# What the worker's processes know after the worker's own preparation (b24app/worker.py).
WORKER_VIEW = """
import json
from b24app.worker import preload_job_modules
preload_job_modules()
from b24app.timers.registry import policy_for, registered
print(json.dumps({
    "names": sorted(registered()),
    "appointment": policy_for("appointment").__module__,
    "a robot's own name": policy_for("after-call").__module__,
}))
"""

# A process that imported the engine's job and nothing else.
BARE_VIEW = """
from b24app.timers.registry import policy_for, UnknownPolicy
from b24app.timers.fire import fire_timer
try:
    policy_for("first_reply")
except UnknownPolicy:
    print("unknown")
"""


def run_python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return done.stdout.strip()


def test_the_worker_registers_every_policy_before_it_runs_a_job() -> None:
    """A fresh process prepared as the worker prepares itself knows every policy: the SLA
    ladders (and a robot's own ladder name), the appointment reminders, the legacy rows."""
    view = json.loads(run_python(WORKER_VIEW))
    assert set(view["names"]) >= {
        "first_reply",
        "callback",
        "confirmation",
        "appointment",
        "reminder",
    }
    assert view["appointment"] == "b24app.appointments.remind"
    assert view["a robot's own name"] == "b24app.sla.alerts"


def test_a_process_without_the_policy_modules_knows_no_policy() -> None:
    """The engine alone guesses at nothing: the policies come from their own modules."""
    assert run_python(BARE_VIEW) == "unknown"


def pending_timer(services: Services, portal_id: int, key: int, policy: str, level: str) -> int:
    with services.db() as session:
        timer = Timer(
            portal_id=portal_id,
            journey_key=key,
            policy=policy,
            level=level,
            due_at=utc_now() - dt.timedelta(seconds=1),
            started_at=utc_now() - dt.timedelta(hours=1),
            state=TimerState.PENDING,
            job_id=job_id_for(portal_id, key, policy, level),
            payload={"appointment_at": (utc_now() + dt.timedelta(hours=2)).isoformat()},
        )
        session.add(timer)
        session.flush()
        return int(timer.id)


def state_of(services: Services, timer_id: int) -> tuple[str, dict[str, Any]]:
    with services.db() as session:
        timer = session.get(Timer, timer_id)
        assert timer is not None
        return str(timer.state), dict(timer.payload or {})


def test_a_timer_whose_policy_nobody_registered_fails_and_stays_pending(
    emulator: Any, installed_portal: Any, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No policy, no send and no skip: the job fails (RQ retries it, reconciliation brings it
    back) and the row stays pending for a process that knows the policy."""
    portal_id = portal_id_of(services, installed_portal.member_id)
    lead_id = int(installed_portal.add_lead({"TITLE": "Чат", "ASSIGNED_BY_ID": 2}, events=False))
    make_lead(services, portal_id, lead_id)
    timer_id = pending_timer(services, portal_id, lead_id, "first_reply", "remind")
    monkeypatch.setattr(registry, "_BY_NAME", {})
    monkeypatch.setattr(registry, "_OTHERS", [])
    before = emulator.http_requests(installed_portal)
    with pytest.raises(registry.UnknownPolicy):
        fire_timer(timer_id)
    assert state_of(services, timer_id)[0] == TimerState.PENDING
    assert emulator.http_requests(installed_portal) == before
    monkeypatch.undo()
    assert fire_timer(timer_id) == "fired"  # the same row, once the policy is known


def test_a_pending_manager_reminder_of_an_earlier_version_is_skipped_unsent(
    emulator: Any, installed_portal: Any, services: Services
) -> None:
    """Nothing schedules the manager-only ``reminder`` timers any more; a row an earlier
    version left pending is skipped with its reason, and Bitrix24 hears nothing."""
    portal_id = portal_id_of(services, installed_portal.member_id)
    lead_id = int(installed_portal.add_lead({"TITLE": "Запись", "NAME": "Мария"}, events=False))
    make_lead(services, portal_id, lead_id)
    timer_id = pending_timer(services, portal_id, lead_id, "reminder", "2h")
    before = emulator.http_requests(installed_portal)
    assert fire_timer(timer_id) == "skipped"
    state, payload = state_of(services, timer_id)
    assert state == TimerState.SKIPPED and payload["skip_reason"] == "legacy_reminder"
    assert emulator.http_requests(installed_portal) == before


def test_the_sla_catch_all_takes_no_timer_of_another_policy(
    emulator: Any, installed_portal: Any, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SLA policy serves every name no module claims (a robot's own ladder), but only
    ladder levels: an appointment timer in a process that lacks the appointment policy fails
    and stays pending instead of becoming an SLA notification."""
    portal_id = portal_id_of(services, installed_portal.member_id)
    lead_id = int(installed_portal.add_lead({"TITLE": "Чат", "ASSIGNED_BY_ID": 2}, events=False))
    make_lead(services, portal_id, lead_id)
    timer_id = pending_timer(services, portal_id, lead_id, "appointment", "2h@7")
    sla_only = {k: v for k, v in registry._BY_NAME.items() if k != "appointment"}
    monkeypatch.setattr(registry, "_BY_NAME", sla_only)
    before = emulator.http_requests(installed_portal)
    with pytest.raises(registry.UnknownPolicy):
        fire_timer(timer_id)
    assert state_of(services, timer_id)[0] == TimerState.PENDING
    assert emulator.http_requests(installed_portal) == before


def test_a_job_queued_by_the_previous_version_still_fires() -> None:
    """RQ stores a job's function by path; the previous version queued every timer as
    ``b24app.sla.jobs.fire_timer``, which must still resolve to the engine's job."""
    from rq.utils import import_attribute

    assert import_attribute("b24app.sla.jobs.fire_timer") is fire_timer
