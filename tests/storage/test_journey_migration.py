"""hj_journeys: a database made by the previous version keeps every row and key when it is
upgraded (``leads`` -> ``journeys``, ``lead_id`` keys -> ``journey_key``) and downgraded."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from alembic import command
from sqlalchemy import create_engine
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from b24app.storage.migrate import alembic_config
from b24app.storage.migrate import upgrade
from b24app.storage.models import Appointment
from b24app.storage.models import Journey
from b24app.storage.models import JourneyStageChange
from b24app.storage.models import RobotCall
from b24app.storage.models import Timer
from tests.postgres import empty_postgres_database

PREVIOUS = "wt21_rollup_indexes"
T = dt.datetime(2026, 11, 2, 9, 30)


@pytest.fixture
def blank_database(database_url: str, tmp_path: Any) -> Iterator[str]:
    """An empty database beside the session's one (same engine: SQLite or PostgreSQL)."""
    if not database_url.startswith("postgresql"):
        yield "sqlite:///" + str(tmp_path / "previous.sqlite")
        return
    with empty_postgres_database("b24app_hj") as url:
        yield url


# The rows as the previous version wrote them: a journey that started on lead 5 and was
# converted into deal 50, one that started on deal 70 (key -70), their stage moves, timers
# (one of an appointment not linked yet, key 0), robot calls and an appointment.
OLD_ROWS = [
    "INSERT INTO portals (id, member_id, domain, client_endpoint, server_endpoint, scopes, status,"
    " plan, lang, app_version, token_version, registration, created_at, updated_at, crm_mode)"
    " VALUES (1, 'm1', 'a.bitrix24.ru', 'https://a/rest/', 'https://o/rest/', 'crm', 'active',"
    " 'std', 'ru', '1', 1, '{}', :t, :t, 'classic')",
    "INSERT INTO leads (id, portal_id, lead_id, deal_id, entity_type, status_id, stage,"
    " source_id, utm_source, utm_medium, utm_campaign, utm_content, utm_term, channel, is_ai,"
    " ai_channel, currency_id, created_at, updated_at, category_id, deal_stage_id, came_at)"
    " VALUES (11, 1, 5, 50, 'lead', 'CONVERTED', 'came', 'CALL', '', '', 'spring', '', '',"
    " 'call', true, 'VK', 'RUB', :t, :t, 0, 'WON', :t)",
    "INSERT INTO leads (id, portal_id, lead_id, deal_id, entity_type, status_id, stage,"
    " source_id, utm_source, utm_medium, utm_campaign, utm_content, utm_term, channel, is_ai,"
    " ai_channel, currency_id, created_at, updated_at, category_id, deal_stage_id)"
    " VALUES (12, 1, NULL, 70, 'deal', '', 'new', 'WEB', '', '', '', '', '', 'webform', false,"
    " '', '', :t, :t, 1, 'C1:NEW')",
    "INSERT INTO lead_stage_changes (id, portal_id, lead_id, status_id, stage, changed_at,"
    " origin) VALUES (21, 1, 5, 'NEW', 'new', :t, 'event'), (22, 1, -70, 'C1:NEW', 'new', :t,"
    " 'backfill')",
    "INSERT INTO timers (id, portal_id, lead_id, policy, level, due_at, started_at, state,"
    " job_id, payload) VALUES (31, 1, 5, 'first_reply', 'remind', :t, :t, 'fired',"
    " 'sla-1-5-first_reply-remind', '{}'), (32, 1, -70, 'confirmation', 'escalate', :t, :t,"
    " 'pending', 'sla-1--70-confirmation-escalate', '{}'), (33, 1, 0, 'appointment',"
    " '2h@41', :t, :t, 'pending', 'sla-1-0-appointment-2h_41', '{}')",
    "INSERT INTO robot_calls (id, portal_id, token_hash, code, lead_id, state, return_values,"
    " log_message, created_at) VALUES (51, 1, 'h1', 'b24app_qualify', -70, 'sent', '{}', '',"
    " :t), (52, 1, 'h2', 'b24app_qualify', NULL, 'queued', '{}', '', :t)",
    "INSERT INTO appointments (id, portal_id, journey_id, lead_id, deal_id, source, service,"
    " starts_at, status, created_at, updated_at) VALUES (41, 1, 11, 5, 50, 'booking', 'cut',"
    " :t, 'confirmed', :t, :t)",
]


