"""REST methods of the emulated portal, one module per area, registered by name.

A method is ``fn(ctx) -> result``; list methods return :class:`ListResult` so the server can
add ``total``/``next`` to the envelope (or ``result_total``/``result_next`` inside a batch).
Methods run with the portal lock held; events they cause go to ``ctx.outbox`` and are
delivered after the lock is released.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import TYPE_CHECKING

from devportal.errors import admin_required

if TYPE_CHECKING:
    from devportal.portal import Portal


@dataclass
class ListResult:
    result: Any
    total: int | None = None
    next: int | None = None


def paged(
    ctx: Ctx, rows: list[Any], page: int = 50, wrap: Callable[[list[Any]], Any] | None = None
) -> ListResult:
    """One page of ``rows`` from the ``start`` param (Bitrix24's list paging: ``total``, and
    ``next`` while rows remain); ``wrap`` shapes the page (``{"booking": [...]}``)."""
    try:
        start = max(int(str(ctx.param("start") or 0)), 0)
    except ValueError:
        start = 0
    chunk = rows[start : start + page]
    following = start + page if start + page < len(rows) else None
    return ListResult(wrap(chunk) if wrap else chunk, total=len(rows), next=following)


@dataclass
class Ctx:
    """What a method sees: the portal, the calling user and the parsed params."""

    portal: Portal
    user_id: int
    params: dict[str, Any]
    outbox: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def param(self, *names: str, default: Any = None) -> Any:
        """First present param among ``names`` (Bitrix24 accepts several spellings)."""
        for name in names:
            if name in self.params:
                return self.params[name]
        lowered = {str(k).lower(): v for k, v in self.params.items()}
        for name in names:
            if name.lower() in lowered:
                return lowered[name.lower()]
        return default

    def emit(self, event: str, data: dict[str, Any], user_id: int | None = -1) -> None:
        """Queue ``event`` to every bound handler (triggering user = the caller)."""
        self.outbox.extend(
            self.portal.bus.deliveries(event, data, self.user_id if user_id == -1 else user_id)
        )


@dataclass(frozen=True)
class Method:
    fn: Callable[[Ctx], Any]
    admin: bool = False


METHODS: dict[str, Method] = {}


def method(
    name: str, *, admin: bool = False
) -> Callable[[Callable[[Ctx], Any]], Callable[[Ctx], Any]]:
    def register(fn: Callable[[Ctx], Any]) -> Callable[[Ctx], Any]:
        METHODS[name] = Method(fn, admin)
        return fn

    return register


def call(name: str, ctx: Ctx) -> Any:
    """Run method ``name`` (the caller has checked it exists)."""
    spec = METHODS[name]
    if spec.admin and not ctx.portal.people.is_admin(ctx.user_id):
        raise admin_required()
    return spec.fn(ctx)


def as_dict(value: Any) -> dict[str, Any]:
    """A params sub-object (JSON object, or a PHP form list that came out as a list)."""
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    return {}


def as_list(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return list(value.values())
    return [value]
