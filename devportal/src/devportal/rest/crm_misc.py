"""``crm.stagehistory.list``, ``crm.timeline.comment.add``, ``crm.activity.*``."""

from __future__ import annotations

import time
from typing import Any
from typing import TYPE_CHECKING

from devportal.errors import RestError
from devportal.leads import as_str
from devportal.query import parse_filter
from devportal.query import parse_order
from devportal.query import parse_start
from devportal.query import select_page
from devportal.rest import as_dict
from devportal.rest import as_list
from devportal.rest import crm_deal
from devportal.rest import Ctx
from devportal.rest import ListResult
from devportal.rest import method
from devportal.rest.crm_common import stage_history_list

if TYPE_CHECKING:
    from devportal.portal import Portal

ENTITY_TYPES = {"lead": 1, "deal": 2, "contact": 3, "company": 4}


@method("crm.stagehistory.list")
def stagehistory_list(ctx: Ctx) -> ListResult:
    """Lead stage history (entityTypeId 1; deals, 2, in :mod:`.crm_deal`). IDs are numbers;
    the docs show no sample."""
    if str(ctx.param("entityTypeId")) == "2":
        return crm_deal.stagehistory_list(ctx)
    if str(ctx.param("entityTypeId")) != "1":
        raise RestError(400, "ERROR_ARGUMENT", "entityTypeId: only leads (1) are emulated")
    return stage_history_list(
        ctx, ctx.portal.crm.stage_history_ids, ctx.portal.crm.stage_history_by_id.get
    )


@method("crm.timeline.comment.add")
def timeline_comment_add(ctx: Ctx) -> int:
    fields = as_dict(ctx.param("fields"))
    missing = [k for k in ("ENTITY_ID", "ENTITY_TYPE", "COMMENT") if not fields.get(k)]
    if missing:
        raise RestError(400, "ERROR_ARGUMENT", f"Required fields: {', '.join(missing)}")
    portal = ctx.portal
    comment_id = len(portal.crm.timeline_comments) + 1
    portal.crm.timeline_comments.append(
        {
            "ID": comment_id,
            "ENTITY_ID": int(str(fields["ENTITY_ID"])),
            "ENTITY_TYPE": str(fields["ENTITY_TYPE"]).lower(),
            "COMMENT": str(fields["COMMENT"]),
            "AUTHOR_ID": int(str(fields.get("AUTHOR_ID") or ctx.user_id)),
            "CREATED": portal.now_str(),
        }
    )
    return comment_id


def create_activity(
    portal: Portal, fields: dict[str, Any], user_id: int, ts: float | None = None
) -> int:
    """Store an activity (lock held) and touch the owner lead's last-activity fields."""
    ts = time.time() if ts is None else ts
    act_id = portal.crm.next_activity_id
    portal.crm.next_activity_id += 1
    now = portal.now_str(ts)
    row: dict[str, Any] = {
        "ID": str(act_id),
        "OWNER_TYPE_ID": "1",
        "OWNER_ID": None,
        "TYPE_ID": "2",
        "PROVIDER_ID": "",
        "PROVIDER_TYPE_ID": "",
        "DIRECTION": "0",
        "SUBJECT": "",
        "DESCRIPTION": "",
        "COMPLETED": "N",
        "RESPONSIBLE_ID": str(user_id),
        "AUTHOR_ID": str(user_id),
        "CREATED": now,
        "LAST_UPDATED": now,
        "START_TIME": now,
        "END_TIME": now,
        "DEADLINE": now,
        "COMMUNICATIONS": [],
    }
    for key, value in fields.items():
        row[str(key)] = value if key == "COMMUNICATIONS" else as_str(value)
    if not row["PROVIDER_ID"]:
        row["PROVIDER_ID"] = {"2": "VOXIMPLANT_CALL", "4": "CRM_EMAIL", "1": "CRM_MEETING"}.get(
            row["TYPE_ID"], "CRM_TODO"
        )
    portal.crm.activities[act_id] = row
    portal.crm.activity_ids.append(act_id)
    if row["OWNER_TYPE_ID"] == "1" and row["OWNER_ID"]:
        lead = portal.crm.leads.get(int(row["OWNER_ID"]))
        if lead is not None:
            lead["LAST_ACTIVITY_TIME"] = now
            lead["LAST_ACTIVITY_BY"] = str(user_id)
    return act_id


@method("crm.activity.add")
def activity_add(ctx: Ctx) -> int:
    fields = as_dict(ctx.param("fields"))
    for key in ("OWNER_TYPE_ID", "OWNER_ID", "TYPE_ID"):
        if not fields.get(key):
            raise RestError(400, "ERROR_ARGUMENT", f"The field {key} is required")
    act_id = create_activity(ctx.portal, fields, ctx.user_id)
    ctx.emit("ONCRMACTIVITYADD", {"FIELDS": {"ID": str(act_id)}})
    return act_id


@method("crm.activity.get")
def activity_get(ctx: Ctx) -> dict[str, Any]:
    row = ctx.portal.crm.activities.get(int(str(ctx.param("id", "ID") or 0)))
    if row is None:
        raise RestError(400, "", "Not found")
    return dict(row)


@method("crm.activity.list")
def activity_list(ctx: Ctx) -> ListResult:
    portal = ctx.portal
    page = select_page(
        portal.crm.activity_ids, portal.crm.activities.get,
        parse_filter(as_dict(ctx.param("filter"))), parse_order(as_dict(ctx.param("order"))),
        parse_start(ctx.param("start")), tz=portal.tz,
    )  # fmt: skip
    select = [str(s) for s in as_list(ctx.param("select"))]
    rows = [
        {k: v for k, v in r.items() if not select or "*" in select or k in select or k == "ID"}
        for r in page.rows
    ]
    return ListResult(rows, page.total, page.next)


@method("crm.activity.todo.add")
def todo_add(ctx: Ctx) -> dict[str, int]:
    owner_type = ctx.param("ownerTypeId")
    owner_id = ctx.param("ownerId")
    deadline = ctx.param("deadline")
    if not owner_type or not owner_id or not deadline:
        raise RestError(400, "ERROR_ARGUMENT", "ownerTypeId, ownerId and deadline are required")
    fields = {
        "OWNER_TYPE_ID": owner_type,
        "OWNER_ID": owner_id,
        "TYPE_ID": 6,
        "PROVIDER_ID": "CRM_TODO",
        "PROVIDER_TYPE_ID": "TODO",
        "SUBJECT": ctx.param("title") or "",
        "DESCRIPTION": ctx.param("description") or "",
        "DEADLINE": deadline,
        "RESPONSIBLE_ID": ctx.param("responsibleId") or ctx.user_id,
        "PING_OFFSETS": ",".join(str(x) for x in as_list(ctx.param("pingOffsets"))),
        "COLOR_ID": ctx.param("colorId") or "",
    }
    act_id = create_activity(ctx.portal, fields, ctx.user_id)
    ctx.emit("ONCRMACTIVITYADD", {"FIELDS": {"ID": str(act_id)}})
    return {"id": act_id}
