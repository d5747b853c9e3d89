"""Install, update and uninstall, independent of Flask (views and jobs both call these)."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from rq.job import Job
from rq.job import JobStatus
from sqlalchemy import delete

from b24app import logs
from b24app.bitrix import oauth
from b24app.bitrix.errors import AuthRevoked
from b24app.bitrix.errors import BitrixError
from b24app.bitrix.errors import PortalUnavailable
from b24app.bitrix.errors import TokenExpired
from b24app.bitrix.oauth import oauth_app_info
from b24app.bitrix.oauth import user_is_admin
from b24app.config import Settings
from b24app.context import Services
from b24app.errors import ApiError
from b24app.install import registration
from b24app.install.schemas import scope_list
from b24app.storage.models import Portal
from b24app.storage.models import PortalStatus
from b24app.storage.models import utc_now
from b24app.storage.portals import get_portal
from b24app.storage.portals import InstallAuth
from b24app.storage.portals import tokens_match
from b24app.storage.portals import upsert_install

log = logging.getLogger(__name__)


class InstallFailed(RuntimeError):
    """Registration on the portal failed; the message is shown to the admin."""


def is_trusted_oauth_server(settings: Settings, server_endpoint: str) -> bool:
    """Only the known Bitrix24 OAuth servers (and loopback in development) are asked."""
    return oauth.is_trusted_oauth_server(
        server_endpoint,
        settings.trusted_oauth_servers,
        allow_insecure=settings.allow_insecure_endpoints,
    )


def verify_install(
    settings: Settings, server_endpoint: str, access_token: str, member_id: str
) -> dict[str, Any]:
    """Ask the trusted OAuth server whose token this is; return its ``install`` section.

    :raise ApiError 403: untrusted server, unknown token, or a token of another portal/app.
    """
    return _app_info(settings, server_endpoint, access_token, member_id).get("install") or {}


def _app_info(
    settings: Settings, server_endpoint: str, access_token: str, member_id: str
) -> dict[str, Any]:
    """The OAuth server's whole ``app.info`` answer for an install token (see verify_install)."""
    if not is_trusted_oauth_server(settings, server_endpoint):
        raise ApiError(403, "Untrusted OAuth server.")
    try:
        info = oauth_app_info(
            server_endpoint,
            access_token,
            timeout=settings.rest_timeout,
            allow_insecure=settings.allow_insecure_endpoints,
        )
    except BitrixError as exc:
        raise ApiError(403, "The install credentials were not accepted by Bitrix24.") from exc
    install = info.get("install") or {}
    if str(install.get("member_id")) != member_id:
        raise ApiError(403, "The install credentials belong to another portal.")
    client_id = info.get("client_id")
    if client_id and client_id != settings.client_id:
        raise ApiError(403, "The install credentials belong to another application.")
    return info


# The credentials an install brings: InstallAuth field -> (installer POST key, event auth key).
_CREDENTIALS: dict[str, tuple[str, str]] = {
    "access_token": ("AUTH_ID", "access_token"), "refresh_token": ("REFRESH_ID", "refresh_token"),
    "expires_in": ("AUTH_EXPIRES", "expires_in"), "plan": ("status", "status"),
    "application_token": ("APPLICATION_TOKEN", "application_token"),
}  # fmt: skip


def _verified(
    services: Services, server_endpoint: str, member_id: str, credentials: dict[str, Any],
    **more: Any,
) -> InstallAuth:  # fmt: skip
    """The install's credentials once the OAuth server vouched for them, with the portal's
    domain and REST endpoint as that server says (never as the request names them)."""
    install = verify_install(services.settings, server_endpoint, credentials["access_token"],
                             member_id)  # fmt: skip
    return InstallAuth(
        member_id=member_id,
        domain=str(install.get("domain") or ""),
        client_endpoint=str(install.get("client_endpoint") or ""),
        server_endpoint=server_endpoint,
        **credentials,
        **more,
    )


