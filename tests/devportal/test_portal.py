"""Portal → app traffic: install, events, robots, placements, uninstall — form shapes."""

from __future__ import annotations

import json
import threading
import time

import requests

from devportal import DevPortal
from devportal import Portal
from tests.conftest import FIXTURES
from tests.devportal.conftest import Rest
from tests.devportal.conftest import Sink
from tests.waiting import deadline_seconds
from tests.waiting import wait_for


def _keys(name: str) -> set[str]:
    return set(json.loads((FIXTURES / name).read_text()))


def _wait(predicate) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + deadline_seconds()
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_install_posts_like_bitrix24(portal: Portal, sink: Sink) -> None:
    result = portal.install(event_first=True)
    assert result.installer is not None and result.installer.status_code == 200
    assert result.finished and portal.install_finished
    [installer] = sink.find("/install/")
    frame = json.loads((FIXTURES / "install_frame_post.json").read_text())
    assert set(installer["query"]) == set(frame["query"])
    assert set(installer["form"]) == set(frame["form"])
    assert installer["query"]["DOMAIN"] == portal.domain
    assert installer["form"]["member_id"] == portal.member_id
    [event] = sink.find("/install/events")
    assert set(event["form"]) == _keys("onappinstall_event.form.json")
    assert event["content_type"] == "application/x-www-form-urlencoded"
    assert sink.requests[0]["path"] == "/install/events"  # event_first


def test_events_only_after_install_finish(emulator: DevPortal, portal: Portal, sink: Sink) -> None:
    portal.install(finish_install=False)
    rest = Rest(portal, portal.tokens_for(1).access_token)
    assert rest("event.bind", event="ONCRMLEADADD", handler=emulator.app_url("/h")).json()["result"]
    assert rest("app.info").json()["result"]["INSTALLED"] is False
    portal.add_lead({"TITLE": "early"})
    assert emulator.wait_idle()
    assert sink.find("/h") == [] and portal.skipped_deliveries
    portal.finish_install()
    lead_id = portal.add_lead({"TITLE": "late"})
    assert emulator.wait_idle()
    [delivery] = sink.find("/h")
    assert set(delivery["form"]) == _keys("oncrmleadadd_event.form.json")
    assert delivery["form"]["data[FIELDS][ID]"] == str(lead_id)
    assert delivery["form"]["auth[application_token]"] == portal.application_token
    assert emulator.deliveries(kind="event", name="ONCRMLEADADD")[0].status == 200


def test_rest_changes_fire_events_and_automation_has_no_tokens(
    emulator: DevPortal, rest: Rest, installed: Portal, sink: Sink
) -> None:
    for event in ("ONCRMLEADUPDATE", "ONCRMACTIVITYADD", "ONCRMLEADDELETE"):
        rest("event.bind", event=event, handler=emulator.app_url("/h"))
    dup = rest("event.bind", event="ONCRMLEADUPDATE", handler=emulator.app_url("/h"))
    assert dup.status_code == 400 and dup.json()["error"] == "ERROR_HANDLER_ALREADY_EXIST"
    unknown = rest("event.bind", event="ONNOTHING", handler=emulator.app_url("/h"))
    assert unknown.json() == json.loads(
        (FIXTURES / "error_event_bind_event_not_found.json").read_text()
    )
    lead_id = installed.add_lead({"TITLE": "x"})
    rest("crm.lead.update", id=lead_id, fields={"TITLE": "y"})
    installed.update_lead(lead_id, {"TITLE": "z"}, by_user=None)
    installed.add_activity(lead_id, kind="call", direction="outgoing")
    installed.delete_lead(lead_id)
    assert emulator.wait_idle()
    forms = [r["form"] for r in sink.find("/h")]
    events = sorted(f["event"] for f in forms)
    assert events == ["ONCRMACTIVITYADD", "ONCRMLEADDELETE", "ONCRMLEADUPDATE", "ONCRMLEADUPDATE"]
    no_token = [f for f in forms if "auth[access_token]" not in f]
    assert len(no_token) == 1 and set(no_token[0]) >= {"auth[member_id]", "auth[application_token]"}


