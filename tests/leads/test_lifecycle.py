"""The lifecycle record: stale snapshots never win, moves are stored once, the first reply is
the earliest signal, unmapped statuses get a stage by semantics."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from sqlalchemy import func
from sqlalchemy import select

from b24app.context import Services
from b24app.leads.classify import Classification
from b24app.leads.lifecycle import apply_snapshot
from b24app.leads.lifecycle import get_lead
from b24app.leads.lifecycle import HistoryEntry
from b24app.leads.lifecycle import record_first_reply
from b24app.leads.lifecycle import record_snapshot
from b24app.leads.lifecycle import stage_for
from b24app.leads.snapshot import LeadSnapshot
from b24app.storage.models import JourneyStageChange
from b24app.storage.models import Portal
from b24app.storage.models import Stage
from b24app.storage.portals import InstallAuth
from b24app.storage.portals import upsert_install

STATUSES = {"new": "NEW", "qualified": "Q", "confirmed": "C", "came": "CONVERTED", "no_show": "NS"}
T0 = dt.datetime(2025, 3, 1, 9, 0)
NOT_AI = Classification(False, "", "no rule matched")
SNAP = LeadSnapshot(
    lead_id=42, title="Лид", status_id="NEW", status_semantic="P", assigned_by_id=2,
    source_id="CALL", source_description="", comments="", utm_source="", utm_medium="",
    utm_campaign="", utm_content="", utm_term="", opportunity=None, currency_id="RUB",
    created_at=T0, modified_at=T0, moved_at=T0,
)  # fmt: skip


@pytest.fixture
def portal_id(services: Services) -> int:
    with services.db() as session:
        return upsert_install(session, InstallAuth(member_id="lifecycle-test")).id


def history(*moves: tuple[int, str, dt.datetime]) -> list[HistoryEntry]:
    return [
        HistoryEntry(i + 1, 42, status, "P", at, created=i == 0)
        for i, (_, status, at) in enumerate(moves)
    ]


def test_older_snapshot_never_overwrites_a_newer_one(services, portal_id) -> None:  # type: ignore[no-untyped-def]
    """A late fetch with an older DATE_MODIFY leaves the newer fields in place."""
    newer = dataclasses.replace(
        SNAP, status_id="Q", assigned_by_id=3, modified_at=T0 + dt.timedelta(minutes=5)
    )
    older = dataclasses.replace(SNAP, assigned_by_id=4, modified_at=T0 + dt.timedelta(minutes=1))
    with services.db() as session:
        record_snapshot(session, portal_id, newer, [], STATUSES, NOT_AI, "call")
    with services.db() as session:
        lead, outcome = record_snapshot(session, portal_id, older, [], STATUSES, NOT_AI, "call")
        assert outcome.stale and not outcome.changed
        assert (lead.status_id, lead.stage, lead.assigned_by_id) == ("Q", Stage.QUALIFIED, 3)


def test_same_history_twice_is_stored_once(services, portal_id) -> None:  # type: ignore[no-untyped-def]
    """Moves are keyed by (lead, status, time): recording them again adds nothing."""
    moves = history((1, "NEW", T0), (2, "Q", T0 + dt.timedelta(minutes=2)))
    snap = dataclasses.replace(SNAP, status_id="Q", modified_at=T0 + dt.timedelta(minutes=2))
    for _ in range(2):
        with services.db() as session:
            lead, outcome = record_snapshot(
                session, portal_id, snap, moves, STATUSES, NOT_AI, "call"
            )
    assert outcome.moves_added == 0 and not outcome.lifecycle_changed
    with services.db() as session:
        count = session.scalar(select(func.count()).select_from(JourneyStageChange))
        lead = get_lead(session, portal_id, 42)
        assert count == 2
        assert lead is not None and lead.qualified_at == T0 + dt.timedelta(minutes=2)
        assert (lead.first_reply_at, lead.first_reply_kind) == (
            T0 + dt.timedelta(minutes=2),
            "status",
        )


def test_creation_in_a_later_status_is_not_a_reply(services, portal_id) -> None:  # type: ignore[no-untyped-def]
    """A lead created directly as Qualified gets qualified_at, but no first reply."""
    snap = dataclasses.replace(SNAP, status_id="Q")
    with services.db() as session:
        lead, _ = record_snapshot(
            session, portal_id, snap, history((1, "Q", T0)), STATUSES, NOT_AI, "call"
        )
        assert lead.qualified_at == T0 and lead.first_reply_at is None


def test_first_reply_is_the_earliest_signal(services, portal_id) -> None:  # type: ignore[no-untyped-def]
    """True only the first time; an earlier signal arriving later moves the time back."""
    with services.db() as session:
        record_snapshot(session, portal_id, SNAP, None, STATUSES, NOT_AI, "call")
    with services.db() as session:
        assert record_first_reply(session, portal_id, 42, T0 + dt.timedelta(minutes=9), "robot")
    with services.db() as session:
        assert not record_first_reply(session, portal_id, 42, T0 + dt.timedelta(minutes=20), "call")
        assert not record_first_reply(session, portal_id, 42, T0 + dt.timedelta(minutes=4), "email")
    with services.db() as session:
        lead = get_lead(session, portal_id, 42)
        assert lead is not None
        assert (lead.first_reply_at, lead.first_reply_kind) == (
            T0 + dt.timedelta(minutes=4),
            "email",
        )
        # A reply logged before the lead existed counts as immediate, never negative.
        assert not record_first_reply(session, portal_id, 42, T0 - dt.timedelta(hours=1), "call")
    with services.db() as session:
        lead = get_lead(session, portal_id, 42)
        assert lead is not None and lead.first_reply_at == T0
    with services.db() as session:
        assert not record_first_reply(session, portal_id, 999, T0, "robot")


@pytest.mark.parametrize(
    ("status", "semantic", "stage"),
    [
        ("NEW", "P", Stage.NEW),
        ("Q", "P", Stage.QUALIFIED),
        ("CONVERTED", "S", Stage.CAME),
        ("IN_PROCESS", "P", Stage.OTHER),
        ("JUNK", "F", Stage.JUNK),
        ("OTHER_SUCCESS", "S", Stage.OTHER),
    ],
)
def test_stage_for(status: str, semantic: str, stage: str) -> None:
    """Mapped statuses give our stage; unmapped: F → junk, anything else → other."""
    assert stage_for(status, semantic, STATUSES) == stage


def test_apply_snapshot_uses_the_portal_mapping_and_rules(services, portal_id) -> None:  # type: ignore[no-untyped-def]
    """apply_snapshot: created, then a move reported as a stage change; a repeat changes nothing."""
    with services.db() as session:
        portal = session.get(Portal, portal_id)
        assert portal is not None
        portal.registration = {"lead_field": "UF_CRM_B24APP_AI", "statuses": STATUSES}
    telegram = dataclasses.replace(SNAP, source_id="2|TELEGRAM")
    moved = dataclasses.replace(
        telegram, status_id="C", modified_at=T0 + dt.timedelta(minutes=3),
        moved_at=T0 + dt.timedelta(minutes=3),
    )  # fmt: skip
    results = []
    for snap in (telegram, moved, moved):
        with services.db() as session:
            portal = session.get(Portal, portal_id)
            change = apply_snapshot(session, portal, snap)
            results.append((change.created, change.stage_changed, change.lead.stage))
    assert results == [
        (True, True, Stage.NEW),
        (False, True, Stage.CONFIRMED),
        (False, False, Stage.CONFIRMED),
    ]
    with services.db() as session:
        lead = get_lead(session, portal_id, 42)
        assert lead is not None and lead.is_ai and lead.ai_channel == "telegram"
        assert lead.channel == "chat" and lead.confirmed_at == T0 + dt.timedelta(minutes=3)
        assert (lead.first_reply_at, lead.first_reply_kind) == (lead.confirmed_at, "status")
