"""Schema fields that refuse an oversized list or mapping before reading its items.

marshmallow's ``validate.Length`` on a ``List`` runs only after every item was deserialized
and validated, so 100 000 bad items cost 100 000 checks and as many error lines on the page.
These fields count first: one error naming the field, and nothing else is looked at.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import fields
from marshmallow import ValidationError


def _too_many(limit: int) -> ValidationError:
    return ValidationError(f"at most {limit} items")


class BoundedList(fields.List):
    """A ``fields.List`` of at most ``max_items`` items."""

    def __init__(self, cls_or_instance: Any, *, max_items: int, **kwargs: Any) -> None:
        super().__init__(cls_or_instance, **kwargs)
        self.max_items = max_items

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, (list, tuple)) and len(value) > self.max_items:
            raise _too_many(self.max_items)
        return super()._deserialize(value, attr, data, **kwargs)


class BoundedDict(fields.Dict):
    """A ``fields.Dict`` of at most ``max_items`` keys."""

    def __init__(self, *, max_items: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_items = max_items

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, Mapping) and len(value) > self.max_items:
            raise _too_many(self.max_items)
        return super()._deserialize(value, attr, data, **kwargs)


def clamped(value: Any, default: int, bounds: tuple[int, int]) -> int:
    """An integer setting within ``bounds``; ``default`` when unset or not a number (a
    document stored before its schema checked the field)."""
    try:
        number = int(value or default)
    except (TypeError, ValueError):
        number = default
    return min(max(number, bounds[0]), bounds[1])
