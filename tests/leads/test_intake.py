"""End to end through the emulator: lead events arrive over real HTTP, jobs record the
lifecycle, AI-leads are tagged once, deliveries may repeat or come in any order."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from sqlalchemy import select

from b24app.context import Services
from b24app.leads.lifecycle import get_lead
from b24app.storage.models import Journey
from b24app.storage.models import JourneyStageChange
from b24app.storage.models import Portal
from b24app.storage.models import Stage
from b24app.storage.portals import get_portal
from devportal import DevPortal
from devportal import Portal as EmuPortal

WRITES = ("crm.item.update", "crm.lead.update", "crm.timeline.comment.add")


@pytest.fixture
def settle(emulator: DevPortal, run_jobs: Callable[..., None]) -> Callable[[], None]:
    """Wait until the emulator's deliveries are answered, then run the queued event jobs
    (twice: jobs may cause deliveries, e.g. the app's own update)."""

    def run() -> None:
        for _ in range(3):
            assert emulator.wait_idle()
            run_jobs("events")

    return run


def db_portal(services: Services, emu_portal: EmuPortal) -> Portal:
    with services.db() as session:
        portal = get_portal(session, emu_portal.member_id)
        assert portal is not None
        session.expunge(portal)
        return portal


def lead_row(services: Services, portal_id: int, lead_id: int) -> Journey:
    with services.db() as session:
        lead = get_lead(session, portal_id, lead_id)
        assert lead is not None, f"lead {lead_id} not recorded"
        session.expunge(lead)
        return lead


def moves(services: Services, portal_id: int, lead_id: int) -> list[tuple[str, str, dt.datetime]]:
    with services.db() as session:
        rows = session.scalars(
            select(JourneyStageChange)
            .where(
                JourneyStageChange.portal_id == portal_id, JourneyStageChange.journey_key == lead_id
            )
            .order_by(JourneyStageChange.changed_at, JourneyStageChange.id)
        )
        return [(r.status_id, r.stage, r.changed_at) for r in rows]


def comments(emu_portal: EmuPortal, lead_id: int) -> list[dict[str, Any]]:
    return [c for c in emu_portal.timeline_comments if c["ENTITY_ID"] == lead_id]


def writes(emulator: DevPortal, emu_portal: EmuPortal) -> int:
    return sum(len(emulator.calls(method=m, portal=emu_portal)) for m in WRITES)


def naive_utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(ts), dt.UTC).replace(tzinfo=None)


def test_ai_lead_is_recorded_and_tagged_once(emulator, installed_portal, services, settle) -> None:  # type: ignore[no-untyped-def]
    """A Telegram lead: recorded, field written, exactly one comment; the app's own update
    comes back as an event and causes no further write (loop guard)."""
    portal = db_portal(services, installed_portal)
    lead_id = installed_portal.add_lead({"TITLE": "Маникюр", "SOURCE_ID": "2|TELEGRAM"})
    settle()
    row = lead_row(services, portal.id, lead_id)
    assert row.is_ai and row.ai_channel == "telegram" and row.ai_tagged_at is not None
    assert row.channel == "chat" and row.source_id == "2|TELEGRAM"
    crm = installed_portal.lead(lead_id)
    assert crm is not None and crm[portal.registration["lead_field"]] == "AI-lead · Telegram"
    assert len(comments(installed_portal, lead_id)) == 1
    # The tag's own ONCRMLEADUPDATE was delivered and processed without writing again.
    updates = emulator.deliveries(kind="event", name="ONCRMLEADUPDATE", portal=installed_portal)
    assert len(updates) >= 1
    assert writes(emulator, installed_portal) == 2
    # A repeated delivery of the add event changes nothing either.
    emulator.delivery.duplicate = True
    installed_portal.update_lead(lead_id, {"COMMENTS": "перезвонить"})
    settle()
    assert len(comments(installed_portal, lead_id)) == 1
    assert writes(emulator, installed_portal) == 2


def test_other_lead_is_recorded_not_tagged(emulator, installed_portal, services, settle) -> None:  # type: ignore[no-untyped-def]
    """A phone lead: recorded with channel call, amount and UTM; nothing written to the CRM."""
    portal = db_portal(services, installed_portal)
    lead_id = installed_portal.add_lead(
        {"TITLE": "Звонок", "SOURCE_ID": "CALL", "OPPORTUNITY": 2500, "UTM_CAMPAIGN": "spring",
         "ASSIGNED_BY_ID": 3}
    )  # fmt: skip
    settle()
    row = lead_row(services, portal.id, lead_id)
    assert not row.is_ai and row.ai_tagged_at is None
    assert row.channel == "call" and row.assigned_by_id == 3
    assert row.utm_campaign == "spring" and float(row.opportunity or 0) == 2500.0
    assert row.stage == Stage.NEW
    assert comments(installed_portal, lead_id) == []
    assert writes(emulator, installed_portal) == 0


