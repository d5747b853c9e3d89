"""Install surface: the installer page Bitrix24 frames, and the app lifecycle event handler.

Either the installer POST or ``ONAPPINSTALL`` may arrive first, and both carry tokens: each
one verifies itself against the trusted OAuth server's ``app.info`` and stores/refreshes the
portal. The installer page registers synchronously (the admin is looking at it and
``installFinish`` must come after a successful registration); the event enqueues the same,
idempotent registration job, so an install completes even if the page is never rendered.
"""

from __future__ import annotations

from flask import Blueprint
from flask import make_response
from flask import render_template
from flask.typing import ResponseReturnValue

from b24app.errors import ApiError
from b24app.install import service
from b24app.install.schemas import AppEventSchema
from b24app.install.schemas import InstallerFormSchema
from b24app.install.schemas import InstallerQuerySchema
from b24app.storage.models import PortalStatus
from b24app.web import authenticate
from b24app.web import frameable
from b24app.web import read_form
from b24app.web import read_query
from b24app.web import services

bp = Blueprint("install", __name__, template_folder="templates")


@bp.post("/")
def installer() -> ResponseReturnValue:
    """The installer page: verify, store tokens, register, then let the page call installFinish."""
    query = InstallerQuerySchema().load(read_query())
    form = InstallerFormSchema().load(read_form())
    lang = "en" if query["LANG"].lower().startswith("en") else "ru"
    svc = services()
    portal = service.store_from_installer(svc, query, form)
    error: str | None = None
    try:
        service.register_portal(svc, portal.member_id)
    except service.InstallFailed as exc:
        error = str(exc)
    status = 200 if error is None else 502
    response = make_response(
        render_template("install/finish.html", lang=lang, error=error, domain=portal.domain),
        status,
    )
    return frameable(response, portal.domain)


@bp.post("/events")
def app_event() -> ResponseReturnValue:
    """``ONAPPINSTALL`` / ``ONAPPUPDATE`` / ``ONAPPUNINSTALL``: validate, then store or enqueue."""
    payload = AppEventSchema().load(read_form())
    auth = payload["auth"]
    svc = services()
    if payload["event"] == "ONAPPINSTALL":
        service.store_from_event(svc, payload)
        service.enqueue_registration(svc, auth["member_id"])
        return {"status": "installed"}
    if payload["event"] == "ONAPPUPDATE":
        authenticate(auth["member_id"], auth["application_token"])
        service.store_from_event(svc, payload)
        service.enqueue_registration(svc, auth["member_id"])
        return {"status": "updated"}
    # ONAPPUNINSTALL carries no tokens and every employee's browser sees application_token:
    # the uninstall counts only once Bitrix24 refuses the app's stored tokens.
    portal = authenticate(auth["member_id"], auth["application_token"], allow_inactive=True)
    clean = str(payload["data"].get("CLEAN", "0")) == "1"
    if portal.status == PortalStatus.UNINSTALLED:
        raise ApiError(409, "The app is already uninstalled on this portal.")
    try:
        done = service.confirm_uninstall(svc, portal, clean=clean)
    except service.UninstallUnverified:
        # Bitrix24 does not send the event again: a job keeps asking for a few hours.
        service.enqueue_uninstall_check(svc, portal.id, clean)
        return {"status": "checking", "clean": clean}, 202
    if not done:
        raise ApiError(403, "Bitrix24 says the app is still installed; nothing was changed.")
    return {"status": "uninstalled", "clean": clean}