def _write_old_rows(url: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in OLD_ROWS:
                conn.execute(text(statement), {"t": T})
    finally:
        engine.dispose()


def _check_new_rows(url: str) -> None:
    engine = create_engine(url)
    try:
        with Session(engine) as s:
            journeys = {j.id: (j.lead_id, j.deal_id, j.entity_type, j.stage, j.utm_campaign,
                               j.is_ai, j.category_id, j.deal_stage_id, j.came_at)
                        for j in s.scalars(select(Journey))}  # fmt: skip
            assert journeys == {
                11: (5, 50, "lead", "came", "spring", True, 0, "WON", T),
                12: (None, 70, "deal", "new", "", False, 1, "C1:NEW", None),
            }
            moves = {(m.id, m.journey_key, m.status_id, m.origin)
                     for m in s.scalars(select(JourneyStageChange))}  # fmt: skip
            assert moves == {(21, 5, "NEW", "event"), (22, -70, "C1:NEW", "backfill")}
            timers = {(t.id, t.journey_key, t.policy, t.level, t.state, t.job_id)
                      for t in s.scalars(select(Timer))}  # fmt: skip
            assert timers == {
                (31, 5, "first_reply", "remind", "fired", "sla-1-5-first_reply-remind"),
                (32, -70, "confirmation", "escalate", "pending", "sla-1--70-confirmation-escalate"),
                (33, 0, "appointment", "2h@41", "pending", "sla-1-0-appointment-2h_41"),
            }
            calls = {(c.id, c.journey_key, c.state) for c in s.scalars(select(RobotCall))}
            assert calls == {(51, -70, "sent"), (52, None, "queued")}
            appt = s.get(Appointment, 41)
            assert appt is not None and (appt.journey_id, appt.lead_id, appt.deal_id) == (11, 5, 50)
        # The keys stay unique under their new names.
        with pytest.raises(IntegrityError), Session(engine) as s, s.begin():
            s.add(Timer(portal_id=1, journey_key=-70, policy="confirmation", level="escalate",
                        due_at=T, job_id="again"))  # fmt: skip
    finally:
        engine.dispose()


def _old_rows_back(url: str) -> dict[str, list[tuple[Any, ...]]]:
    queries = {
        "leads": "SELECT id, lead_id, deal_id FROM leads ORDER BY id",
        "moves": "SELECT id, lead_id FROM lead_stage_changes ORDER BY id",
        "timers": "SELECT id, lead_id FROM timers ORDER BY id",
        "calls": "SELECT id, lead_id FROM robot_calls ORDER BY id",
        "appointments": "SELECT id, journey_id FROM appointments ORDER BY id",
    }
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {k: [tuple(r) for r in conn.execute(text(q))] for k, q in queries.items()}
    finally:
        engine.dispose()


def test_previous_version_rows_survive_upgrade_and_downgrade(blank_database: str) -> None:
    """Rows written at the previous head by raw SQL come out of the upgrade with every id and
    journey key (lead id, minus a deal id, 0) in place, appointments still point at their
    journey, the schema matches the models; the downgrade gives the old tables back."""
    upgrade(blank_database, PREVIOUS)
    _write_old_rows(blank_database)
    before = _old_rows_back(blank_database)

    upgrade(blank_database)
    _check_new_rows(blank_database)
    command.check(alembic_config(blank_database))

    command.downgrade(alembic_config(blank_database), PREVIOUS)
    assert _old_rows_back(blank_database) == before
    assert before["appointments"] == [(41, 11)]
    assert before["timers"] == [(31, 5), (32, -70), (33, 0)]
