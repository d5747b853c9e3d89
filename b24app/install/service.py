"""Install, update and uninstall, independent of Flask (views and jobs both call these)."""

from __future__ import annotations

import ipaddress
import logging
from typing import Any
from urllib.parse import urlsplit

from rq.job import Job
from rq.job import JobStatus
from sqlalchemy import delete

from b24app import logs
from b24app.bitrix.errors import BitrixError
from b24app.bitrix.oauth import oauth_app_info
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
from b24app.storage.portals import upsert_install

log = logging.getLogger(__name__)


class InstallFailed(RuntimeError):
    """Registration on the portal failed; the message is shown to the admin."""


def is_trusted_oauth_server(settings: Settings, server_endpoint: str) -> bool:
    """Only the known Bitrix24 OAuth servers (and loopback in development) are asked."""
    if server_endpoint in settings.trusted_oauth_servers:
        return True
    if not settings.allow_insecure_endpoints:
        return False
    host = urlsplit(server_endpoint).hostname or ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def verify_install(
    settings: Settings, server_endpoint: str, access_token: str, member_id: str
) -> dict[str, Any]:
    """Ask the trusted OAuth server whose token this is; return its ``install`` section.

    :raise ApiError 403: untrusted server, unknown token, or a token of another portal/app.
    """
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
    return install


def store_from_installer(services: Services, query: dict[str, Any], form: dict[str, Any]) -> Portal:
    """Verify the installer POST and store the portal with the admin's tokens."""
    install = verify_install(
        services.settings, form["SERVER_ENDPOINT"], form["AUTH_ID"], form["member_id"]
    )
    auth = InstallAuth(
        member_id=form["member_id"],
        domain=str(install.get("domain") or query["DOMAIN"]),
        client_endpoint=str(install.get("client_endpoint") or ""),
        server_endpoint=form["SERVER_ENDPOINT"],
        access_token=form["AUTH_ID"],
        refresh_token=form["REFRESH_ID"],
        expires_in=form["AUTH_EXPIRES"],
        application_token=form["APPLICATION_TOKEN"],
        scopes=scope_list(form["APPLICATION_SCOPE"]),
        plan=form["status"],
        lang=query["LANG"][:8],
    )
    return _store(services, auth, "installer page")


def store_from_event(services: Services, payload: dict[str, Any]) -> Portal:
    """Verify ``ONAPPINSTALL``/``ONAPPUPDATE`` and store tokens and ``application_token``."""
    auth = payload["auth"]
    if not auth["access_token"] or not auth["refresh_token"]:
        raise ApiError(400, "The install event carries no tokens.")
    server = auth["server_endpoint"] or "https://oauth.bitrix.info/rest/"
    install = verify_install(services.settings, server, auth["access_token"], auth["member_id"])
    data = payload.get("data") or {}
    stored = InstallAuth(
        member_id=auth["member_id"],
        domain=str(install.get("domain") or auth["domain"]),
        client_endpoint=str(install.get("client_endpoint") or auth["client_endpoint"]),
        server_endpoint=server,
        access_token=auth["access_token"],
        refresh_token=auth["refresh_token"],
        expires_in=auth["expires_in"],
        application_token=auth["application_token"],
        scopes=scope_list(auth["scope"]),
        plan=auth["status"],
        lang=str(data.get("LANGUAGE_ID") or "")[:8],
        user_id=auth["user_id"],
        app_version=str(data.get("VERSION") or "")[:32],
    )
    return _store(services, stored, payload["event"])


def _store(services: Services, auth: InstallAuth, source: str) -> Portal:
    """Create or refresh the portal from verified install credentials.

    The installer page and ONAPPINSTALL often arrive at the same moment: a per-portal lock
    makes the second one update the row the first created instead of inserting it twice.
    """
    lock = services.redis.lock(
        f"b24app:lock:install:{auth.member_id}", timeout=30, blocking_timeout=30
    )
    with lock, services.db() as session, logs.bind(member_id=auth.member_id):
        portal = upsert_install(session, auth)
        log.info("%s stored portal", source)
        session.expunge(portal)
        return portal


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
        try:
            report = registration.register(
                services.bitrix(member_id), services.settings.public_url, lang, previous
            )
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
            }
            portal.registered_at = utc_now()
        log.info("registration done: %d writes", report.writes)
    # The portal's licence sizes its REST bucket (Enterprise 5 / 250); re-read daily by cron.
    from b24app.plans import refresh_portal_plan

    refresh_portal_plan(services, member_id)
    # Import the portal's existing leads (needs the status map just stored); a backfill that
    # already finished asks the portal nothing, so a re-install costs nothing here.
    from b24app.handlers.jobs import enqueue_backfill

    enqueue_backfill(services, member_id)
    return report


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


def cleanup_portal(portal_id: int, clean: bool) -> None:
    """RQ job: cancel every timer of an uninstalled portal; with CLEAN delete its data."""
    from b24app import context
    from b24app.sla.engine import cancel_portal_timers

    services = context.current()
    cancel_portal_timers(services, portal_id)
    if clean:
        with services.db() as session:
            portal = session.get(Portal, portal_id)
            if portal is not None and portal.status == PortalStatus.UNINSTALLED:
                session.execute(delete(Portal).where(Portal.id == portal_id))
