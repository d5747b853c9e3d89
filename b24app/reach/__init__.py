"""Channels that reach the client or the manager: the open-line chat (:mod:`.chat`), an
admin-picked workflow (:mod:`.workflow`), the manager's to-do (:mod:`.todo`). Each channel is a
plain function over a :class:`~b24app.bitrix.client.BitrixClient` returning a
:class:`Delivery`; none of them knows about appointments."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Delivery:
    """What one channel did: ``ok``; ``detail`` (chat id, workflow id, activity id) and the
    ``requests`` it made; ``error`` why not (an error code or a short reason)."""

    ok: bool
    detail: str = ""
    error: str = ""
    chat_id: int | None = None
    message_id: int | None = None  # the chat message sent (its delivery is checked later)


def is_transient(exc: Exception) -> bool:
    """Errors a retry may cure (limits, 5xx, network, tokens): the job re-raises them instead of
    falling through to the next channel; anything else is the channel's own failure."""
    from b24app.bitrix import errors

    if isinstance(
        exc,
        errors.RateLimited | errors.TransportError | errors.TokenExpired
        | errors.PortalUnavailable | errors.AuthRevoked,
    ):  # fmt: skip
        return True
    status = getattr(exc, "status", None)
    return bool(status and status >= 500)


def error_code(error: object) -> str:
    """A short error name for the attempt log, from an exception or a batch error entry."""
    if isinstance(error, dict):
        code, text = str(error.get("error") or ""), str(error.get("error_description") or "")
    else:
        code, text = str(getattr(error, "code", "") or ""), str(getattr(error, "description", ""))
    return (code or text or "error")[:255]
