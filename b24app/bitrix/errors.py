"""Bitrix24 REST and OAuth errors as exceptions the rest of the app can catch by meaning.

An answer is an error when its JSON body **has** an ``error`` key: the code may be the empty
string (``crm.lead.get`` "Not found") and some errors arrive with HTTP 200
(``placement.bind``, OAuth ``wrong_client``), so neither the status nor the truthiness of the
code is a reliable signal (``tests/fixtures/error_crm_lead_get_not_found.json``).

Messages never contain tokens: they are built from the code, the description and the
method name only, and masked once more on the way out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from b24app.logs import mask_secrets

# Codes that mean "the entity does not exist" (crm.item.* says NOT_FOUND; crm.lead.get says
# "" + "Not found"; a few older methods say ERROR_NOT_FOUND / ERROR_ENTITY_NOT_FOUND).
NOT_FOUND_CODES = frozenset({"NOT_FOUND", "ERROR_NOT_FOUND", "ERROR_ENTITY_NOT_FOUND"})
# 401 answers a token refresh can cure (Bitrix24's JS SDK refreshes on both;
# tests/fixtures/error_invalid_token.json).
REFRESHABLE_CODES = frozenset({"expired_token", "invalid_token"})
# OAuth-server answers that mean no refresh will ever work again: the portal must re-authorise.
REVOKED_CODES = frozenset(
    {"invalid_grant", "wrong_client", "NOT_INSTALLED", "PAYMENT_REQUIRED", "APPLICATION_NOT_FOUND"}
)
# Permission problems: retrying the same call with the same token cannot help.
ACCESS_DENIED_CODES = frozenset(
    {
        "ACCESS_DENIED",
        "INVALID_CREDENTIALS",
        "insufficient_scope",
        "invalid_scope",
        "user_access_error",
        "WRONG_AUTH_TYPE",
    }
)
RATE_LIMIT_CODES = frozenset({"QUERY_LIMIT_EXCEEDED", "OPERATION_TIME_LIMIT", "OVERLOAD_LIMIT"})

# Install idempotency: "you already registered this" in its many spellings.
ALREADY_EXISTS_CODES = frozenset(
    {
        "ERROR_HANDLER_ALREADY_EXIST",
        "ERROR_ACTIVITY_ALREADY_INSTALLED",
        "ERROR_PLACEMENT_HANDLER_ALREADY_BINDED",
    }
)
ALREADY_EXISTS_PHRASES = (
    "handler already exists",
    "unable to set event handler",
    "handler already binded",
    "handler already bound",
    "already installed",
    "already exists",  # user fields: "Field UF_CRM_X already exists"
    "уже существует",
)


class BitrixError(Exception):
    """A Bitrix24 error envelope (or a transport failure) for one method call.

    ``code`` is the ``error`` value as sent (possibly ``""``), ``description`` the
    ``error_description``, ``status`` the HTTP status (``None`` when no answer came).
    """

    def __init__(
        self,
        code: str,
        description: str = "",
        status: int | None = None,
        *,
        method: str = "",
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.code = code
        self.description = description
        self.status = status
        self.method = method
        self.extra: dict[str, Any] = dict(extra or {})
        super().__init__(self._message())

    def _message(self) -> str:
        where = f"{self.method}: " if self.method else ""
        status = f" (HTTP {self.status})" if self.status is not None else ""
        code = self.code if self.code else '""'
        return mask_secrets(f"{where}{code} {self.description}".rstrip() + status)

    @property
    def already_exists(self) -> bool:
        """True for "this handler/robot/placement/field is already registered"."""
        return already_exists(self)


class NotFound(BitrixError):
    """The entity does not exist (``NOT_FOUND``, or ``""`` + "Not found" from crm.lead.get)."""


class TokenExpired(BitrixError):
    """401 ``expired_token``/``invalid_token`` that a refresh did not cure."""


class AuthRevoked(BitrixError):
    """The OAuth server refused the refresh token for good: the portal must re-authorise."""


class AccessDenied(BitrixError):
    """403-style denial (``ACCESS_DENIED``, scope, rights): never retried.

    ``bizproc.event.send`` with an expired event token lands here.
    """


class RateLimited(BitrixError):
    """A limit was still hit after the client's own waiting; ``retry_after`` in seconds."""

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(*args, **kwargs)


class PortalUnavailable(BitrixError):
    """The portal is unknown, uninstalled or waiting for re-authorisation: no call was made."""


class TransportError(BitrixError):
    """No usable answer (connection error, time-out, non-JSON body) after all retries."""


class OAuthError(BitrixError):
    """Any other OAuth-server error (``invalid_client``, ``invalid_request``…)."""


def is_error_envelope(body: Any) -> bool:
    """An error is signalled by the presence of the ``error`` key, whatever its value."""
    return isinstance(body, Mapping) and "error" in body


def error_class(code: str, description: str, status: int | None) -> type[BitrixError]:
    """The most specific exception class for a REST error envelope."""
    if code in NOT_FOUND_CODES or (code == "" and "not found" in description.lower()):
        return NotFound
    if code in REFRESHABLE_CODES:
        return TokenExpired
    if code in ACCESS_DENIED_CODES:
        return AccessDenied
    if code in RATE_LIMIT_CODES:
        return RateLimited
    if code in ("PORTAL_DELETED", "ERROR_OAUTH", "APPLICATION_NOT_FOUND", "PAYMENT_REQUIRED"):
        return PortalUnavailable
    return BitrixError


def from_envelope(body: Mapping[str, Any], status: int | None, method: str = "") -> BitrixError:
    """Build the exception for a REST error body ``{"error": …, "error_description": …}``."""
    code = str(body.get("error") if body.get("error") is not None else "")
    description = str(body.get("error_description") or "")
    extra = {k: v for k, v in body.items() if k not in ("error", "error_description")}
    cls = error_class(code, description, status)
    return cls(code, description, status, method=method, extra=extra)


def from_oauth(body: Mapping[str, Any], status: int | None) -> BitrixError:
    """Build the exception for an OAuth-server error body."""
    code = str(body.get("error") or "")
    description = str(body.get("error_description") or "")
    cls: type[BitrixError] = AuthRevoked if code in REVOKED_CODES else OAuthError
    return cls(code, description, status, method="oauth.token")


def already_exists(error: BitrixError | Mapping[str, Any]) -> bool:
    """True when an install step failed only because it was done before (re-install, retry).

    Accepts an exception or a raw envelope (``batch`` ``result_error`` entries).
    """
    if isinstance(error, BitrixError):
        code, description = error.code, error.description
    else:
        code = str(error.get("error") or "")
        description = str(error.get("error_description") or "")
    if code in ALREADY_EXISTS_CODES:
        return True
    text = description.lower()
    return any(phrase in text for phrase in ALREADY_EXISTS_PHRASES)
