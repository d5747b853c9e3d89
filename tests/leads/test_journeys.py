"""Client journeys: one row across lead and deal, unique keys where set, the journey key."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.exc import IntegrityError

from b24app.context import Services
from b24app.leads.journeys import find_journey
from b24app.leads.journeys import journey_key
from b24app.storage.models import EntityType
from b24app.storage.models import Journey
from b24app.storage.portals import InstallAuth
from b24app.storage.portals import upsert_install

T0 = dt.datetime(2025, 3, 1, 9, 0)


@pytest.fixture
def portal_id(services: Services) -> int:
    with services.db() as session:
        return upsert_install(session, InstallAuth(member_id="journeys-test")).id


def test_a_journey_is_found_by_lead_deal_key_and_contact(services, portal_id) -> None:  # type: ignore[no-untyped-def]
    with services.db() as session:
        session.add(
            Journey(portal_id=portal_id, lead_id=7, deal_id=70, contact_id=5, created_at=T0)
        )
        session.add(
            Journey(portal_id=portal_id, deal_id=71, entity_type=EntityType.DEAL, created_at=T0)
        )
    with services.db() as session:
        converted = find_journey(session, portal_id, lead_id=7)
        assert converted is not None and converted.deal_id == 70
        assert find_journey(session, portal_id, deal_id=70) is converted
        assert find_journey(session, portal_id, contact_id=5) is converted
        direct = find_journey(session, portal_id, deal_id=71)
        assert direct is not None and direct.lead_id is None
        assert journey_key(converted) == 7 and journey_key(direct) == -71
        assert find_journey(session, portal_id, key=-71) is direct
        assert find_journey(session, portal_id, key=7) is converted
        assert find_journey(session, portal_id, lead_id=8) is None


def test_many_deal_journeys_without_a_lead_but_each_deal_once(services, portal_id) -> None:  # type: ignore[no-untyped-def]
    """NULL lead ids do not collide; a second journey for the same deal is refused."""
    with services.db() as session:
        for deal_id in (1, 2, 3):
            session.add(Journey(portal_id=portal_id, deal_id=deal_id, created_at=T0))
        session.add(Journey(portal_id=portal_id, lead_id=1, created_at=T0))
    with pytest.raises(IntegrityError), services.db() as session:
        session.add(Journey(portal_id=portal_id, deal_id=2, created_at=T0))


def test_kpi_timer_counts_find_journeys_by_either_key(services, portal_id) -> None:  # type: ignore[no-untyped-def]
    """Fired timers of a lead journey (key = lead id) and of a deal journey (key = -deal id)
    are both counted for their manager."""
    from b24app.kpi.metrics import period_for
    from b24app.kpi.metrics import timer_counts
    from b24app.storage.models import Timer
    from b24app.storage.models import utc_now

    now = utc_now()
    with services.db() as session:
        session.add(Journey(portal_id=portal_id, lead_id=7, assigned_by_id=2, created_at=now))
        session.add(Journey(portal_id=portal_id, deal_id=71, entity_type=EntityType.DEAL,
                         assigned_by_id=2, created_at=now))  # fmt: skip
        for key in (7, -71):
            session.add(Timer(portal_id=portal_id, journey_key=key, policy="first_reply",
                              level="escalate", due_at=now, state="fired", job_id=f"j{key}"))  # fmt: skip
    with services.db() as session:
        _, escalations = timer_counts(session, portal_id, period_for("today", "UTC"))
    assert escalations == {2: 2}
