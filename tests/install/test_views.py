"""Install, re-install, update and uninstall, driven by the portal emulator over real HTTP."""

from __future__ import annotations

import json

import pytest
import requests
from sqlalchemy import select
from sqlalchemy import text

from b24app.handlers.definitions import APP_EVENTS
from b24app.handlers.definitions import CLIENT_EVENTS
from b24app.handlers.definitions import EVENTS
from b24app.install.registration import LEAD_FIELD_NAME
from b24app.placements.definitions import PLACEMENTS
from b24app.robots import definitions as robot_definitions
from b24app.storage.models import Journey
from b24app.storage.models import Portal
from b24app.storage.models import PortalStatus
from b24app.storage.models import utc_now
from b24app.storage.portals import get_portal
from tests.conftest import FIXTURES

WRITE_METHODS = {
    "event.bind", "bizproc.robot.add", "bizproc.robot.update", "placement.bind",
    "crm.lead.userfield.add", "crm.status.add",
}  # fmt: skip


def _writes(emulator, portal) -> list[str]:  # type: ignore[no-untyped-def]
    return [c.method for c in emulator.calls(portal=portal) if c.method in WRITE_METHODS and c.ok]


def _stored(services, member_id: str) -> Portal:  # type: ignore[no-untyped-def]
    with services.db() as session:
        portal = get_portal(session, member_id)
        assert portal is not None
        session.expunge(portal)
        return portal


def test_full_install_registers_everything_once(emulator, installed_portal, services) -> None:
    """One install binds every event, robot and widget, creates the field and the statuses."""
    portal = installed_portal
    base = services.settings.public_url
    bound = sorted((e["event"], e["handler"]) for e in portal.events)
    expected = sorted(
        [(e, f"{base}/handlers/events") for e in EVENTS]
        + [(e, f"{base}/install/events") for e in APP_EVENTS]
        + [(e, f"{base}{path}") for e, path in CLIENT_EVENTS.items()]
    )
    assert bound == expected
    robot_codes = [r["CODE"] for r in robot_definitions.robot_fields(base)]
    assert sorted(portal.robots) == sorted(robot_codes)
    assert sorted((p["placement"], p["handler"]) for p in portal.placements) == sorted(
        (p["PLACEMENT"], f"{base}/app/{p['path']}") for p in PLACEMENTS
    )
    assert LEAD_FIELD_NAME in portal.uf_names()
    status_ids = portal.lead_status_ids()
    stored = _stored(services, portal.member_id)
    mapping = stored.registration["statuses"]
    assert set(mapping) == {"new", "qualified", "confirmed", "came", "no_show"}
    assert all(mapping[stage] in status_ids for stage in mapping)
    # the defaults: NEW stays "new", CONVERTED (the success status) is "came"
    assert mapping["new"] == "NEW" and mapping["came"] == "CONVERTED"
    assert stored.registration["lead_field"] == LEAD_FIELD_NAME
    # every write went out exactly once
    writes = _writes(emulator, portal)
    assert len(writes) == len(set(map(str, enumerate(writes))))
    assert writes.count("event.bind") == len(EVENTS) + len(APP_EVENTS) + len(CLIENT_EVENTS)
    assert writes.count("bizproc.robot.add") == len(robot_codes)
    assert writes.count("crm.status.add") == 3  # qualified, confirmed, no-show


def test_tokens_are_encrypted_at_rest(installed_portal, services) -> None:
    """The raw database holds ciphertext; the model gives back the portal's real tokens."""
    pair = installed_portal.tokens_for(installed_portal.admin_user_id)
    with services.engine.connect() as conn:
        raw = conn.execute(
            text("SELECT access_token, refresh_token, application_token FROM portals")
        ).one()
    assert pair.refresh_token not in raw
    assert installed_portal.application_token not in "".join(raw)
    stored = _stored(services, installed_portal.member_id)
    assert stored.application_token == installed_portal.application_token
    assert stored.access_token and stored.refresh_token


def test_second_install_changes_nothing(emulator, installed_portal, run_jobs) -> None:
    """Installing again reads the state once and writes nothing."""
    before = len(_writes(emulator, installed_portal))
    result = installed_portal.install()
    run_jobs()
    assert result.installer.status_code == 200
    assert len(_writes(emulator, installed_portal)) == before
    assert len(installed_portal.events) == len(EVENTS) + len(APP_EVENTS) + len(CLIENT_EVENTS)