def test_status_moves_are_recorded_with_their_times(installed_portal, services, settle) -> None:  # type: ignore[no-untyped-def]
    """New → Qualified → Confirmed → Came: one move each at the CRM's time; the first move out
    of New is the first reply."""
    portal = db_portal(services, installed_portal)
    statuses = portal.registration["statuses"]
    t0 = time.time() - 3600
    lead_id = installed_portal.add_lead({"SOURCE_ID": "WEBFORM"}, created_at=t0)
    installed_portal.update_lead(lead_id, {"STATUS_ID": statuses["qualified"]}, at=t0 + 60)
    settle()
    installed_portal.update_lead(lead_id, {"STATUS_ID": statuses["confirmed"]}, at=t0 + 120)
    installed_portal.update_lead(lead_id, {"STATUS_ID": statuses["came"]}, at=t0 + 600)
    settle()
    row = lead_row(services, portal.id, lead_id)
    assert row.created_at == naive_utc(t0)
    assert row.qualified_at == naive_utc(t0 + 60)
    assert row.confirmed_at == naive_utc(t0 + 120)
    assert row.came_at == naive_utc(t0 + 600)
    assert row.no_show_at is None
    assert (row.first_reply_at, row.first_reply_kind) == (naive_utc(t0 + 60), "status")
    assert row.stage == Stage.CAME and row.status_id == statuses["came"]
    assert [m[1] for m in moves(services, portal.id, lead_id)] == [
        Stage.NEW, Stage.QUALIFIED, Stage.CONFIRMED, Stage.CAME,
    ]  # fmt: skip


def test_duplicated_and_reordered_deliveries_leave_one_record(
    emulator, installed_portal, services, settle
) -> None:  # type: ignore[no-untyped-def]
    """Every delivery twice, released in reverse order: one lead, each move once, one tag."""
    portal = db_portal(services, installed_portal)
    statuses = portal.registration["statuses"]
    t0 = time.time() - 7200
    emulator.delivery.duplicate = True
    emulator.delivery.hold()
    lead_id = installed_portal.add_lead({"SOURCE_ID": "1|OPENLINE", "TITLE": "Чат"}, created_at=t0)
    installed_portal.update_lead(lead_id, {"STATUS_ID": statuses["qualified"]}, at=t0 + 30)
    installed_portal.update_lead(lead_id, {"STATUS_ID": statuses["no_show"]}, at=t0 + 90)
    emulator.delivery.release(order="reverse")
    settle()
    delivered = emulator.deliveries(kind="event", portal=installed_portal)
    assert len([d for d in delivered if d.status == 200]) >= 6
    with services.db() as session:
        count = session.scalar(
            select(Journey.id).where(Journey.portal_id == portal.id, Journey.lead_id == lead_id)
        )
        assert count is not None
    row = lead_row(services, portal.id, lead_id)
    assert row.stage == Stage.NO_SHOW
    assert row.qualified_at == naive_utc(t0 + 30)
    assert row.no_show_at == naive_utc(t0 + 90)
    assert row.first_reply_at == naive_utc(t0 + 30)
    assert [m[0] for m in moves(services, portal.id, lead_id)] == [
        "NEW", statuses["qualified"], statuses["no_show"],
    ]  # fmt: skip
    assert len(comments(installed_portal, lead_id)) == 1


def test_outgoing_call_is_the_first_reply(installed_portal, services, settle) -> None:  # type: ignore[no-untyped-def]
    """An incoming call is not a reply; a completed outgoing call is, at its time."""
    portal = db_portal(services, installed_portal)
    t0 = time.time() - 1800
    lead_id = installed_portal.add_lead({"SOURCE_ID": "CALL"}, created_at=t0)
    installed_portal.add_activity(lead_id, kind="call", direction="incoming", at=t0 + 10)
    settle()
    assert lead_row(services, portal.id, lead_id).first_reply_at is None
    installed_portal.add_activity(lead_id, kind="call", direction="outgoing", at=t0 + 45)
    settle()
    row = lead_row(services, portal.id, lead_id)
    assert (row.first_reply_at, row.first_reply_kind) == (naive_utc(t0 + 45), "call")


def test_deleted_lead_is_marked(installed_portal, services, settle) -> None:  # type: ignore[no-untyped-def]
    """ONCRMLEADDELETE marks the record deleted (kept for the KPIs' history)."""
    portal = db_portal(services, installed_portal)
    lead_id = installed_portal.add_lead({"SOURCE_ID": "CALL"})
    settle()
    installed_portal.delete_lead(lead_id)
    settle()
    assert lead_row(services, portal.id, lead_id).deleted_at is not None


def test_forged_event_over_http_is_rejected(live_app, installed_portal, services) -> None:  # type: ignore[no-untyped-def]
    """A delivery with the right member_id and a made-up token is 403 and queues nothing."""
    form = {
        "event": "ONCRMLEADADD",
        "data[FIELDS][ID]": "1",
        "ts": str(int(time.time())),
        "auth[member_id]": installed_portal.member_id,
        "auth[application_token]": "forged-token",
    }
    before = services.queue("events").count
    response = requests.post(f"{live_app.url}/handlers/events", data=form, timeout=10)
    assert response.status_code == 403
    assert services.queue("events").count == before
