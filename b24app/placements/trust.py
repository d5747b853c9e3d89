"""Who is looking at a page: verify a framed POST from Bitrix24, then carry that proof in a
short-lived signed token for the page's own follow-up requests.

A framed POST is trusted when (1) the portal named by ``member_id`` exists and the posted
``APPLICATION_TOKEN`` is its own (constant-time, :func:`b24app.web.authenticate`), and (2) the
**OAuth server** the portal registered with (its stored ``server_endpoint`` — never the posted
DOMAIN or SERVER_ENDPOINT) says the posted ``AUTH_ID`` belongs to that same ``member_id``
(docs/security.md). The user id comes from that answer, the admin flag from ``user.admin`` called
with the user's own token on the portal's stored ``client_endpoint``. A positive answer is
cached in Redis for a few minutes under a hash of the token, so re-opening a widget is fast.

A CRM tab shows an item's data only when Bitrix24 confirms that **this** user may read the
item (:func:`confirm_item_access`): ``crm.item.get`` with the user's own ``AUTH_ID``, one
request per tab open, not cached — a right taken away counts at the next open.

Follow-up requests (period change, CSV, settings save, JSON) carry ``t``: an itsdangerous
token signed with the app's ``SECRET_KEY`` and bound to portal id, member id, user id and the
admin flag. The iframe is third-party, so no cookies are used.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature
from itsdangerous import SignatureExpired
from itsdangerous import URLSafeTimedSerializer
from redis.exceptions import RedisError

from b24app.bitrix.errors import BitrixError
from b24app.bitrix.errors import RateLimited
from b24app.bitrix.oauth import call_as_user
from b24app.bitrix.oauth import InsecureEndpoint
from b24app.bitrix.oauth import oauth_app_info
from b24app.bitrix.oauth import user_is_admin
from b24app.context import Services
from b24app.errors import ApiError
from b24app.storage.models import Portal
from b24app.storage.models import PortalStatus
from b24app.web import authenticate

log = logging.getLogger(__name__)

TOKEN_SALT = "b24app.placements.session"
TOKEN_MAX_AGE_S = 30 * 60
VERIFY_CACHE_S = 5 * 60
VERIFY_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Viewer:
    """A verified person on a verified portal (what every page is rendered for)."""

    portal_id: int
    member_id: str
    domain: str
    user_id: int
    is_admin: bool
    lang: str
    status: str = PortalStatus.ACTIVE

    @property
    def needs_reauth(self) -> bool:
        return self.status == PortalStatus.REAUTH_REQUIRED

    @classmethod
    def of(cls, portal: Portal, user_id: Any, is_admin: Any, lang: str) -> Viewer:
        """The viewer ``user_id`` on ``portal`` (as the OAuth server or a session token said)."""
        return cls(
            portal_id=portal.id,
            member_id=portal.member_id,
            domain=portal.domain,
            user_id=int(user_id),
            is_admin=bool(is_admin),
            lang=lang,
            status=portal.status,
        )


def _cache_key(member_id: str, auth_id: str) -> str:
    digest = hashlib.sha256(f"{member_id}:{auth_id}".encode()).hexdigest()
    return f"b24app:frame-auth:{digest}"


def _is_admin(services: Services, portal: Portal, auth_id: str) -> bool:
    """``user.admin`` with the user's own token on the portal's stored REST endpoint.

    Any failure means "not an admin": the settings stay hidden rather than open.
    """
    return user_is_admin(
        portal.client_endpoint,
        auth_id,
        timeout=VERIFY_TIMEOUT_S,
        allow_insecure=services.settings.allow_insecure_endpoints,
    )


def verify_frame(services: Services, form: dict[str, Any], lang: str) -> Viewer:
    """Verify a framed POST (member_id + APPLICATION_TOKEN + AUTH_ID) and return the viewer.

    :raise ApiError 401: unknown portal or missing credentials.
    :raise ApiError 403: wrong application token, or the OAuth server does not vouch for
        ``AUTH_ID`` on this portal.
    :raise ApiError 503: the OAuth server could not be asked.
    """
    portal = authenticate(form.get("member_id"), form.get("APPLICATION_TOKEN"))
    auth_id = form.get("AUTH_ID")
    if not isinstance(auth_id, str) or not auth_id or len(auth_id) > 512:
        raise ApiError(401, "Missing AUTH_ID.")
    key = _cache_key(portal.member_id, auth_id)
    cached = _cache_get(services, key)
    if cached is None:
        cached = _ask_oauth_server(services, portal, auth_id)
        _cache_set(services, key, cached, form.get("AUTH_EXPIRES"))
    return Viewer.of(portal, cached["user_id"], cached["admin"], lang)


# crm.item.get's entityTypeId of the CRM items that have a tab of ours.
ENTITY_TYPE_IDS = {"lead": 1, "deal": 2}


def confirm_item_access(
    services: Services, viewer: Viewer, auth_id: str, entity: str, item_id: int
) -> None:
    """Bitrix24 confirms that the viewer may read this lead / deal, or the tab shows nothing.

    ``crm.item.get`` (entityTypeId 1 / 2) with the viewer's own frame token (``AUTH_ID``,
    already verified by :func:`verify_frame`) on the portal's stored REST endpoint: an item
    the user may not read answers ``ACCESS_DENIED`` (documented for ``crm.item.get``), one that
    does not exist ``NOT_FOUND``. The item's data in the answer is not used: the tab shows our
    own records of it.

    :raise ApiError 403: Bitrix24 refused (access denied, not found, the token refused).
    :raise ApiError 503: Bitrix24 could not be asked (network, 5xx, a rate limit).
    """
    with services.db() as session:
        portal = session.get(Portal, viewer.portal_id)
        endpoint = portal.client_endpoint if portal is not None else ""
    try:
        call_as_user(
            endpoint, auth_id, "crm.item.get",
            {"entityTypeId": ENTITY_TYPE_IDS[entity], "id": item_id},
            timeout=VERIFY_TIMEOUT_S, allow_insecure=services.settings.allow_insecure_endpoints,
        )  # fmt: skip
    except InsecureEndpoint as exc:
        raise ApiError(403, "The portal's REST endpoint is not trusted.") from exc
    except BitrixError as exc:
        if isinstance(exc, RateLimited) or exc.status is None or exc.status >= 500:
            raise ApiError(503, "Bitrix24 could not confirm your access; try again.") from exc
        log.info("%s %s refused to user %s: %s", entity, item_id, viewer.user_id, exc.code)
        raise ApiError(403, "Bitrix24 does not let you see this item.") from exc


def _ask_oauth_server(services: Services, portal: Portal, auth_id: str) -> dict[str, Any]:
    settings = services.settings
    try:
        info = oauth_app_info(
            portal.server_endpoint,
            auth_id,
            timeout=VERIFY_TIMEOUT_S,
            allow_insecure=settings.allow_insecure_endpoints,
        )
    except InsecureEndpoint as exc:
        raise ApiError(403, "The portal's OAuth server is not trusted.") from exc
    except BitrixError as exc:
        if exc.status is None or exc.status >= 500:
            raise ApiError(503, "Bitrix24 could not verify the session; try again.") from exc
        raise ApiError(403, "Bitrix24 did not accept this session.") from exc
    install = info.get("install") or {}
    if str(install.get("member_id") or "") != portal.member_id:
        raise ApiError(403, "This session belongs to another portal.")
    client_id = info.get("client_id")
    if client_id and client_id != settings.client_id:
        raise ApiError(403, "This session belongs to another application.")
    try:
        user_id = int(info.get("user_id") or 0)
    except (TypeError, ValueError):
        user_id = 0
    if user_id <= 0:
        raise ApiError(403, "Bitrix24 did not name the user of this session.")
    return {"user_id": user_id, "admin": _is_admin(services, portal, auth_id)}


def _cache_get(services: Services, key: str) -> dict[str, Any] | None:
    try:
        raw = services.redis.get(key)
    except RedisError:
        return None
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) and "user_id" in value else None


def _cache_set(services: Services, key: str, value: dict[str, Any], expires: Any) -> None:
    try:
        ttl = min(VERIFY_CACHE_S, max(int(expires or VERIFY_CACHE_S), 1))
    except (TypeError, ValueError):
        ttl = VERIFY_CACHE_S
    try:
        services.redis.set(key, json.dumps(value), ex=ttl)
    except RedisError:  # the cache only saves time; verification already happened
        log.warning("could not cache a frame verification")


# -- session tokens -----------------------------------------------------------------------


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=TOKEN_SALT)


def issue_token(secret_key: str, viewer: Viewer) -> str:
    """A signed token for the page's follow-up requests (valid ``TOKEN_MAX_AGE_S``)."""
    data = asdict(viewer)
    payload = {
        "p": data["portal_id"],
        "m": data["member_id"],
        "u": data["user_id"],
        "a": data["is_admin"],
        "l": data["lang"],
    }
    return _serializer(secret_key).dumps(payload)


def viewer_from_token(
    services: Services, secret_key: str, token: Any, lang: str | None = None
) -> Viewer:
    """The viewer a session token was issued for, with the portal re-read (still installed?).

    :raise ApiError 401: no token, a forged or an expired one.
    :raise ApiError 403: the portal was uninstalled since.
    """
    if not isinstance(token, str) or not token or len(token) > 2048:
        raise ApiError(401, "Open the app from Bitrix24 (no session).")
    try:
        payload = _serializer(secret_key).loads(token, max_age=TOKEN_MAX_AGE_S)
    except SignatureExpired as exc:
        raise ApiError(401, "The session has expired; reopen the app in Bitrix24.") from exc
    except BadSignature as exc:
        raise ApiError(401, "Invalid session.") from exc
    with services.db() as session:
        portal = session.get(Portal, int(payload["p"]))
        if portal is None or portal.member_id != payload["m"]:
            raise ApiError(401, "Invalid session.")
        if portal.status == PortalStatus.UNINSTALLED:
            raise ApiError(403, "The app is not installed on this portal.")
        return Viewer.of(portal, payload["u"], payload["a"], lang or str(payload.get("l") or "ru"))
