"""The REST error type every method raises; the server turns it into Bitrix24's envelope."""

from __future__ import annotations

from typing import Any


class RestError(Exception):
    """``{"error": code, "error_description": description}`` with an HTTP status.

    ``code`` may be the empty string (``crm.lead.get`` "Not found" does that on a real portal),
    and ``extra`` adds fields some errors carry (``placement.bind`` adds ``argument``).
    """

    def __init__(self, status: int, code: str, description: str = "", **extra: Any) -> None:
        super().__init__(f"{status} {code}: {description}")
        self.status = status
        self.code = code
        self.description = description
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "error_description": self.description, **self.extra}


def method_not_found(method: str) -> RestError:
    return RestError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")


def access_denied(description: str = "Access denied!") -> RestError:
    return RestError(403, "ACCESS_DENIED", description)


def admin_required() -> RestError:
    return RestError(403, "ACCESS_DENIED", "Access denied! Administrator authorization required")


def argument_error(argument: str, description: str | None = None) -> RestError:
    return RestError(
        400,
        "ERROR_ARGUMENT",
        description or f"Argument '{argument}' is null or empty",
        argument=argument,
    )


def not_found_lead() -> RestError:
    return RestError(400, "", "Not found")


def item_not_found() -> RestError:
    return RestError(400, "NOT_FOUND", "Element not found")


def item_access_denied() -> RestError:
    """``crm.item.get`` on an item the user may not read (documented: 400 ACCESS_DENIED)."""
    return RestError(400, "ACCESS_DENIED", "You do not have permission to view this item")


def access_denied_old_api() -> RestError:
    """``crm.lead.get`` / ``crm.deal.get`` on an item the user may not read: the docs give
    only the message "Access denied"; the code is empty and the status 400, as for their
    "Not found" (our reading)."""
    return RestError(400, "", "Access denied")
