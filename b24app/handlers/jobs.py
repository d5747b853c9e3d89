"""RQ jobs behind the event endpoint, and how they are enqueued.

One job per delivery, id ``evt-<member_id>-<event>-<entity id>-<ts>``, enqueued with RQ's
``unique=True`` (an atomic check-and-save): a delivery that comes twice while its job is
waiting or failed is enqueued once. Finished jobs are not kept (``result_ttl=0``), so a later
delivery with the same id is processed again — harmless, the processing is idempotent.
"""

from __future__ import annotations

import re
from datetime import timedelta

from b24app import context
from b24app.appointments.question import follow_stage
from b24app.bitrix.errors import PortalUnavailable
from b24app.bitrix.errors import RateLimited
from b24app.context import Services
from b24app.event_queue import enqueue_once
from b24app.event_queue import FAILURE_TTL
from b24app.event_queue import QUEUE
from b24app.event_queue import retry

LEAD_EVENTS = ("ONCRMLEADADD", "ONCRMLEADUPDATE", "ONCRMLEADDELETE")
ACTIVITY_EVENTS = ("ONCRMACTIVITYADD",)
DEAL_EVENTS = ("ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMDEALDELETE")
BOOKING_EVENTS = ("ONBOOKINGADD", "ONBOOKINGUPDATE", "ONBOOKINGDELETE")
# Read in batches by b24app.leads.coalesce (a delete needs no read: processed at once).
COALESCED_EVENTS = {
    "ONCRMLEADADD": "lead",
    "ONCRMLEADUPDATE": "lead",
    "ONCRMDEALADD": "deal",
    "ONCRMDEALUPDATE": "deal",
}
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def event_job_id(member_id: str, event: str, entity_id: int, ts: int) -> str:
    """The deterministic RQ job id of one delivery (RQ ids allow ``[A-Za-z0-9_-]`` only)."""
    return _UNSAFE.sub("_", f"evt-{member_id}-{event}-{entity_id}-{ts}")


def enqueue_event(services: Services, member_id: str, event: str, entity_id: int, ts: int) -> bool:
    """Queue the processing of one delivery; False if the same delivery is already queued."""
    return enqueue_once(
        services.queue(QUEUE),
        process_event,
        member_id,
        event,
        entity_id,
        ts,
        job_id=event_job_id(member_id, event, entity_id, ts),
        result_ttl=0,
        failure_ttl=FAILURE_TTL,
        retry=retry(),
    )


def process_event(member_id: str, event: str, entity_id: int, ts: int = 0) -> str:
    """RQ job: record what an event says happened (``ts`` only makes the job id unique).

    A portal that needs re-authorisation (revoked grant) or was uninstalled ends the job
    cleanly: retrying cannot help until the admin opens the app again.
    """
    from b24app.appointments.routes import follow_date_field
    from b24app.leads.intake import process
    from b24app.leads.intake import process_activity
    from b24app.leads.kinds import DEAL
    from b24app.leads.kinds import LEAD

    services = context.current()
    try:
        if event in COALESCED_EVENTS and services.settings.rest_coalesce:
            from b24app.leads.coalesce import submit

            # Waiting events of the portal are read together, 25 items per request.
            kind = COALESCED_EVENTS[event]
            outcome = submit(services, member_id, kind, entity_id)
            follow_date_field(services, member_id, kind, entity_id)
            follow_stage(services, member_id, kind, entity_id)
            return outcome
        if event in LEAD_EVENTS or event in DEAL_EVENTS:
            entity_kind = LEAD if event in LEAD_EVENTS else DEAL
            deleted = event in ("ONCRMLEADDELETE", "ONCRMDEALDELETE")
            outcome = process(entity_kind, services, member_id, entity_id, deleted=deleted)
            follow_date_field(services, member_id, entity_kind.name, entity_id, deleted=deleted)
            follow_stage(services, member_id, entity_kind.name, entity_id)
            return outcome
        if event in ACTIVITY_EVENTS:
            return process_activity(services, member_id, entity_id)
        if event in BOOKING_EVENTS:
            from b24app.appointments.booking import process_booking

            return process_booking(
                services, member_id, entity_id, claimed_deleted=event == "ONBOOKINGDELETE"
            )
    except PortalUnavailable:
        return "portal_unavailable"
    except RateLimited as exc:
        # A method blocked for minutes (429 OPERATION_TIME_LIMIT) would exhaust the RQ
        # retries (~2.5 min); come back when Bitrix24 says the budget is free again.
        delay = max(float(exc.retry_after or 60), 1.0)
        services.queue("events").enqueue_in(
            timedelta(seconds=delay), process_event, member_id, event, entity_id, ts,
            result_ttl=0, failure_ttl=FAILURE_TTL, retry=retry(),
        )  # fmt: skip
        return "deferred"
    raise ValueError(f"unexpected event {event}")


def backfill_job(member_id: str) -> int:
    """RQ job (``bulk`` queue): import the portal's existing leads; see
    :func:`b24app.leads.backfill.backfill_portal`."""
    from b24app.leads.backfill import backfill_portal

    return backfill_portal(member_id)


def enqueue_backfill(services: Services, member_id: str) -> bool:
    """Queue the install-time backfill once per portal (False if one is waiting or running)."""
    return enqueue_once(
        services.queue("bulk"),
        backfill_job,
        member_id,
        job_id=_UNSAFE.sub("_", f"backfill-{member_id}"),
        job_timeout=6 * 3600,
        result_ttl=0,
        failure_ttl=FAILURE_TTL,
        retry=retry(),
    )


def resume_unfinished_backfills() -> int:
    """Periodic job: queue again every backfill that stopped before the end (a worker killed
    mid-import, retries exhausted); returns how many were queued."""
    from sqlalchemy import select

    from b24app.leads.backfill import PHASE_DONE
    from b24app.storage.models import BackfillState
    from b24app.storage.models import Portal
    from b24app.storage.models import PortalStatus

    services = context.current()
    with services.db() as session:
        members = list(
            session.scalars(
                select(Portal.member_id)
                .join(BackfillState, BackfillState.portal_id == Portal.id)
                .where(BackfillState.phase != PHASE_DONE, Portal.status == PortalStatus.ACTIVE)
            )
        )
    return sum(1 for member_id in members if enqueue_backfill(services, member_id))
