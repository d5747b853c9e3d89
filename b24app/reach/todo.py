"""The responsible manager's to-do as the last-resort channel (``crm.activity.todo.add``)."""

from __future__ import annotations

import datetime as dt

from b24app.bitrix.client import BitrixClient
from b24app.bitrix.errors import BitrixError
from b24app.reach import Delivery
from b24app.reach import error_code
from b24app.reach import is_transient

OWNER_TYPES = {"lead": 1, "deal": 2, "contact": 3, "company": 4}


def add_todo(
    client: BitrixClient,
    owner: tuple[str, int] | None,
    responsible: int,
    title: str,
    description: str,
    deadline: dt.datetime,
) -> Delivery:
    """A to-do on ``owner`` (type, id) for ``responsible``; ``deadline`` naive UTC."""
    if owner is None:
        return Delivery(False, error="no_crm_item")
    try:
        result = client.call(
            "crm.activity.todo.add",
            {
                "ownerTypeId": OWNER_TYPES[owner[0]],
                "ownerId": owner[1],
                "deadline": deadline.replace(tzinfo=dt.UTC).isoformat(),
                "title": title,
                "description": description,
                "responsibleId": responsible,
            },
        )
    except BitrixError as exc:
        if is_transient(exc):
            raise
        return Delivery(False, error=error_code(exc))
    return Delivery(True, detail=str((result or {}).get("id", ""))[:64])