def store_from_installer(services: Services, query: dict[str, Any], form: dict[str, Any]) -> Portal:
    """Verify the installer POST and store the portal with the admin's tokens."""
    credentials = {name: form[key] for name, (key, _) in _CREDENTIALS.items()}
    auth = _verified(
        services,
        form["SERVER_ENDPOINT"],
        form["member_id"],
        credentials,
        scopes=scope_list(form["APPLICATION_SCOPE"]),
        lang=query["LANG"][:8],
    )
    return _store(services, auth, "installer page", posted_domain=query["DOMAIN"])


def store_from_event(services: Services, payload: dict[str, Any]) -> Portal:
    """Verify ``ONAPPINSTALL``/``ONAPPUPDATE`` and store tokens and ``application_token``."""
    auth = payload["auth"]
    if not auth["access_token"] or not auth["refresh_token"]:
        raise ApiError(400, "The install event carries no tokens.")
    server = auth["server_endpoint"] or "https://oauth.bitrix.info/rest/"
    data = payload.get("data") or {}
    credentials = {name: auth[key] for name, (_, key) in _CREDENTIALS.items()}
    stored = _verified(
        services, server, auth["member_id"], credentials, scopes=scope_list(auth["scope"]),
        lang=str(data.get("LANGUAGE_ID") or "")[:8], user_id=auth["user_id"],
        app_version=str(data.get("VERSION") or "")[:32],
    )  # fmt: skip
    return _store(
        services,
        stored,
        payload["event"],
        posted_domain=auth["domain"],
        posted_endpoint=auth["client_endpoint"],
    )


def _store(
    services: Services,
    auth: InstallAuth,
    source: str,
    *,
    posted_domain: str = "",
    posted_endpoint: str = "",
) -> Portal:
    """Create or refresh the portal from install credentials the OAuth server vouched for.

    Who may change what (issue 10):

    * a **new** portal (or one whose uninstall was confirmed) is created from the first
      verified install, ``application_token`` included; the posted DOMAIN / client_endpoint
      are used only when ``app.info`` leaves them out;
    * an **installed** portal changes only for a portal administrator (``user.admin`` asked
      with the poster's own token on the REST endpoint the OAuth server or our store names);
      its ``application_token`` stays — Bitrix24 keeps it for the life of the install —
      unless its stored tokens are refused by Bitrix24 (the app was removed and installed
      again while we missed the uninstall); domain and endpoint come from ``app.info`` or
      stay as stored, never from the post.

    The installer page and ONAPPINSTALL often arrive at the same moment: a per-portal lock
    makes the second one update the row the first created instead of inserting it twice.
    """
    lock = services.redis.lock(
        f"b24app:lock:install:{auth.member_id}", timeout=60, blocking_timeout=60
    )
    with lock, logs.bind(member_id=auth.member_id):
        with services.db() as session:
            existing = get_portal(session, auth.member_id)
            if existing is not None:
                session.expunge(existing)
        if existing is None or existing.status == PortalStatus.UNINSTALLED:
            if existing is None:
                auth = replace(
                    auth,
                    domain=auth.domain or posted_domain,
                    client_endpoint=auth.client_endpoint or posted_endpoint,
                )
        else:
            endpoint = auth.client_endpoint or existing.client_endpoint
            if not user_is_admin(
                endpoint,
                auth.access_token,
                timeout=float(services.settings.rest_timeout),
                allow_insecure=services.settings.allow_insecure_endpoints,
            ):
                log.warning("%s from a user who is not a portal admin: ignored", source)
                raise ApiError(
                    403, "Only a portal administrator can install or update the app again."
                )
            if auth.application_token and not tokens_match(
                existing.application_token, auth.application_token
            ):
                if app_still_installed(services, existing):
                    log.warning("%s: a different application_token was not taken", source)
                    auth = replace(auth, application_token="")
                else:
                    log.info("%s: the previous install is gone, new application_token", source)
        with services.db() as session:
            portal = upsert_install(session, auth)
            log.info("%s stored portal", source)
            session.expunge(portal)
            return portal


class UninstallUnverified(RuntimeError):
    """Bitrix24 could not be asked whether the app is still installed (try again later)."""


