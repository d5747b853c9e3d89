"""Retention of REST log rows: never below the marketplace's 3 days."""

from __future__ import annotations

import datetime as dt

from b24app import context
from b24app.restlog import purge_rest_log
from b24app.storage.models import RestLog
from b24app.storage.models import utc_now


def _row(age_days: float) -> RestLog:
    return RestLog(member_id="m", method="user.current", request="{}", status_code=200,
                   response="{}", error=None, duration_ms=1,
                   created_at=utc_now() - dt.timedelta(days=age_days))  # fmt: skip


def test_purge_keeps_at_least_three_days(services: context.Services) -> None:
    """Asked for 1 day, the purge still keeps 3; older rows go."""
    with services.db() as session:
        session.add_all([_row(0.5), _row(2.5), _row(3.5), _row(10)])
    assert purge_rest_log(1) == 2
    assert purge_rest_log(7) == 0
    with services.db() as session:
        assert session.query(RestLog).count() == 2
