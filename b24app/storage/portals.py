"""Portal repository: look-ups, install upserts and the atomic token store for the REST client."""

from __future__ import annotations

import datetime as dt
import hmac
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session
from sqlalchemy.orm import sessionmaker

from b24app.storage.db import rows_affected
from b24app.storage.models import Portal
from b24app.storage.models import PortalStatus
from b24app.storage.models import utc_now


@dataclass(frozen=True)
class PortalAuth:
    """What the REST client needs to call one portal."""

    member_id: str
    client_endpoint: str
    server_endpoint: str
    access_token: str
    refresh_token: str
    expires_at: dt.datetime | None
    version: int
    status: str


@dataclass(frozen=True)
class InstallAuth:
    """Credentials from the installer POST, ``ONAPPINSTALL`` or ``ONAPPUPDATE`` (all optional
    but ``member_id``: the event can arrive first, the page can arrive first)."""

    member_id: str
    domain: str = ""
    client_endpoint: str = ""
    server_endpoint: str = ""
    access_token: str = ""
    refresh_token: str = ""
    expires_in: int = 3600
    application_token: str = ""
    scopes: str = ""
    plan: str = ""
    lang: str = ""
    user_id: int | None = None
    app_version: str = ""


def portal_auth(portal: Portal) -> PortalAuth:
    """The REST client's view of a loaded portal row (tokens decrypted by the column type)."""
    return PortalAuth(
        member_id=portal.member_id,
        client_endpoint=portal.client_endpoint,
        server_endpoint=portal.server_endpoint,
        access_token=portal.access_token or "",
        refresh_token=portal.refresh_token or "",
        expires_at=portal.token_expires_at,
        version=portal.token_version,
        status=portal.status,
    )


def get_portal(session: Session, member_id: str) -> Portal | None:
    return session.scalar(select(Portal).where(Portal.member_id == member_id))


def tokens_match(stored: str | None, presented: str | None) -> bool:
    """Constant-time comparison of an ``application_token``; empty never matches."""
    if not stored or not presented:
        return False
    return hmac.compare_digest(stored.encode(), presented.encode())


def upsert_install(session: Session, auth: InstallAuth) -> Portal:
    """Create or refresh a portal from install credentials; only non-empty values overwrite.

    A re-install of an uninstalled portal makes it active again.
    """
    portal = get_portal(session, auth.member_id)
    now = utc_now()
    if portal is None:
        portal = Portal(
            member_id=auth.member_id,
            domain=auth.domain,
            client_endpoint=auth.client_endpoint or (f"https://{auth.domain}/rest/"),
            server_endpoint=auth.server_endpoint or "https://oauth.bitrix.info/rest/",
            registration={},
            installed_at=now,
            token_version=0,
        )
        session.add(portal)
    if portal.status != PortalStatus.ACTIVE:
        portal.status = PortalStatus.ACTIVE
        portal.installed_at = now
        portal.uninstalled_at = None
    for attr, value in (
        ("domain", auth.domain),
        ("client_endpoint", auth.client_endpoint),
        ("server_endpoint", auth.server_endpoint),
        ("scopes", auth.scopes),
        ("plan", auth.plan),
        ("lang", auth.lang),
        ("app_version", auth.app_version),
        ("application_token", auth.application_token),
    ):
        if value:
            setattr(portal, attr, value)
    if auth.user_id and portal.installer_user_id is None:
        portal.installer_user_id = auth.user_id
    if auth.access_token and auth.refresh_token:
        portal.access_token = auth.access_token
        portal.refresh_token = auth.refresh_token
        portal.token_expires_at = now + dt.timedelta(seconds=auth.expires_in)
        portal.token_version = (portal.token_version or 0) + 1
    session.flush()
    return portal


class DbTokenStore:
    """Token storage for :class:`b24app.bitrix.client.BitrixClient`, backed by the portals table.

    ``save_refreshed`` is a compare-and-set on ``token_version``: of two processes that both
    refreshed, only the first write wins, and the loser re-reads instead of clobbering the
    newer pair (the per-portal Redis lock makes that race rare; this makes it harmless).
    """

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def load(self, member_id: str) -> PortalAuth | None:
        with self.sessions() as session:
            portal = get_portal(session, member_id)
            return None if portal is None else portal_auth(portal)

    def save_refreshed(
        self,
        member_id: str,
        expected_version: int,
        access_token: str,
        refresh_token: str,
        expires_in: int,
        client_endpoint: str | None = None,
    ) -> bool:
        """Store a new token pair if nobody stored one since ``expected_version``."""
        with self.sessions() as session:
            portal = get_portal(session, member_id)
            if portal is None or portal.token_version != expected_version:
                return False
            values: dict[str, object] = {
                "access_token": access_token,
                "refresh_token": refresh_token,
                "token_expires_at": utc_now() + dt.timedelta(seconds=expires_in),
                "token_version": expected_version + 1,
            }
            if client_endpoint:
                values["client_endpoint"] = client_endpoint
            # Encrypt through the column type by going via the ORM attribute processors.
            stmt = (
                update(Portal)
                .where(Portal.id == portal.id, Portal.token_version == expected_version)
                .values(**values)
            )
            result = session.execute(stmt)
            session.commit()
            return bool(rows_affected(result))

    def update_client_endpoint(self, member_id: str, endpoint: str) -> None:
        """The portal moved (its old address redirects): remember the new REST endpoint."""
        with self.sessions() as session:
            session.execute(
                update(Portal).where(Portal.member_id == member_id).values(client_endpoint=endpoint)
            )
            session.commit()

    def mark_reauth_required(self, member_id: str) -> None:
        """The grant was revoked (``invalid_grant``): stop background work for this portal."""
        with self.sessions() as session:
            session.execute(
                update(Portal)
                .where(Portal.member_id == member_id, Portal.status == PortalStatus.ACTIVE)
                .values(status=PortalStatus.REAUTH_REQUIRED)
            )
            session.commit()
