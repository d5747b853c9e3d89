"""The people of an emulated portal: users, departments, who may read which CRM items, and
what the app addressed to them (notifications, tasks)."""

from __future__ import annotations

import threading
from typing import Any

from devportal import defaults


class People:
    """Users and departments (``user.*``, ``department.*``, ``user.admin``), CRM read grants,
    and the notifications and tasks the app sent (``im.notify``, ``tasks.task.add``)."""

    def __init__(
        self,
        lock: threading.RLock,
        admin_user_id: int,
        users: list[dict[str, Any]] | None,
        departments: list[dict[str, Any]] | None,
    ) -> None:
        self.lock = lock
        self.admin_user_id = admin_user_id
        self.users: dict[int, dict[str, Any]] = {}
        for raw in users if users is not None else defaults.DEFAULT_USERS:
            self.add_user(**raw)
        if admin_user_id in self.users:
            self.users[admin_user_id]["ADMIN"] = True
        # CRM read permission beyond one's own items: user id -> {"lead", "deal"} (see may_read)
        self.crm_read_all: dict[int, set[str]] = {}
        self.departments: dict[int, dict[str, Any]] = {
            int(d["ID"]): dict(d)
            for d in (departments if departments is not None else defaults.DEFAULT_DEPARTMENTS)
        }
        self.notifications: list[dict[str, Any]] = []
        self.tasks: list[dict[str, Any]] = []

    def add_user(self, ID: int, **fields: Any) -> dict[str, Any]:
        user = {
            "ID": str(ID),
            "ACTIVE": fields.pop("ACTIVE", True),
            "NAME": "",
            "LAST_NAME": "",
            "EMAIL": "",
            "WORK_POSITION": "",
            "PERSONAL_GENDER": "",
            "TIME_ZONE": "",
            "UF_DEPARTMENT": [],
            "USER_TYPE": "employee",
            "ADMIN": False,
        }
        user.update(fields)
        with self.lock:
            self.users[int(ID)] = user
        return user

    def is_admin(self, user_id: int) -> bool:
        user = self.users.get(user_id)
        return bool(user and user.get("ADMIN"))

    def grant_crm_read(self, user_id: int, entity: str) -> None:
        """Let ``user_id`` read every ``entity`` ("lead" / "deal"), not only their own."""
        with self.lock:
            self.crm_read_all.setdefault(user_id, set()).add(entity)

    def may_read(self, user_id: int, entity: str, row: dict[str, Any]) -> bool:
        """May ``user_id`` read this lead/deal row? Admins read all; others read the items they
        are responsible for (``ASSIGNED_BY_ID``) unless granted the entity (our model of a
        CRM role with "own items" read access; see the package docstring)."""
        if self.is_admin(user_id) or entity in self.crm_read_all.get(user_id, ()):
            return True
        return str(row.get("ASSIGNED_BY_ID") or "") == str(user_id)
