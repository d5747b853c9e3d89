"""Issue 10, items 1 and 2: who may change an installed portal's credentials, and when an
uninstall counts. Driven by the emulator over real HTTP: an employee (user 2, not an admin)
has their own frame credentials and the portal's application_token, as in real Bitrix24."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest
import requests
from sqlalchemy import select

from b24app.bitrix.payload import flatten_php_form
from b24app.storage.models import Journey
from b24app.storage.models import Portal
from b24app.storage.models import PortalStatus
from b24app.storage.models import utc_now
from b24app.storage.portals import get_portal
from tests.conftest import FIXTURES

EMPLOYEE = 2
CHOSEN = "f" * 32  # the application_token an attacker would like the app to trust


def _stored(services: Any, member_id: str) -> Portal:
    with services.db() as session:
        portal = get_portal(session, member_id)
        assert portal is not None
        session.expunge(portal)
        return portal


def _post(url: str, data: Any, query: dict[str, str] | None = None) -> requests.Response:
    return requests.post(url, data=data, params=query or {}, timeout=15)


def _lead_event(portal: Any, application_token: str) -> list[tuple[str, str]]:
    """A real-shaped ONCRMLEADADD delivery for ``portal`` with the given token."""
    form: dict[str, str] = json.loads((FIXTURES / "oncrmleadadd_event.form.json").read_text())
    form["auth[member_id]"] = portal.member_id
    form["auth[application_token]"] = application_token
    form["ts"] = str(int(time.time()))
    return list(form.items())


def _lifecycle(portal: Any, event: str, user_id: int, **auth: str) -> list[tuple[str, str]]:
    """ONAPPINSTALL / ONAPPUPDATE as Bitrix24 sends it, with ``user_id``'s own tokens."""
    data = {
        "event": event,
        "data": {"VERSION": "1", "ACTIVE": "Y", "INSTALLED": "Y", "LANGUAGE_ID": "ru"},
        "ts": str(int(time.time())),
        "auth": {**portal.app.lifecycle_auth(portal.tokens_for(user_id)), **auth},
    }
    return flatten_php_form(data)


def _snapshot(services: Any, member_id: str) -> tuple[Any, ...]:
    p = _stored(services, member_id)
    return (p.access_token, p.refresh_token, p.application_token, p.domain, p.client_endpoint,
            p.status, p.token_version)  # fmt: skip


