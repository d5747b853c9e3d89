"""``tasks.task.add`` / ``.get`` / ``.complete``, ``task.checklistitem.add`` / ``.getlist``
(state in :mod:`devportal.tasks`). Errors as Bitrix24's tasks answer them: ``ERROR_CORE``."""

from __future__ import annotations

from typing import Any

from devportal.errors import RestError
from devportal.rest import as_dict
from devportal.rest import as_list
from devportal.rest import Ctx
from devportal.rest import method
from devportal.tasks import update_event


def _task_id(ctx: Ctx, *names: str) -> int:
    raw = ctx.param(*names)
    try:
        task_id = int(str(raw))
    except ValueError:
        raise RestError(400, "ERROR_CORE", "Task id is required") from None
    if ctx.portal.tasks_area.task(task_id) is None:
        raise RestError(400, "ERROR_CORE", "TASKS_ERROR_EXCEPTION_#8; Action failed")
    return task_id


@method("tasks.task.add")
def task_add(ctx: Ctx) -> dict[str, Any]:
    fields = as_dict(ctx.param("fields"))
    if not fields.get("TITLE"):
        raise RestError(400, "ERROR_CORE", "Title is required")
    if not fields.get("RESPONSIBLE_ID"):
        raise RestError(400, "ERROR_CORE", "Responsible is required")
    portal = ctx.portal
    task_id = len(portal.people.tasks) + 1
    task = {
        "id": str(task_id),
        "title": str(fields["TITLE"]),
        "description": str(fields.get("DESCRIPTION") or ""),
        "responsibleId": str(fields["RESPONSIBLE_ID"]),
        "createdBy": str(fields.get("CREATED_BY") or ctx.user_id),
        "createdDate": portal.now_str(),
        "deadline": fields.get("DEADLINE"),
        "priority": str(fields.get("PRIORITY") or "1"),
        "status": "2",
        "groupId": str(fields.get("GROUP_ID") or "0"),
        "ufCrmTask": [str(x) for x in as_list(fields.get("UF_CRM_TASK"))],
        "auditors": [str(x) for x in as_list(fields.get("AUDITORS"))],
        "accomplices": [str(x) for x in as_list(fields.get("ACCOMPLICES"))],
    }
    portal.people.tasks.append(task)
    return {"task": task}


@method("tasks.task.get")
def task_get(ctx: Ctx) -> dict[str, Any]:
    task = ctx.portal.tasks_area.task(_task_id(ctx, "taskId", "id"))
    return {"task": dict(task or {})}


@method("tasks.task.complete")
def task_complete(ctx: Ctx) -> dict[str, Any]:
    task_id = _task_id(ctx, "taskId", "id")
    task = ctx.portal.tasks_area.close(task_id, ctx.user_id)
    ctx.emit("ONTASKUPDATE", update_event(task_id))
    return {"task": dict(task)}


@method("task.checklistitem.add")
def checklist_add(ctx: Ctx) -> int:
    task_id = _task_id(ctx, "TASKID", "taskId")
    fields = as_dict(ctx.param("FIELDS", "fields"))
    if not str(fields.get("TITLE") or "").strip():
        raise RestError(400, "ERROR_CORE", "TITLE is required")
    return ctx.portal.tasks_area.add_item(task_id, str(fields["TITLE"]), ctx.user_id)


@method("task.checklistitem.getlist")
def checklist_list(ctx: Ctx) -> list[dict[str, Any]]:
    return ctx.portal.tasks_area.items(_task_id(ctx, "TASKID", "taskId"))
