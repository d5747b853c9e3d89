"""``b24app export --webhook URL``: a portal's CRM data to CSV files, for an admin.

Works from an **incoming webhook** alone (Bitrix24 → Developer resources → Incoming webhook,
``https://<portal>/rest/<user_id>/<code>/``): no app install, no Redis, no database. The
transport is fast-bitrix24, the tool made for exactly this: ``get_all`` reads the first page
for the ``total``, then fetches every remaining page in ``batch`` requests of 50 pages each
(20,000 leads: 9 HTTP requests), under its own 2 req/s leaky bucket. The app's own
``BitrixClient`` stays the transport for everything else: it is bound to OAuth tokens that
rotate under a cross-process lock, and its rate limiter is shared by every process in Redis.

The webhook URL is a credential: it is never logged or written to the files.
"""

from __future__ import annotations

import asyncio
import csv
import logging
import threading
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fast_bitrix24 import BitrixAsync

from b24app.kpi.csv import _cell


@dataclass(frozen=True)
class Entity:
    method: str
    params: dict[str, Any]
    columns: tuple[str, ...]


LEAD_COLUMNS = (
    "ID", "TITLE", "STATUS_ID", "SOURCE_ID", "SOURCE_DESCRIPTION", "ASSIGNED_BY_ID",
    "DATE_CREATE", "DATE_MODIFY", "OPPORTUNITY", "CURRENCY_ID", "UTM_SOURCE", "UTM_CAMPAIGN",
)  # fmt: skip

ENTITIES: dict[str, Entity] = {
    "leads": Entity("crm.lead.list", {"select": list(LEAD_COLUMNS)}, LEAD_COLUMNS),
    "stage_history": Entity(
        "crm.stagehistory.list",
        {"entityTypeId": 1},
        ("ID", "OWNER_ID", "CREATED_TIME", "STATUS_ID", "STATUS_SEMANTIC_ID", "TYPE_ID"),
    ),
    "statuses": Entity(
        "crm.status.list", {}, ("ENTITY_ID", "STATUS_ID", "NAME", "SORT", "SEMANTICS")
    ),
    "users": Entity("user.get", {}, ("ID", "NAME", "LAST_NAME", "ACTIVE", "WORK_POSITION")),
}


class ExportError(RuntimeError):
    """The portal refused or the webhook is not valid; the message is safe to show."""


def _in_own_loop(fn: Callable[..., Any], *args: Any) -> Any:
    """Run fast-bitrix24's coroutine in a thread with its own event loop: its synchronous
    ``Bitrix`` wrapper returns a bare Task when the caller's thread already runs a loop."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(fn(*args))
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="fast-bitrix24")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _rows(items: Iterable[dict[str, Any]], columns: tuple[str, ...]) -> Iterable[list[Any]]:
    for item in items:
        row = []
        for column in columns:
            value = item.get(column)
            if isinstance(value, list | tuple):
                value = ",".join(str(v) for v in value)
            row.append("" if value is None else value)
        yield row


def export(
    webhook: str,
    out_dir: Path,
    entities: Iterable[str] = tuple(ENTITIES),
    *,
    client_factory: Callable[[str], Any] | None = None,
) -> dict[str, int]:
    """Write ``<entity>.csv`` (semicolon, UTF-8 with BOM, formula-safe) for each entity into
    ``out_dir``; returns the row count of each."""
    logging.getLogger("fast_bitrix24").setLevel(logging.WARNING)  # its DEBUG has the URL
    try:
        client = (client_factory or (lambda url: BitrixAsync(url, verbose=False)))(webhook)
    except (ValueError, TypeError) as exc:
        raise ExportError(f"not a webhook URL: {exc}") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for name in entities:
        entity = ENTITIES[name]
        try:
            items = _in_own_loop(client.get_all, entity.method, entity.params)
        except Exception as exc:  # aiohttp / server errors: name the kind, never the URL
            raise ExportError(f"{entity.method} failed: {type(exc).__name__}") from None
        if isinstance(items, dict):  # a method answering one object
            items = [items]
        path = out_dir / f"{name}.csv"
        with path.open("w", encoding="utf-8", newline="") as fh:
            fh.write("\ufeff")
            writer = csv.writer(fh, delimiter=";", lineterminator="\r\n")
            writer.writerow(entity.columns)
            n = 0
            for row in _rows(items, entity.columns):
                writer.writerow([_cell(v, "en") for v in row])
                n += 1
        counts[name] = n
    return counts