def test_delivery_switches(emulator: DevPortal, rest: Rest, installed: Portal, sink: Sink) -> None:
    rest("event.bind", event="ONCRMLEADADD", handler=emulator.app_url("/h"))
    emulator.delivery.hold()
    ids = [installed.add_lead({"TITLE": str(i)}) for i in range(3)]
    assert emulator.delivery.release(order="reverse") == 3
    assert emulator.wait_idle()
    got = [int(r["form"]["data[FIELDS][ID]"]) for r in sink.find("/h")]
    assert sorted(got) == ids
    emulator.delivery.duplicate = True
    emulator.delivery.mode = "sync"
    installed.add_lead({"TITLE": "dup"})
    assert len(sink.find("/h")) == 5
    emulator.delivery.duplicate = False
    emulator.delivery.drop_next(1)
    installed.add_lead({"TITLE": "lost"})
    assert len(sink.find("/h")) == 5
    assert any(d.dropped for d in emulator.deliveries(name="ONCRMLEADADD"))


def test_robot_call_shape_and_event_send(
    emulator: DevPortal, rest: Rest, installed: Portal, sink: Sink
) -> None:
    handler = emulator.app_url("/robots/lead_tagger")
    bad = rest("bizproc.robot.add", CODE="lead_tagger", HANDLER="http://evil.test/r", NAME="T")
    assert bad.json()["error"] == "ERROR_WRONG_HANDLER_URL"
    assert rest("bizproc.robot.add", CODE="bad code!", HANDLER=handler, NAME="T").status_code == 400
    ok = rest("bizproc.robot.add", CODE="lead_tagger", HANDLER=handler, NAME="Tagger",
              USE_SUBSCRIPTION="Y", PROPERTIES={"tag": {"Name": "Tag", "Type": "string"}})  # fmt: skip
    assert ok.json()["result"] is True
    dup = rest("bizproc.robot.add", CODE="lead_tagger", HANDLER=handler, NAME="Tagger")
    assert dup.json()["error"] == "ERROR_ACTIVITY_ALREADY_INSTALLED"
    assert rest("bizproc.robot.list").json()["result"] == ["lead_tagger"]
    lead_id = installed.add_lead({"TITLE": "r"})
    token = installed.run_robot("lead_tagger", lead_id, {"tag": "hot", "comment": "from robot"})
    assert emulator.wait_idle()
    [call] = sink.find("/robots/lead_tagger")
    assert set(call["form"]) == _keys("robot_handler_call_lead.DERIVED.form.json")
    assert call["form"]["document_id[2]"] == f"LEAD_{lead_id}"
    assert installed.robot_result(token) is None
    sent = rest("bizproc.event.send", EVENT_TOKEN=token, RETURN_VALUES={"result": "ok"})
    assert sent.json()["result"] is True
    assert installed.robot_result(token)["return_values"] == {"result": "ok"}
    again = rest("bizproc.event.send", EVENT_TOKEN=token, RETURN_VALUES={})
    assert again.status_code == 403
    assert again.json() == json.loads(
        (FIXTURES / "error_bizproc_event_send_access_denied.json").read_text()
    )


def test_placement_split_query_body(
    emulator: DevPortal, rest: Rest, installed: Portal, sink: Sink
) -> None:
    handler = emulator.app_url("/app/lead-tab")
    assert rest(
        "placement.bind", PLACEMENT="CRM_LEAD_DETAIL_TAB", HANDLER=handler, TITLE="T"
    ).json()["result"]
    assert (
        rest("placement.bind", PLACEMENT="CRM_LEAD_DETAIL_TAB", HANDLER=handler).status_code == 400
    )
    unknown = rest("placement.bind", PLACEMENT="NO_SUCH_PLACE", HANDLER=handler)
    assert unknown.status_code == 200 and unknown.json()["error"] == "ERROR_PLACEMENT_NOT_FOUND"
    response = installed.open_placement("CRM_LEAD_DETAIL_TAB", {"ID": "5"}, user_id=2, lang="en")
    assert response.status_code == 200
    [hit] = sink.find("/app/lead-tab")
    fixture = json.loads((FIXTURES / "placement_crm_lead_detail_tab.DERIVED.json").read_text())
    assert set(hit["query"]) == set(fixture["query"]) and hit["query"]["LANG"] == "en"
    assert set(hit["form"]) == set(fixture["form"])
    assert json.loads(hit["form"]["PLACEMENT_OPTIONS"]) == {"ID": "5"}
    assert rest("placement.unbind", PLACEMENT="CRM_LEAD_DETAIL_TAB").json()["result"] == {
        "count": 2
    }


