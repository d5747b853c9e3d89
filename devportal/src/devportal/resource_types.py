"""Booking's resource types of an emulated portal, with the client notifications Bitrix24 Booking
sends by itself (``booking.v1.resourceType.*``, ``api-reference/booking/resource/resource-type``).

Each type says whether Booking sends the client its own booking info, confirmation request,
reminder, "you are late" message and feedback request (``is*NotificationOn``, ``Y``/``N``, all
on by default as ``booking-v1-resourcetype-add.md`` documents), with the template types and the
delays. Answers use the spelling of the docs' JSON examples (``confirmationNotificationDelay``,
``reminderNotificationDelay``…); ``add``/``update`` also take the field tables' spelling
(``confirmationDelay``, ``reminderDelay``…), since the pages print both.

Assumptions where the docs are silent: a resource prints the same notification fields as its
type (``booking-v1-resource-list.md``); here a resource's fields mirror its type's current ones
(:func:`overlay`), so changing a type changes what every resource of it says. Whether Booking's
messages are sent for bookings created through REST is [silent]; the emulator sends nothing
itself, it only reports the settings.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from dataclasses import field
from typing import Any

FLAGS = (
    "isInfoNotificationOn",
    "isConfirmationNotificationOn",
    "isReminderNotificationOn",
    "isDelayedNotificationOn",
    "isFeedbackNotificationOn",
)
# table spelling -> the examples' spelling, which the answers use
DELAY_ALIASES = {
    "infoDelay": "infoNotificationDelay",
    "confirmationDelay": "confirmationNotificationDelay",
    "confirmationRepetitions": "confirmationNotificationRepetitions",
    "confirmationRepetitionsInterval": "confirmationNotificationRepetitionsInterval",
    "reminderDelay": "reminderNotificationDelay",
    "delayedDelay": "delayedNotificationDelay",
}
# booking-v1-resourcetype-add.md defaults
TYPE_DEFAULTS: dict[str, Any] = {
    "isInfoNotificationOn": "Y", "templateTypeInfo": "inanimate", "infoNotificationDelay": 300,
    "isConfirmationNotificationOn": "Y", "templateTypeConfirmation": "inanimate",
    "confirmationNotificationDelay": 86400, "confirmationNotificationRepetitions": 0,
    "confirmationNotificationRepetitionsInterval": 0, "confirmationCounterDelay": 7200,
    "isReminderNotificationOn": "Y", "templateTypeReminder": "base",
    "reminderNotificationDelay": -1, "isFeedbackNotificationOn": "Y",
    "templateTypeFeedback": "inanimate", "isDelayedNotificationOn": "Y",
    "templateTypeDelayed": "inanimate", "delayedNotificationDelay": 300,
    "delayedCounterDelay": 7200,
}  # fmt: skip
NOTIFICATION_KEYS = tuple(TYPE_DEFAULTS)
DEFAULT_TYPES: list[dict[str, Any]] = [
    {"id": 1, "code": "expert", "name": "Мастера", "moduleId": "booking"},
    {"id": 2, "code": "room", "name": "Кабинеты", "moduleId": "booking"},
]


def _animate(row: dict[str, Any]) -> dict[str, Any]:
    """The demo's specialists use the documented "animate" templates."""
    if row["code"] != "expert":
        return row
    animate = {k: "animate" for k in row if k.startswith("templateType")}
    return {**row, **animate, "templateTypeReminder": "base"}


@dataclass
class ResourceTypes:
    """Resource types by id, in the REST shape of ``resourceType.get``."""

    types: dict[int, dict[str, Any]] = field(
        default_factory=lambda: {
            int(t["id"]): _animate({**t, **TYPE_DEFAULTS}) for t in DEFAULT_TYPES
        }
    )
    next_id: int = 3

    def add(self, fields: dict[str, Any]) -> int:
        type_id = self.next_id
        self.next_id += 1
        self.types[type_id] = {"id": type_id, "moduleId": "booking", **TYPE_DEFAULTS}
        self.update(type_id, fields)
        return type_id

    def update(self, type_id: int, fields: dict[str, Any]) -> None:
        row = self.types[type_id]
        for key, value in fields.items():
            key = DELAY_ALIASES.get(str(key), str(key))
            if key in ("name", "code") or key in NOTIFICATION_KEYS:
                row[key] = value
        for flag in FLAGS:
            row[flag] = "Y" if str(row.get(flag) or "Y").upper() == "Y" else "N"

    def switch(self, type_id: int, **flags: bool) -> None:
        """What an admin does in Booking's settings: ``switch(1, isReminderNotificationOn=False)``."""
        self.update(type_id, {k: "Y" if v else "N" for k, v in flags.items()})

    def get(self, type_id: int) -> dict[str, Any] | None:
        row = self.types.get(type_id)
        if row is None:
            return None
        return {k: copy.deepcopy(v) for k, v in row.items() if k != "moduleId"}

    def overlay(self, resource: dict[str, Any]) -> dict[str, Any]:
        """A resource as REST prints it: its notification fields are its type's."""
        kind = self.types.get(int(resource.get("typeId") or 0)) or TYPE_DEFAULTS
        return {**resource, **{k: kind[k] for k in NOTIFICATION_KEYS if k in kind}}
