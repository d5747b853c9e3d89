"""What the lead and the deal intake share: reading one CRM item with its stage history in a
``batch``, the per-journey lock, and keeping the journey's SLA timers in step.

A journey's lock is keyed by its journey key (a lead id, or minus a deal id:
:mod:`b24app.leads.journeys`); the fetch happens inside it, so of two jobs for one journey the
later one always records the later state.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from b24app.bitrix.client import BatchResult
from b24app.bitrix.errors import NotFound
from b24app.context import Services
from b24app.sla.engine import sync_lead_timers
from b24app.timers.engine import cancel_lead_timers

LOCK_TIMEOUT = 120


def lead_lock_key(portal_id: int, lead_id: int) -> str:
    return f"b24app:lock:lead:{portal_id}:{lead_id}"


@contextmanager
def lead_lock(services: Services, portal_id: int, lead_id: int) -> Iterator[None]:
    """One worker at a time per lead (two events of one lead may be processed at once)."""
    with services.redis.lock(
        lead_lock_key(portal_id, lead_id),
        timeout=LOCK_TIMEOUT,
        blocking_timeout=LOCK_TIMEOUT,
    ):
        yield


def item_commands(
    entity_type_id: int, entity_id: int, item_key: str, history_key: str, select: list[str]
) -> dict[str, tuple[str, dict[str, Any]]]:
    """The ``batch`` commands that read one CRM item (lead 1, deal 2) and its stage history."""
    return {
        item_key: (
            "crm.item.get",
            {"entityTypeId": entity_type_id, "id": entity_id, "useOriginalUfNames": "Y"},
        ),
        history_key: (
            "crm.stagehistory.list",
            {
                "entityTypeId": entity_type_id,
                "filter": {"OWNER_ID": entity_id},
                "order": {"ID": "ASC"},
                "select": select,
            },
        ),
    }


def read_item(
    answer: BatchResult, item_key: str, history_key: str
) -> tuple[dict[str, Any], list[Any] | None] | None:
    """The answers to :func:`item_commands` → (raw item, raw history rows) or None if the
    item is gone; the rows are None when the history could not be read."""
    error = answer.error(item_key)
    if isinstance(error, NotFound):
        return None
    if error is not None:
        raise error
    body = answer.results.get(item_key)
    item = body.get("item") if isinstance(body, dict) and "item" in body else body
    if not isinstance(item, dict):
        raise ValueError("crm.item.get answered without an item")
    if history_key in answer.errors:
        return item, None
    raw = answer.results.get(history_key)
    found = raw.get("items") if isinstance(raw, dict) else raw
    return item, list(found or [])


def cancel_timers(services: Services, portal_id: int, lead_id: int) -> None:
    """Cancel a journey's SLA timers (it was deleted in the CRM)."""
    cancel_lead_timers(services, portal_id, lead_id)


def sync_timers(services: Services, portal_id: int, lead_id: int) -> None:
    """Bring a journey's SLA timers in line with its recorded state."""
    sync_lead_timers(services, portal_id, lead_id)
