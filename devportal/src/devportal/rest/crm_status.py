"""``crm.status.*``: lead stages (``ENTITY_ID=STATUS``) and sources (``SOURCE``).

``SEMANTICS`` is computed from ``SORT`` relative to the single success stage: the success
stage is ``S``, anything sorted after it ``F``, the rest ``null`` (in progress) — how the
Bitrix24 stage editor arranges the pipeline.
"""

from __future__ import annotations

from typing import Any

from devportal.errors import RestError
from devportal.query import matches
from devportal.query import parse_filter
from devportal.query import parse_order
from devportal.query import sort_key
from devportal.rest import as_dict
from devportal.rest import Ctx
from devportal.rest import ListResult
from devportal.rest import method

EXTRA = {None: "process", "S": "success", "F": "failure"}


def status_out(ctx: Ctx, row: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if not k.startswith("_")}
    if row["ENTITY_ID"] == "STATUS" or row["ENTITY_ID"].startswith("DEAL_STAGE"):
        sem = ctx.portal.crm.status_semantics(row["ENTITY_ID"], row["STATUS_ID"])
        out["SEMANTICS"] = sem
        # The deal "failure reason analysis" stage says "apology" (crm_status_list_DEAL_STAGE).
        extra = "apology" if str(row["STATUS_ID"]).endswith("APOLOGY") else EXTRA[sem]
        out["EXTRA"] = {"SEMANTICS": extra, "COLOR": row["COLOR"]}
    else:
        out["SEMANTICS"] = None
    return out


def _get(ctx: Ctx) -> dict[str, Any]:
    try:
        row = ctx.portal.crm.statuses.get(int(str(ctx.param("id", "ID"))))
    except ValueError:
        row = None
    if row is None:
        raise RestError(400, "ERROR_CORE", "Not found")
    return row


@method("crm.status.list")
def status_list(ctx: Ctx) -> ListResult:
    """Not paginated on real portals: every matching row, ordered by SORT by default."""
    conds = parse_filter(as_dict(ctx.param("filter", "FILTER")))
    rows = [status_out(ctx, r) for r in ctx.portal.crm.statuses.values()]
    rows = [r for r in rows if matches(r, conds)]
    order = parse_order(as_dict(ctx.param("order", "ORDER"))) or [("SORT", False)]
    for name, desc in reversed(order):
        rows.sort(key=lambda r, n=name: sort_key(r.get(n)), reverse=desc)  # type: ignore[misc]
    return ListResult(rows, len(rows), None)


@method("crm.status.get")
def status_get(ctx: Ctx) -> dict[str, Any]:
    return status_out(ctx, _get(ctx))


@method("crm.status.add", admin=True)
def status_add(ctx: Ctx) -> int:
    fields = as_dict(ctx.param("fields", "FIELDS"))
    entity = str(fields.get("ENTITY_ID") or "")
    status_id = str(fields.get("STATUS_ID") or "")
    if not entity or not status_id or not fields.get("NAME"):
        raise RestError(400, "ERROR_CORE", "ENTITY_ID, STATUS_ID and NAME are required")
    if any(
        r["ENTITY_ID"] == entity and r["STATUS_ID"] == status_id
        for r in ctx.portal.crm.statuses.values()
    ):
        raise RestError(400, "ERROR_CORE", "The status with this STATUS_ID already exists")
    row = ctx.portal.crm.add_status(
        entity, status_id, str(fields["NAME"]), int(fields.get("SORT") or 100),
        str(fields.get("COLOR") or ""), False,
    )  # fmt: skip
    return int(row["ID"])


@method("crm.status.update", admin=True)
def status_update(ctx: Ctx) -> bool:
    row = _get(ctx)
    fields = as_dict(ctx.param("fields", "FIELDS"))
    for key in ("NAME", "SORT", "COLOR"):
        if key in fields:
            row[key] = str(fields[key])
    return True


@method("crm.status.delete", admin=True)
def status_delete(ctx: Ctx) -> bool:
    row = _get(ctx)
    if row["SYSTEM"] == "Y":
        raise RestError(400, "ERROR_CORE", "Can't delete system status")
    del ctx.portal.crm.statuses[int(row["ID"])]
    return True


@method("crm.status.fields")
def status_fields(ctx: Ctx) -> dict[str, Any]:
    names = ("ID", "ENTITY_ID", "STATUS_ID", "NAME", "NAME_INIT", "SORT", "SYSTEM", "COLOR",
             "SEMANTICS", "CATEGORY_ID")  # fmt: skip
    return {
        n: {"type": "integer" if n in ("ID", "SORT", "CATEGORY_ID") else "string",
            "isRequired": n in ("ENTITY_ID", "STATUS_ID", "NAME"),
            "isReadOnly": n in ("ID", "NAME_INIT", "SYSTEM", "SEMANTICS"),
            "isImmutable": n in ("ENTITY_ID", "STATUS_ID"), "isMultiple": False,
            "isDynamic": False, "title": n}
        for n in names
    }  # fmt: skip


@method("crm.status.entity.types")
def status_entity_types(ctx: Ctx) -> list[dict[str, Any]]:
    return [
        {"ID": "STATUS", "NAME": "Lead statuses", "SEMANTIC_INFO": {}, "ENTITY_TYPE_ID": 1},
        {"ID": "SOURCE", "NAME": "Sources"},
    ]


@method("crm.status.entity.items")
def status_entity_items(ctx: Ctx) -> list[dict[str, Any]]:
    entity = str(ctx.param("entityId") or "")
    rows = sorted(
        (r for r in ctx.portal.crm.statuses.values() if r["ENTITY_ID"] == entity),
        key=lambda r: int(r["SORT"]),
    )
    return [{"NAME": r["NAME"], "SORT": int(r["SORT"]), "STATUS_ID": r["STATUS_ID"]} for r in rows]
