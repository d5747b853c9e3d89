"""``im.notify.system.add``, ``im.notify.personal.add``, ``tasks.task.add``."""

from __future__ import annotations

from typing import Any

from devportal.errors import RestError
from devportal.rest import as_dict
from devportal.rest import as_list
from devportal.rest import Ctx
from devportal.rest import method


def _notify(ctx: Ctx, kind: str) -> int:
    user_id = ctx.param("USER_ID", "user_id")
    message = ctx.param("MESSAGE", "message")
    if not user_id or not message:
        raise RestError(400, "USER_ID_EMPTY" if not user_id else "MESSAGE_EMPTY",
                        "Recipient or message is empty")  # fmt: skip
    portal = ctx.portal
    if int(str(user_id)) not in portal.people.users:
        raise RestError(400, "USER_ID_EMPTY", "Recipient not found")
    tag = ctx.param("TAG", "tag")
    if tag:
        # A new notification with the same TAG removes the older ones (documented).
        for old in portal.people.notifications:
            if old["tag"] == tag:
                old["removed"] = True
    note = {
        "id": len(portal.people.notifications) + 1,
        "type": kind,
        "user_id": int(str(user_id)),
        "from_user_id": ctx.user_id if kind == "personal" else None,
        "message": str(message),
        "message_out": ctx.param("MESSAGE_OUT"),
        "tag": tag,
        "sub_tag": ctx.param("SUB_TAG"),
        "attach": ctx.param("ATTACH"),
        "removed": False,
        "created": portal.now_str(),
    }
    portal.people.notifications.append(note)
    return int(note["id"])


@method("im.notify.system.add")
def notify_system(ctx: Ctx) -> int:
    return _notify(ctx, "system")


@method("im.notify.personal.add")
def notify_personal(ctx: Ctx) -> int:
    return _notify(ctx, "personal")


@method("im.notify")
def notify_legacy(ctx: Ctx) -> int:
    return _notify(ctx, "system" if str(ctx.param("type")) == "SYSTEM" else "personal")


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
