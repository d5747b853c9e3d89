"""Chained list pages: up to ``MAX_BATCH`` pages of one list method in one ``batch`` request,
each page asking for the rows after the last ID of the page before it (``filter >ID`` with
``$result[p0][49][ID]`` and ``start=-1``, Bitrix24's fast paging). Used by the lead and deal
backfills (:mod:`b24app.leads.backfill`: leads and deals)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from b24app.bitrix.client import PAGE_SIZE
from b24app.bitrix.errors import from_envelope


def page_rows(value: Any, items_key: str | None = None) -> list[dict[str, Any]]:
    """The rows of one list page: a list, a PHP-indexed object or (``items_key``) the list
    under that key; anything but a dict row is dropped."""
    if items_key is not None and isinstance(value, dict):
        value = value.get(items_key)
    if isinstance(value, dict):
        value = list(value.values())
    return [r for r in value if isinstance(r, dict)] if isinstance(value, list) else []


def chain_rows(
    answer_results: Mapping[str, Any],
    answer_errors: Mapping[str, Any],
    prefix: str,
    pages: int,
    last: int,
    items_key: str | None,
    method: str,
) -> tuple[list[dict[str, Any]], bool]:
    """Rows of one chain of pages (``<prefix>0``…) read after ``last``, and whether the chain
    reached the end. A failed first page raises; a later failed page ends the chain there (the
    next round restarts it from the last row seen)."""
    rows: list[dict[str, Any]] = []
    for k in range(pages):
        cmd = f"{prefix}{k}"
        if cmd in answer_errors:
            if k == 0:
                raise from_envelope(answer_errors[cmd], None, method)
            return rows, False  # the next round restarts the chain from the last row seen
        page = page_rows(answer_results.get(cmd), items_key)
        fresh = [r for r in page if int(r["ID"]) > last]
        rows.extend(fresh)
        if fresh:
            last = int(fresh[-1]["ID"])
        if len(page) < PAGE_SIZE:
            return rows, True
    return rows, False