def app_still_installed(services: Services, portal: Portal) -> bool:
    """Does Bitrix24 still accept the portal's stored tokens (so the app is installed)?

    The stored access token is shown to the portal's trusted OAuth server (``app.info``); an
    expired one is refreshed through the REST client (under its per-portal lock, the new pair
    stored) and ``app.info`` asked on the portal. A portal with no stored tokens, or whose
    tokens are refused (``invalid_token``, revoked grant, app not found), is not installed.

    :raise UninstallUnverified: no usable answer (network, 5xx, untrusted server).
    """
    settings = services.settings
    if not portal.access_token and not portal.refresh_token:
        return False
    if not is_trusted_oauth_server(settings, portal.server_endpoint):
        raise UninstallUnverified("the stored OAuth server is not trusted")
    if portal.access_token:
        try:
            info = oauth_app_info(
                portal.server_endpoint,
                portal.access_token,
                timeout=settings.rest_timeout,
                allow_insecure=settings.allow_insecure_endpoints,
            )
        except BitrixError as exc:
            if exc.status is None or exc.status >= 500:
                raise UninstallUnverified(exc.code) from exc
            if exc.code != "expired_token":
                return False
        else:
            return str((info.get("install") or {}).get("member_id")) == portal.member_id
    try:
        services.bitrix(portal.member_id).call("app.info")
    except (AuthRevoked, TokenExpired, PortalUnavailable):
        return False
    except BitrixError as exc:
        if exc.status is None or exc.status >= 500:
            raise UninstallUnverified(exc.code) from exc
        return False
    return True


def confirm_uninstall(services: Services, portal: Portal, *, clean: bool) -> bool:
    """Deactivate the portal if Bitrix24 confirms the app is gone; False (and a warning) if
    the app is still installed — a forged ``ONAPPUNINSTALL`` changes nothing.

    :raise UninstallUnverified: Bitrix24 could not be asked; nothing changed.
    """
    with logs.bind(member_id=portal.member_id):
        if app_still_installed(services, portal):
            log.warning("ONAPPUNINSTALL while Bitrix24 still accepts the app's tokens: ignored")
            return False
    return uninstall(services, portal.id, clean=clean)


def register_portal(services: Services, member_id: str) -> registration.RegistrationReport:
    """Run the idempotent registration under a per-portal lock and record the result."""
    with (
        logs.bind(member_id=member_id),
        services.redis.lock(f"b24app:lock:register:{member_id}", timeout=120, blocking_timeout=60),
    ):
        with services.db() as session:
            portal = get_portal(session, member_id)
            if portal is None or portal.status != PortalStatus.ACTIVE:
                raise InstallFailed("The portal is not installed.")
            previous = dict(portal.registration or {})
            lang = portal.lang or "ru"
            from b24app.settings import load_settings

            add_deal_stages = bool(load_settings(session, portal.id).get("deal_stages_add_missing"))
        try:
            report = registration.register(
                services.bitrix(member_id), services.settings.public_url, lang, previous,
                add_deal_stages=add_deal_stages,
            )  # fmt: skip
        except (BitrixError, registration.RegistrationError) as exc:
            log.warning("registration failed: %s", exc)
            raise InstallFailed(str(exc)) from exc
        with services.db() as session:
            portal = get_portal(session, member_id)
            assert portal is not None
            portal.registration = {
                **previous,
                "lead_field": registration.LEAD_FIELD_NAME,
                "statuses": report.statuses,
                "robots_hash": report.robots_hash,
                "deal_field": registration.LEAD_FIELD_NAME,
                "deal_stages": report.deal_stages,
                "pipelines": report.pipelines,
                "deal_stage_list": report.deal_stage_list,
                "date_fields": report.date_fields,
                **(
                    {"workflow_templates": report.workflow_templates}
                    if report.workflow_templates is not None
                    else {}
                ),
                **(
                    {"assistant_bot": {"id": report.bot_id, "hash": report.bot_hash}}
                    if report.bot_id
                    else {}
                ),
            }
            portal.crm_mode = report.crm_mode
            portal.registered_at = utc_now()
        log.info("registration done: %d writes", report.writes)
    # The portal's licence sizes its REST bucket (Enterprise 5 / 250); re-read daily by cron.
    from b24app.plans import refresh_portal_plan

    refresh_portal_plan(services, member_id)
    # Import the portal's existing leads (needs the status map just stored); a backfill that
    # already finished asks the portal nothing, so a re-install costs nothing here.
    from b24app.handlers.jobs import enqueue_backfill

    enqueue_backfill(services, member_id)
    enqueue_booking_import(services, member_id)
    return report