def test_event_before_installer_page(emulator, live_app, portal, services, run_jobs) -> None:
    """ONAPPINSTALL first, then the page: same end state, nothing registered twice."""
    result = portal.install(event_first=True)
    run_jobs()
    assert result.event.status_code == 200 and result.installer.status_code == 200
    assert _writes(emulator, portal).count("event.bind") == len(EVENTS) + len(APP_EVENTS) + len(
        CLIENT_EVENTS
    )
    assert _stored(services, portal.member_id).registration["statuses"]["came"] == "CONVERTED"


def test_installer_page_finishes_install_in_js(installed_portal) -> None:
    """The installer page calls installFinish through the Bitrix24 JS SDK after registering."""
    page = installed_portal.install().installer.text
    assert "installFinish()" in page and "initializeB24Frame" in page


def test_existing_custom_statuses_are_reused(
    emulator, live_app, portal, services, run_jobs
) -> None:
    """A portal whose admin already has "Пришёл"/"Не пришёл" statuses gets them mapped, not
    duplicated; the portal's own IDs are used."""
    portal.prepare_install()  # the app is added; its admin token works before our installer runs
    pair = portal.tokens_for(portal.admin_user_id)
    for status_id, name, sort in (("UC_CAME", "Пришёл", 45), ("UC_NOSHOW", "Не пришёл", 70)):
        r = requests.post(
            portal.client_endpoint + "crm.status.add",
            json={"auth": pair.access_token,
                  "fields": {"ENTITY_ID": "STATUS", "STATUS_ID": status_id, "NAME": name,
                             "SORT": sort}},
            timeout=10,
        )  # fmt: skip
        assert r.status_code == 200, r.text
    portal.install()
    run_jobs()
    mapping = _stored(services, portal.member_id).registration["statuses"]
    assert mapping["came"] == "UC_CAME" and mapping["no_show"] == "UC_NOSHOW"
    created = [c.params["fields"]["STATUS_ID"] for c in emulator.calls("crm.status.add", portal)
               if c.ok]  # fmt: skip
    assert "B24APP_NO_SHOW" not in created and "B24APP_CAME" not in created


def test_update_reregisters_changed_robots(
    emulator, installed_portal, monkeypatch, run_jobs
) -> None:
    """ONAPPUPDATE with a changed robot definition updates that robot, adds nothing."""
    original = robot_definitions.robot_fields

    def changed(public_url: str):  # type: ignore[no-untyped-def]
        robots = original(public_url)
        robots[0] = {**robots[0], "DESCRIPTION": {"ru": "новое описание", "en": "new text"}}
        return robots

    monkeypatch.setattr(robot_definitions, "robot_fields", changed)
    responses = installed_portal.update_app("2")
    run_jobs()
    assert responses and responses[0].status_code == 200
    updates = [c for c in emulator.calls("bizproc.robot.update", installed_portal) if c.ok]
    assert updates, "changed robots must be updated"
    assert not [c for c in emulator.calls("bizproc.robot.add", installed_portal) if c.ok][
        len(original("x")) :
    ]


@pytest.mark.parametrize("clean", [True, False])
def test_uninstall(emulator, installed_portal, services, run_jobs, clean: bool) -> None:
    """ONAPPUNINSTALL deactivates at once; CLEAN=1 deletes the portal's data, CLEAN=0 keeps it."""
    with services.db() as session:
        stored = get_portal(session, installed_portal.member_id)
        session.add(Journey(portal_id=stored.id, lead_id=1, created_at=utc_now()))
    responses = installed_portal.uninstall(clean=clean)
    assert [r.status_code for r in responses] == [200]
    run_jobs()
    with services.db() as session:
        stored = get_portal(session, installed_portal.member_id)
        leads = session.scalars(select(Journey)).all()
        if clean:
            assert stored is None and leads == []
        else:
            assert stored.status == PortalStatus.UNINSTALLED
            assert stored.access_token is None and stored.refresh_token is None
            assert len(leads) == 1