def test_employee_reposting_the_installer_changes_nothing(
    installed_portal: Any, services: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A non-admin re-posts their own frame credentials with a chosen APPLICATION_TOKEN to
    /install/: 403, stored tokens untouched, real events still pass, forged ones do not."""
    before = _snapshot(services, installed_portal.member_id)
    query, form = installed_portal.frame_payload(EMPLOYEE, "DEFAULT", None, None)
    form["APPLICATION_TOKEN"] = CHOSEN
    with caplog.at_level(logging.WARNING):
        response = _post(services.settings.public_url + "/install/", form, query)
    assert response.status_code == 403
    assert _snapshot(services, installed_portal.member_id) == before
    assert any("not a portal admin" in r.getMessage() for r in caplog.records)
    assert form["AUTH_ID"] not in caplog.text
    events = services.settings.public_url + "/handlers/events"
    real = _post(events, _lead_event(installed_portal, installed_portal.application_token))
    forged = _post(events, _lead_event(installed_portal, CHOSEN))
    assert real.status_code == 200 and forged.status_code != 200


@pytest.mark.parametrize("event", ["ONAPPINSTALL", "ONAPPUPDATE"])
def test_employee_forging_a_lifecycle_event_changes_nothing(
    installed_portal: Any, services: Any, event: str
) -> None:
    """ONAPPINSTALL / ONAPPUPDATE with an employee's own valid tokens: 403, nothing stored
    (for ONAPPUPDATE the real application_token is used: every employee's browser has it)."""
    before = _snapshot(services, installed_portal.member_id)
    token = CHOSEN if event == "ONAPPINSTALL" else installed_portal.application_token
    form = _lifecycle(installed_portal, event, EMPLOYEE, application_token=token)
    response = _post(services.settings.public_url + "/install/events", form)
    assert response.status_code == 403
    assert _snapshot(services, installed_portal.member_id) == before


def test_admin_reinstall_refreshes_tokens_but_keeps_the_application_token(
    installed_portal: Any, services: Any
) -> None:
    """Even a real admin's post does not replace the application_token of a live install
    (Bitrix24 keeps it for the life of the install); the admin's tokens are taken."""
    before = _stored(services, installed_portal.member_id)
    query, form = installed_portal.frame_payload(1, "DEFAULT", None, None)
    form["APPLICATION_TOKEN"] = CHOSEN
    form["DOMAIN"] = query["DOMAIN"] = "evil.example"
    response = _post(services.settings.public_url + "/install/", form, query)
    assert response.status_code == 200, response.text
    after = _stored(services, installed_portal.member_id)
    assert after.application_token == installed_portal.application_token
    assert after.access_token == form["AUTH_ID"] and after.token_version > before.token_version
    assert after.domain == before.domain and after.client_endpoint == before.client_endpoint


def test_forged_uninstall_with_clean_changes_nothing(
    installed_portal: Any, services: Any, run_jobs: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """An employee forges ONAPPUNINSTALL (CLEAN=1) with the application_token their browser
    received: Bitrix24 still accepts the app's tokens, so 403, nothing deactivated or deleted,
    a warning logged (no secrets)."""
    stored = _stored(services, installed_portal.member_id)
    with services.db() as session:
        session.add(Journey(portal_id=stored.id, lead_id=1, created_at=utc_now()))
    form: dict[str, str] = json.loads((FIXTURES / "onappuninstall_event.form.json").read_text())
    form["auth[member_id]"] = installed_portal.member_id
    form["auth[application_token]"] = installed_portal.application_token
    form["data[CLEAN]"] = "1"
    with caplog.at_level(logging.WARNING):
        response = _post(services.settings.public_url + "/install/events", form)
    run_jobs()
    assert response.status_code == 403
    after = _stored(services, installed_portal.member_id)
    assert after.status == PortalStatus.ACTIVE and after.access_token == stored.access_token
    with services.db() as session:
        assert len(session.scalars(select(Journey)).all()) == 1
    assert any("still accepts" in r.getMessage() for r in caplog.records)
    assert installed_portal.application_token not in caplog.text
    assert str(stored.access_token) not in caplog.text


def test_forged_uninstall_with_an_expired_stored_token_is_still_refused(
    installed_portal: Any, services: Any
) -> None:
    """The stored access token has expired: the app refreshes it (the new pair is stored) and
    Bitrix24 still answers, so the uninstall is refused."""
    before = _stored(services, installed_portal.member_id)
    installed_portal.expire_tokens()
    form: dict[str, str] = json.loads((FIXTURES / "onappuninstall_event.form.json").read_text())
    form["auth[member_id]"] = installed_portal.member_id
    form["auth[application_token]"] = installed_portal.application_token
    response = _post(services.settings.public_url + "/install/events", form)
    assert response.status_code == 403
    after = _stored(services, installed_portal.member_id)
    assert after.status == PortalStatus.ACTIVE and after.token_version > before.token_version


def test_real_uninstall_then_admin_reinstall(
    installed_portal: Any, services: Any, run_jobs: Any
) -> None:
    """A real uninstall (tokens revoked first) is confirmed and cleans up; the admin's new
    install afterwards works and brings a new application_token."""
    old_token = installed_portal.application_token
    responses = installed_portal.uninstall(clean=True)
    assert [r.status_code for r in responses] == [200]
    run_jobs()
    with services.db() as session:
        assert get_portal(session, installed_portal.member_id) is None
    result = installed_portal.install()
    run_jobs()
    assert result.installer.status_code == 200 and result.event.status_code == 200
    stored = _stored(services, installed_portal.member_id)
    assert stored.status == PortalStatus.ACTIVE
    assert stored.application_token == installed_portal.application_token != old_token


def test_missed_uninstall_then_admin_reinstall_takes_the_new_token(
    installed_portal: Any, services: Any, run_jobs: Any
) -> None:
    """The uninstall event never reached us (the portal is still active here): the admin's
    new install carries a new application_token, and as Bitrix24 refuses the old tokens the
    new one is taken."""
    installed_portal.events.clear()  # the uninstall event goes nowhere
    installed_portal.app.install_event_url = None
    installed_portal.uninstall(clean=False)
    assert _stored(services, installed_portal.member_id).status == PortalStatus.ACTIVE
    result = installed_portal.install()
    run_jobs()
    assert result.installer.status_code == 200
    stored = _stored(services, installed_portal.member_id)
    assert stored.application_token == installed_portal.application_token


def test_new_portal_takes_the_posted_domain_only_when_app_info_has_none(
    emulator: Any, live_app: Any, portal: Any, services: Any, run_jobs: Any
) -> None:
    """A brand-new portal: app.info names domain and endpoint, so the post cannot set them."""
    portal.prepare_install()
    query, form = portal.frame_payload(1, "DEFAULT", None, None)
    query["DOMAIN"] = "evil.example"
    response = _post(services.settings.public_url + "/install/", form, query)
    run_jobs()
    assert response.status_code == 200, response.text
    stored = _stored(services, portal.member_id)
    assert stored.domain == portal.domain and stored.client_endpoint == portal.client_endpoint


def test_existing_portal_never_takes_the_posted_domain(
    installed_portal: Any, services: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hardening: when app.info leaves out domain and client_endpoint, an existing portal keeps
    what it has; the posted DOMAIN / client_endpoint are not used."""
    from b24app.install import service

    original = service.oauth_app_info

    def without_address(*args: Any, **kwargs: Any) -> dict[str, Any]:
        info = original(*args, **kwargs)
        info["install"] = {k: v for k, v in info["install"].items()
                           if k not in ("domain", "client_endpoint")}  # fmt: skip
        return info

    monkeypatch.setattr(service, "oauth_app_info", without_address)
    before = _stored(services, installed_portal.member_id)
    form = _lifecycle(installed_portal, "ONAPPUPDATE", 1, domain="evil.example",
                      client_endpoint="https://evil.example/rest/")  # fmt: skip
    response = _post(services.settings.public_url + "/install/events", form)
    assert response.status_code == 200, response.text
    after = _stored(services, installed_portal.member_id)
    assert (after.domain, after.client_endpoint) == (before.domain, before.client_endpoint)


def test_uninstall_that_cannot_be_confirmed_at_once_is_checked_by_a_job(
    installed_portal: Any, services: Any, run_jobs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The OAuth server does not answer during a real uninstall: 202, nothing changes yet, and
    a queued job confirms it once Bitrix24 answers again (Bitrix24 never re-sends the event)."""
    from b24app.bitrix.errors import TransportError
    from b24app.install import service

    original = service.oauth_app_info

    def down(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise TransportError("NETWORK_ERROR", "ConnectionError", None, method="app.info")

    monkeypatch.setattr(service, "oauth_app_info", down)
    responses = installed_portal.uninstall(clean=False)
    assert [r.status_code for r in responses] == [202]
    assert _stored(services, installed_portal.member_id).status == PortalStatus.ACTIVE
    run_jobs()  # still down: the job fails and RQ schedules its retry
    assert _stored(services, installed_portal.member_id).status == PortalStatus.ACTIVE
    monkeypatch.setattr(service, "oauth_app_info", original)
    service.confirm_uninstall_job(_stored(services, installed_portal.member_id).id, False)
    assert _stored(services, installed_portal.member_id).status == PortalStatus.UNINSTALLED


def test_forged_uninstall_checked_by_the_job_changes_nothing(
    installed_portal: Any, services: Any, run_jobs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A forged uninstall while Bitrix24 is unreachable: the later check finds the app still
    installed and changes nothing."""
    from b24app.bitrix.errors import TransportError
    from b24app.install import service

    original = service.oauth_app_info

    def down(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise TransportError("NETWORK_ERROR", "ConnectionError", None, method="app.info")

    monkeypatch.setattr(service, "oauth_app_info", down)
    form: dict[str, str] = json.loads((FIXTURES / "onappuninstall_event.form.json").read_text())
    form["auth[member_id]"] = installed_portal.member_id
    form["auth[application_token]"] = installed_portal.application_token
    form["data[CLEAN]"] = "1"
    response = _post(services.settings.public_url + "/install/events", form)
    assert response.status_code == 202
    monkeypatch.setattr(service, "oauth_app_info", original)
    run_jobs()
    stored = _stored(services, installed_portal.member_id)
    assert stored.status == PortalStatus.ACTIVE and stored.access_token
