"""Install fixtures: an emulator portal installed into the live app, and a job runner.

``run_jobs()`` drains the RQ queues with the app's in-process worker (no scheduler): the
real RQ machinery on the real private Redis, for tests that need jobs done but are not about
timing. Timer tests use the ``rq_worker`` subprocess fixture instead.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from b24app import metrics
from b24app.context import Services
from b24app.worker import InProcessAppWorker


def drain_queues(services: Services, queues: tuple[str, ...] | None = None) -> None:
    """Run every queued job (and jobs they enqueue) until the queues are empty."""
    names = queues or ("assistant", "events", "timers", "default", "bulk")
    worker = InProcessAppWorker(
        [services.queue(n) for n in names],
        connection=services.redis,
        exception_handlers=[metrics.count_failed_job],
    )
    worker.work(burst=True, logging_level="WARNING")


@pytest.fixture
def run_jobs(services: Services) -> Callable[..., None]:
    """``run_jobs()`` drains the queues in-process with the app's real RQ worker."""

    def run(*queues: str) -> None:
        drain_queues(services, queues or None)

    return run


@pytest.fixture
def installed_portal(emulator, live_app, portal, services, run_jobs):  # type: ignore[no-untyped-def]
    """An emulator portal with the app installed, registered and install-finished."""
    result = portal.install()
    assert result.installer is not None and result.installer.status_code == 200, (
        result.installer.text if result.installer is not None else "no installer answer"
    )
    run_jobs()
    assert portal.install_finished
    quiet_hours_off(services, portal.member_id)
    return portal


def quiet_hours_off(services: Services, member_id: str) -> None:
    """Quiet hours follow the wall clock: a test about offsets must not depend on the hour it
    runs at. Tests of the quiet hours set them (tests/appointments/test_channels.py)."""
    from sqlalchemy import select

    from b24app.settings import save_settings
    from b24app.storage.models import Portal

    with services.db() as session:
        portal_id = session.scalar(select(Portal.id).where(Portal.member_id == member_id))
        if portal_id is not None:
            save_settings(session, portal_id,
                          {"appointments": {"quiet_hours": {"from": "00:00", "to": "00:00"}}})  # fmt: skip