def _post_form(url: str, form: dict[str, str], query: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return requests.post(url, data=form, params=query or {}, timeout=10)


def test_forged_uninstall_is_rejected(installed_portal, live_app, services) -> None:
    """A wrong application_token or an unknown portal (the same 403) changes nothing."""
    form = json.loads((FIXTURES / "onappuninstall_event.form.json").read_text())
    url = services.settings.public_url + "/install/events"
    form["auth[member_id]"] = installed_portal.member_id
    wrong = _post_form(url, form)  # the fixture's token is not this portal's
    assert wrong.status_code == 403 and wrong.json()["code"] == 403
    form["auth[member_id]"] = "0" * 32
    unknown = _post_form(url, form)
    assert unknown.status_code == 403 and unknown.json() == wrong.json()
    assert _stored(services, installed_portal.member_id).status == PortalStatus.ACTIVE


def test_forged_installer_post_is_rejected(emulator, live_app, portal, services) -> None:
    """An installer POST whose token the OAuth server does not know stores nothing."""
    doc = json.loads((FIXTURES / "install_frame_post.json").read_text())
    form = dict(doc["form"], SERVER_ENDPOINT=emulator.server_endpoint, member_id=portal.member_id)
    response = _post_form(services.settings.public_url + "/install/", form, doc["query"])
    assert response.status_code == 403
    with services.db() as session:
        assert get_portal(session, portal.member_id) is None


def test_untrusted_oauth_server_is_rejected(live_app, services) -> None:
    """An installer POST naming some other OAuth server is refused before any call."""
    doc = json.loads((FIXTURES / "install_frame_post.json").read_text())
    form = dict(doc["form"], SERVER_ENDPOINT="https://oauth.evil.example/rest/")
    response = _post_form(services.settings.public_url + "/install/", form, doc["query"])
    assert response.status_code == 403
    assert "Untrusted" in response.json()["message"]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda f: f.pop("member_id"),
        lambda f: f.update(AUTH_ID="x"),
        lambda f: f.update({"auth[x": "1"}),
        lambda f: f.update(AUTH_EXPIRES="soon"),
    ],
)
def test_malformed_installer_post_is_400(live_app, services, mutate) -> None:  # type: ignore[no-untyped-def]
    """Missing or malformed fields get a 400 in the one error shape; nothing is stored."""
    doc = json.loads((FIXTURES / "install_frame_post.json").read_text())
    form = dict(doc["form"])
    mutate(form)
    response = _post_form(services.settings.public_url + "/install/", form, doc["query"])
    assert response.status_code == 400
    assert set(response.json()) >= {"code", "status", "message"}
    with services.db() as session:
        assert session.scalars(select(Portal)).all() == []


def test_page_and_event_at_the_same_moment_store_one_portal(
    emulator, live_app, portal, services, run_jobs
) -> None:
    """The installer POST and ONAPPINSTALL racing each other: both 200, one portal row."""
    import threading

    portal.prepare_install()
    query, form = portal.frame_payload(portal.admin_user_id, "DEFAULT", None, None)
    answers: dict[str, int] = {}
    start = threading.Barrier(2)

    def page() -> None:
        start.wait()
        url = services.settings.public_url + "/install/"
        answers["page"] = requests.post(url, data=form, params=query, timeout=30).status_code

    def event() -> None:
        start.wait()
        answers["event"] = portal.send_install_event(queued=False).status_code

    threads = [threading.Thread(target=page), threading.Thread(target=event)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run_jobs()
    assert answers == {"page": 200, "event": 200}
    with services.db() as session:
        assert len(session.scalars(select(Portal)).all()) == 1


def test_portal_without_the_client_loop_scopes_still_installs(
    emulator, live_app, services, run_jobs
) -> None:  # type: ignore[no-untyped-def]
    """No ``booking`` / ``imopenlines`` scope: their events are refused and left unbound, the
    rest of the registration goes through (``task`` is granted: its event is bound)."""
    portal = emulator.create_portal(
        "noscope", scope="crm,user_brief,department,placement,bizproc,im,task,app"
    )
    result = portal.install()
    run_jobs()
    assert result.installer.status_code == 200 and portal.install_finished
    bound = {e["event"] for e in portal.events}
    assert set(EVENTS) <= bound and not bound & (set(CLIENT_EVENTS) - {"ONTASKUPDATE"})
    assert "ONTASKUPDATE" in bound
    assert _stored(services, portal.member_id).registered_at is not None
