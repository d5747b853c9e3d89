"""The same client journey end to end through a real ``b24app worker``, on a classic portal
where the manager converts the lead, and on a simple-mode portal where every lead becomes a
deal at once: AI tagging, SLA breach → reminder → escalation (on the deal), robots on the deal
(stop SLA, appointment reminders), the won deal's revenue and the dashboard figures.

``B24APP_SLA_SECONDS_PER_MINUTE=1``: a policy "minute" lasts a second (inherited by the
worker). The events are queued before the worker starts, so it sees the converted lead first.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func
from sqlalchemy import select

from b24app.context import Services
from b24app.kpi.metrics import compute_dashboard
from b24app.kpi.metrics import period_for
from b24app.leads.journeys import find_journey
from b24app.robots import definitions as d
from b24app.settings import load_settings
from b24app.settings import save_settings
from b24app.storage.models import Journey
from b24app.storage.models import Portal
from b24app.storage.models import Timer
from b24app.storage.models import TimerState
from tests.appointments.conftest import drive_reminders
from tests.plugins.worker import WorkerProcess
from tests.sla.test_integration import notifications
from tests.sla.test_integration import wait_for


def journey(services: Services, portal_id: int, deal_id: int) -> Journey | None:
    with services.db() as session:
        row = find_journey(session, portal_id, deal_id=deal_id)
        if row is not None:
            session.expunge(row)
        return row


def timer_state(services: Services, key: int, level: str) -> str | None:
    with services.db() as session:
        return session.scalar(
            select(Timer.state).where(Timer.journey_key == key, Timer.level == level)
        )


@pytest.mark.parametrize("mode", ["classic", "simple"])
def test_a_client_journey_on_deals_end_to_end(
    mode: str,
    emulator: Any,
    live_app: Any,
    portal: Any,
    services: Services,
    run_jobs: Any,
    rq_worker: WorkerProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("B24APP_SLA_SECONDS_PER_MINUTE", "1")
    if mode == "simple":
        portal.set_crm_mode("simple")
    portal.install()
    run_jobs()
    with services.db() as session:
        row = session.scalars(select(Portal).where(Portal.member_id == portal.member_id)).one()
        portal_id, crm_mode = row.id, row.crm_mode
        save_settings(
            session, portal_id, {"sla": {"first_reply": {"minutes": 2, "escalate_minutes": 5}}}
        )
    assert crm_mode == mode
    # A chat client writes through the open line (an AI-lead), nobody answers.
    lead_id = portal.add_lead({"TITLE": "Чат", "SOURCE_ID": "1|OPENLINE", "ASSIGNED_BY_ID": 2})
    if mode == "classic":
        deal_id = portal.convert_lead(lead_id, by_user=2)
    else:
        found = portal.deal_of_lead(lead_id)
        assert found is not None
        deal_id = found
    assert emulator.wait_idle()
    rq_worker.start()

    wait_for(lambda: timer_state(services, lead_id, "escalate") == TimerState.FIRED, 60)
    row = journey(services, portal_id, deal_id)
    assert row is not None and row.lead_id == lead_id and row.is_ai and row.ai_tagged_at
    with services.db() as session:
        count = session.scalar(select(func.count()).where(Journey.portal_id == portal_id))
    assert count == 1  # one client, one journey
    deal = portal.deal(deal_id)
    assert deal is not None and deal["UF_CRM_B24APP_AI"]  # tagged where the manager works
    sent = notifications(emulator, portal)
    assert [(str(n["USER_ID"]), n["TAG"]) for n in sent] == [
        ("2", f"b24app|sla|{lead_id}|first_reply|remind"),
        ("4", f"b24app|sla|{lead_id}|first_reply|escalate"),
    ]
    assert f"/crm/deal/details/{deal_id}/]" in sent[1]["MESSAGE"]
    on_deal = [c for c in portal.timeline_comments
               if c["ENTITY_TYPE"] == "deal" and c["ENTITY_ID"] == deal_id]  # fmt: skip
    assert len(on_deal) == 2  # the AI tag, the SLA breach

    # Robots on the deal: the manager replies (stop SLA), then books the client.
    token = portal.run_robot(d.SLA_STOP, deal_id, {}, entity="deal")
    wait_for(lambda: portal.robot_result(token) is not None)
    assert portal.robot_result(token)["return_values"]["response_seconds"] != ""
    assert journey(services, portal_id, deal_id).first_reply_kind == "robot"  # type: ignore[union-attr]
    local = dt.datetime.now(ZoneInfo("Europe/Moscow")) + dt.timedelta(minutes=30)
    token = portal.run_robot(
        d.REMINDERS, deal_id,
        {"appointment_time": local.strftime("%d.%m.%Y %H:%M:%S"), "service": "Стрижка",
         "remind_before": ["custom"], "custom_minutes": "1"},
        entity="deal",
    )  # fmt: skip
    wait_for(lambda: portal.robot_result(token) is not None)
    assert portal.robot_result(token)["return_values"]["reminders_scheduled"] == 1
    # Time is driven: the reminder (1 "minute" = 1 s before an appointment 30 minutes away)
    # is made due now instead of racing a slow machine's clock.
    drive_reminders(services, portal_id)
    wait_for(
        lambda: any(
            a["OWNER_TYPE_ID"] == "2"
            and a["OWNER_ID"] == str(deal_id)
            and a["PROVIDER_ID"] == "CRM_TODO"
            for a in list(portal.activities.values())
        ),
        120,
    )

    # The visit: the deal is won with its amount — the revenue.
    portal.update_deal(deal_id, {"STAGE_ID": "WON", "OPPORTUNITY": 4000}, by_user=2)
    wait_for(lambda: (journey(services, portal_id, deal_id) or Journey()).came_at is not None)
    with services.db() as session:
        settings = load_settings(session, portal_id)
        board = compute_dashboard(
            session, portal_id, period_for("today", "Europe/Moscow"), settings
        )
    assert board.total.leads == 1 and board.total.came == 1
    assert board.total.revenue == Decimal("4000.00")
    assert board.escalations_by_manager == {2: 1}
