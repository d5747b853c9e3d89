"""``im.notify.system.add``, ``im.notify.personal.add`` (tasks: devportal/rest/tasks.py)."""

from __future__ import annotations

from devportal.errors import RestError
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
