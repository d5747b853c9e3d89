"""Tasks of an emulated portal (``tasks.task.*``, ``task.checklistitem.*``; the REST side is
devportal/rest/tasks.py): the tasks the app created, their checklists, and what the person
they were given to does in the task's card — tick a checklist item, complete the task.

Each action of a person fires ``ONTASKUPDATE`` as Bitrix24 documents it
(``api-reference/tasks/events-tasks/on-task-update.md``): ``data[FIELDS_BEFORE][ID]``,
``data[FIELDS_AFTER][ID]`` and ``IS_ACCESSIBLE_*`` only, so a handler reads the task back.
Status codes: 2 pending, 5 completed (``tasks.task.complete`` answers ``status: "5"``).
"""

from __future__ import annotations

import copy
from typing import Any
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devportal.portal import Portal

COMPLETED = "5"


def update_event(task_id: int) -> dict[str, Any]:
    """``ONTASKUPDATE``'s ``data``: the task's id and nothing else."""
    return {
        "FIELDS_BEFORE": {"ID": str(task_id)},
        "FIELDS_AFTER": {"ID": str(task_id)},
        "IS_ACCESSIBLE_BEFORE": "undefined",
        "IS_ACCESSIBLE_AFTER": "undefined",
    }


class Tasks:
    """The tasks (rows kept in ``portal.people.tasks``, REST shape) and their checklists."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal
        self.checklists: dict[int, list[dict[str, Any]]] = {}

    def task(self, task_id: int) -> dict[str, Any] | None:
        for row in self.portal.people.tasks:
            if int(row["id"]) == task_id:
                return row
        return None

    def add_item(self, task_id: int, title: str, by_user: int) -> int:
        items = self.checklists.setdefault(task_id, [])
        item_id = 1 + sum(len(v) for v in self.checklists.values()) + 100 * task_id
        items.append({
            "ID": str(item_id), "TASK_ID": str(task_id), "PARENT_ID": 0,
            "CREATED_BY": str(by_user), "TITLE": title, "SORT_INDEX": str(len(items)),
            "IS_COMPLETE": "N", "IS_IMPORTANT": "N", "TOGGLED_BY": None, "TOGGLED_DATE": "",
            "MEMBERS": [], "ATTACHMENTS": [],
        })  # fmt: skip
        return item_id

    def items(self, task_id: int) -> list[dict[str, Any]]:
        return copy.deepcopy(self.checklists.get(task_id) or [])

    def close(self, task_id: int, by_user: int) -> dict[str, Any]:
        """Mark the task completed (the caller holds the lock and emits the event)."""
        row = self.task(task_id)
        if row is None:
            raise KeyError(task_id)
        row.update(status=COMPLETED, closedBy=str(by_user), closedDate=self.portal.now_str())
        return row

    # -- what the person does in the task's card ----------------------------------------------

    def tick(self, task_id: int, title: str, *, by_user: int) -> None:
        """Tick the checklist item titled ``title``; fires ``ONTASKUPDATE``."""
        p = self.portal
        with p.lock:
            (item,) = [i for i in self.checklists.get(task_id) or [] if i["TITLE"] == title]
            item.update(IS_COMPLETE="Y", TOGGLED_BY=str(by_user), TOGGLED_DATE=p.now_str())
            out = p.bus.deliveries("ONTASKUPDATE", update_event(task_id), by_user)
        p.bus.send(out)

    def complete_task(self, task_id: int, *, by_user: int) -> None:
        """Complete the task in its card; fires ``ONTASKUPDATE``."""
        p = self.portal
        with p.lock:
            self.close(task_id, by_user)
            out = p.bus.deliveries("ONTASKUPDATE", update_event(task_id), by_user)
        p.bus.send(out)
