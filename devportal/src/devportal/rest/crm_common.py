"""Helpers shared by the lead and deal REST methods (:mod:`.crm_lead`, :mod:`.crm_deal`,
:mod:`.crm_item`, :mod:`.crm_misc`); registers no method."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

from devportal.errors import item_not_found
from devportal.query import parse_filter
from devportal.query import parse_order
from devportal.query import parse_start
from devportal.query import select_page
from devportal.rest import as_dict
from devportal.rest import as_list
from devportal.rest import Ctx
from devportal.rest import ListResult


def select_fields(
    row: dict[str, Any], select: list[str], ufs: list[str], standard: Sequence[str]
) -> dict[str, Any]:
    """crm.lead/deal.list select: default/``*`` = standard fields, ``UF_*`` = user fields,
    other fields (e.g. lead multifields) only when named."""
    names: list[str] = []
    if not select or "*" in select:
        names.extend(standard)
    if "UF_*" in select:
        names.extend(ufs)
    names.extend(n for n in select if n not in ("*", "UF_*") and n not in names)
    return {n: row.get(n) for n in names if n in row or n in standard or n in ufs}


def original_uf_names(ctx: Ctx) -> bool:
    """crm.item.*: ``useOriginalUfNames=Y`` keeps ``UF_CRM_…`` names."""
    return str(ctx.param("useOriginalUfNames") or "N").upper() == "Y"


def item_id(ctx: Ctx) -> int:
    """crm.item.*: the ``id`` parameter (an unreadable one is "not found")."""
    try:
        return int(str(ctx.param("id")))
    except (TypeError, ValueError):
        raise item_not_found() from None


def stage_history_list(
    ctx: Ctx, ids: Sequence[int], get: Callable[[int], dict[str, Any] | None]
) -> ListResult:
    """crm.stagehistory.list over one entity's history rows."""
    portal = ctx.portal
    page = select_page(
        ids, get,
        parse_filter(as_dict(ctx.param("filter"))), parse_order(as_dict(ctx.param("order"))),
        parse_start(ctx.param("start")), tz=portal.tz,
    )  # fmt: skip
    select = [str(s) for s in as_list(ctx.param("select"))]
    rows = [{k: v for k, v in r.items() if not select or k in select} for r in page.rows]
    return ListResult({"items": rows}, page.total, page.next)


def uf_label(uf: dict[str, Any], lang: str) -> str:
    """A user field's ``listLabel`` as ``crm.*.fields`` answers it: the label in the portal's
    language (labels are posted per language), else the field's name."""
    label = uf.get("LIST_COLUMN_LABEL") or uf.get("EDIT_FORM_LABEL")
    if isinstance(label, dict):
        label = label.get(lang) or next(iter(label.values()), None)
    return str(label or uf["FIELD_NAME"])