def test_uninstall_has_no_tokens_and_cleans_up(
    emulator: DevPortal, rest: Rest, installed: Portal, sink: Sink
) -> None:
    rest("event.bind", event="ONAPPUNINSTALL", handler=emulator.app_url("/install/events"))
    rest("app.option.set", options={"k": "v"})
    installed.uninstall(clean=False)
    [event] = [r for r in sink.find("/install/events") if r["form"]["event"] == "ONAPPUNINSTALL"]
    assert set(event["form"]) == _keys("onappuninstall_event.form.json")
    assert event["form"]["data[CLEAN]"] == "0"
    assert not any("token" in k and k != "auth[application_token]" for k in event["form"])
    assert rest("user.current").status_code == 401
    assert installed.events == [] and installed.options == {"k": "v"}


def test_application_token_lives_as_long_as_the_install(
    emulator: DevPortal, installed: Portal, sink: Sink
) -> None:
    """Like Bitrix24: a re-install over the installed app keeps the application_token; after
    an uninstall the next install gets a new one, and the app's old tokens are dead (the app
    checks exactly that on ONAPPUNINSTALL: tests/install/test_trust.py)."""
    first = installed.application_token
    installed.install()
    assert installed.application_token == first
    pair = installed.tokens_for(1)
    oauth = emulator.server_endpoint + "app.info"
    assert requests.get(oauth, params={"auth": pair.access_token}, timeout=10).status_code == 200
    installed.uninstall(clean=False)
    assert requests.get(oauth, params={"auth": pair.access_token}, timeout=10).status_code == 401
    installed.install()
    assert installed.application_token != first


def test_robot_calls_do_not_wait_behind_the_event_queue(
    emulator: DevPortal, rest: Rest, installed: Portal, sink: Sink
) -> None:
    """The business-process engine calls robots apart from the event queue (issue 14): with
    every event thread stuck on a slow handler and more events queued, a robot call still
    arrives; on the single old queue (``routes = {}``) it is sent after every queued event."""
    rest("event.bind", event="ONCRMLEADADD", handler=emulator.app_url("/h"))
    rest("bizproc.robot.add", CODE="r1", HANDLER=emulator.app_url("/robot"), NAME="R",
         USE_SUBSCRIPTION="Y")  # fmt: skip
    gate = sink.gates["/h"] = threading.Event()
    lead_ids = [installed.add_lead({"TITLE": str(i)}) for i in range(8)]  # 4 stuck + 4 queued
    try:
        wait_for(lambda: len(sink.find("/h")) == 4, what="the 4 event threads busy")
        installed.run_robot("r1", lead_ids[0])
        wait_for(lambda: len(sink.find("/robot")) == 1, what="the robot call delivered")
        assert len(sink.find("/h")) == 4  # the queued events are still waiting
        assert emulator.deliveries(kind="event", name="ONCRMLEADADD") == []
    finally:
        gate.set()
    assert emulator.wait_idle()

    emulator.delivery.routes = {}
    gate.clear()
    more = [installed.add_lead({"TITLE": f"m{i}"}) for i in range(8)]
    try:
        wait_for(lambda: len(sink.find("/h")) == 12, what="the 4 event threads busy again")
        installed.run_robot("r1", more[0])
    finally:
        gate.set()
    assert emulator.wait_idle()
    robot = emulator.deliveries(kind="robot")[-1]
    events = emulator.deliveries(kind="event", name="ONCRMLEADADD")[-8:]
    assert robot.sent_at is not None
    assert all(e.sent_at is not None and e.sent_at <= robot.sent_at for e in events)