def enqueue_booking_import(services: Services, member_id: str) -> None:
    """Queue the import of the coming bookings (after the backfill, same ``bulk`` queue)."""
    from rq.exceptions import DuplicateJobError

    from b24app.appointments.booking import import_job

    try:
        services.queue("bulk").enqueue(
            import_job, member_id, job_id=f"booking-import-{member_id}", unique=True,
            result_ttl=0, failure_ttl=86400,
        )  # fmt: skip
    except DuplicateJobError:
        pass


def register_job(member_id: str) -> int:
    """RQ job: register the app on a portal (after ``ONAPPINSTALL``/``ONAPPUPDATE``)."""
    from b24app import context

    return register_portal(context.current(), member_id).writes


def enqueue_registration(services: Services, member_id: str) -> None:
    """Queue one registration per portal; a registration already waiting covers this one."""
    job_id = f"register-{member_id}"
    queue = services.queue("default")
    try:
        existing = Job.fetch(job_id, connection=services.redis)
        if existing.get_status() in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED):
            return
    except Exception:  # NoSuchJobError: nothing queued yet
        pass
    queue.enqueue(register_job, member_id, job_id=job_id, result_ttl=600, failure_ttl=86400)


def uninstall(services: Services, portal_id: int, *, clean: bool) -> bool:
    """Deactivate at once (tokens dropped), then clean up in a job. False if already done."""
    with services.db() as session:
        portal = session.get(Portal, portal_id)
        if portal is None or portal.status == PortalStatus.UNINSTALLED:
            return False
        portal.status = PortalStatus.UNINSTALLED
        portal.uninstalled_at = utc_now()
        portal.access_token = None
        portal.refresh_token = None
        portal.install_finished_at = None
        member_id = portal.member_id
    with logs.bind(member_id=member_id):
        log.info("uninstalled (clean=%s)", clean)
    services.queue("default").enqueue(
        cleanup_portal,
        portal_id,
        clean,
        job_id=f"cleanup-{portal_id}-{int(clean)}",
        failure_ttl=86400,
    )
    return True


# Bitrix24 does not re-send events: an uninstall that could not be confirmed at once is
# checked again by a job over the next hours (RQ retries while Bitrix24 cannot be asked).
CONFIRM_RETRY_INTERVALS = [60, 300, 900, 3600, 6 * 3600]


def enqueue_uninstall_check(services: Services, portal_id: int, clean: bool) -> None:
    """Queue :func:`confirm_uninstall_job` once per portal (a waiting one covers this one)."""
    from rq import Retry

    services.queue("default").enqueue(
        confirm_uninstall_job,
        portal_id,
        clean,
        job_id=f"confirm-uninstall-{portal_id}",
        retry=Retry(max=len(CONFIRM_RETRY_INTERVALS), interval=CONFIRM_RETRY_INTERVALS),
        failure_ttl=86400,
    )


def confirm_uninstall_job(portal_id: int, clean: bool) -> bool:
    """RQ job: confirm an ONAPPUNINSTALL with Bitrix24 and deactivate (see
    :func:`confirm_uninstall`); raises :class:`UninstallUnverified` so RQ tries again later."""
    from b24app import context

    services = context.current()
    with services.db() as session:
        portal = session.get(Portal, portal_id)
        if portal is None or portal.status == PortalStatus.UNINSTALLED:
            return False
        session.expunge(portal)
    return confirm_uninstall(services, portal, clean=clean)


def cleanup_portal(portal_id: int, clean: bool) -> None:
    """RQ job: cancel every timer of an uninstalled portal; with CLEAN delete its data."""
    from b24app import context
    from b24app.timers.engine import cancel_portal_timers

    services = context.current()
    cancel_portal_timers(services, portal_id)
    if clean:
        with services.db() as session:
            portal = session.get(Portal, portal_id)
            if portal is not None and portal.status == PortalStatus.UNINSTALLED:
                session.execute(delete(Portal).where(Portal.id == portal_id))
