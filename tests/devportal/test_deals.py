"""Deals in the emulator: crm.deal/crm.item (2), pipelines and stages, stage history,
conversion, simple mode, deal events and deal documents for robots."""

from __future__ import annotations

import json

from devportal import DevPortal
from devportal import Portal
from devportal.deals import add_pipeline
from tests.conftest import FIXTURES
from tests.devportal.conftest import Rest
from tests.devportal.conftest import Sink


def test_deal_stages_match_the_documented_list(rest: Rest, installed: Portal) -> None:
    expected = json.loads((FIXTURES / "crm_status_list_DEAL_STAGE.json").read_text())["result"]
    got = rest("crm.status.list", filter={"ENTITY_ID": "DEAL_STAGE"}).json()["result"]
    assert [(r["STATUS_ID"], r["SEMANTICS"], r["EXTRA"]["SEMANTICS"]) for r in got] == [
        (r["STATUS_ID"], r["SEMANTICS"], r["EXTRA"]["SEMANTICS"]) for r in expected
    ]
    assert set(expected[0]) == set(got[0])
    category = add_pipeline(installed, "Абонементы")
    stages = rest("crm.status.list", filter={"ENTITY_ID": f"DEAL_STAGE_{category}"}).json()
    assert stages["result"][0]["STATUS_ID"] == f"C{category}:NEW"
    assert stages["result"][0]["CATEGORY_ID"] == str(category)
    old = rest("crm.dealcategory.stage.list", id=category).json()["result"]
    assert [s["STATUS_ID"] for s in old][-3:] == [f"C{category}:WON", f"C{category}:LOSE",
                                                   f"C{category}:APOLOGY"]  # fmt: skip
    cats = rest("crm.category.list", entityTypeId=2).json()["result"]["categories"]
    assert [c["id"] for c in cats] == [0, category]
    assert [c["ID"] for c in rest("crm.dealcategory.list").json()["result"]] == [str(category)]


def test_deal_crud_item_view_and_stage_history(rest: Rest, installed: Portal) -> None:
    deal_id = rest(
        "crm.deal.add", fields={"TITLE": "Стрижка", "OPPORTUNITY": 2500, "SOURCE_ID": "CALL"}
    ).json()["result"]
    got = rest("crm.deal.get", id=deal_id).json()["result"]
    assert (
        got["STAGE_ID"] == "NEW" and got["CATEGORY_ID"] == "0" and got["OPPORTUNITY"] == "2500.00"
    )
    assert rest("crm.deal.update", id=deal_id, fields={"STAGE_ID": "WON"}).json()["result"]
    item = rest("crm.item.get", entityTypeId=2, id=deal_id).json()["result"]["item"]
    assert (
        item["stageId"] == "WON"
        and item["stageSemanticId"] == "S"
        and item["opportunity"] == 2500.0
    )
    listed = rest("crm.item.list", entityTypeId=2, filter={">id": 0}, start=-1).json()
    assert [i["id"] for i in listed["result"]["items"]] == [deal_id]
    history = rest("crm.stagehistory.list", entityTypeId=2, filter={"OWNER_ID": deal_id}).json()
    rows = history["result"]["items"]
    assert [(r["TYPE_ID"], r["STAGE_ID"], r["STAGE_SEMANTIC_ID"], r["CATEGORY_ID"]) for r in rows] == [
        (1, "NEW", "P", 0), (3, "WON", "S", 0)
    ]  # fmt: skip
    missing = rest("crm.item.get", entityTypeId=2, id=999).json()
    assert missing["error"] == "NOT_FOUND"
    assert rest("crm.deal.delete", id=deal_id).json()["result"] is True
    assert rest("crm.deal.get", id=deal_id).status_code == 400


def test_conversion_and_deal_events(
    emulator: DevPortal, rest: Rest, installed: Portal, sink: Sink
) -> None:
    for event in ("ONCRMLEADUPDATE", "ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMDEALDELETE"):
        rest("event.bind", event=event, handler=emulator.app_url("/h"))
    assert rest("crm.settings.mode.get").json()["result"] == 1
    lead_id = installed.add_lead({"TITLE": "Анна", "NAME": "Анна", "UTM_SOURCE": "ai_bot",
                                  "OPPORTUNITY": 3000})  # fmt: skip
    deal_id = installed.convert_lead(lead_id)
    deal = installed.deal(deal_id)
    lead = installed.lead(lead_id)
    assert deal is not None and lead is not None
    assert deal["LEAD_ID"] == str(lead_id) and deal["CONTACT_ID"] and deal["UTM_SOURCE"] == "ai_bot"
    assert lead["STATUS_ID"] == "CONVERTED" and lead["STATUS_SEMANTIC_ID"] == "S"
    installed.update_deal(deal_id, {"STAGE_ID": "EXECUTING"})
    installed.delete_deal(deal_id)
    assert emulator.wait_idle()
    forms = [r["form"] for r in sink.find("/h")]
    assert sorted(f["event"] for f in forms) == [
        "ONCRMDEALADD", "ONCRMDEALDELETE", "ONCRMDEALUPDATE", "ONCRMLEADUPDATE"
    ]  # fmt: skip
    expected = json.loads(
        (FIXTURES / "oncrmdealadd_event_outgoing_webhook.nested.json").read_text()
    )
    [added] = [f for f in forms if f["event"] == "ONCRMDEALADD"]
    assert added["data[FIELDS][ID]"] == str(deal_id)
    assert {f"auth[{k}]" for k in expected["auth"]} <= set(added)


def test_simple_mode_converts_every_new_lead(
    emulator: DevPortal, portal: Portal, sink: Sink
) -> None:
    portal.set_crm_mode("simple")
    portal.install()
    rest = Rest(portal, portal.tokens_for(1).access_token)
    for event in ("ONCRMLEADADD", "ONCRMLEADUPDATE", "ONCRMDEALADD"):
        rest("event.bind", event=event, handler=emulator.app_url("/h"))
    assert rest("crm.settings.mode.get").json()["result"] == 2
    lead_id = rest("crm.lead.add", fields={"TITLE": "Чат"}).json()["result"]
    deals = rest("crm.deal.list", filter={"LEAD_ID": lead_id}).json()["result"]
    assert len(deals) == 1 and deals[0]["STAGE_ID"] == "NEW"
    assert rest("crm.lead.get", id=lead_id).json()["result"]["STATUS_ID"] == "CONVERTED"
    assert emulator.wait_idle()
    # Delivered concurrently, like the portal's queue: the order is not guaranteed.
    assert sorted(r["form"]["event"] for r in sink.find("/h")) == [
        "ONCRMDEALADD", "ONCRMLEADADD", "ONCRMLEADUPDATE"
    ]  # fmt: skip


def test_robot_on_a_deal_document(
    emulator: DevPortal, rest: Rest, installed: Portal, sink: Sink
) -> None:
    rest(
        "bizproc.robot.add", CODE="r1", HANDLER=emulator.app_url("/robot"), NAME="R",
        AUTH_USER_ID=1, USE_SUBSCRIPTION="N",
    )  # fmt: skip
    deal_id = installed.add_deal({"TITLE": "D"})
    installed.run_robot("r1", deal_id, entity="deal")
    assert emulator.wait_idle()
    [call] = sink.find("/robot")
    assert call["form"]["document_id[2]"] == f"DEAL_{deal_id}"
    assert call["form"]["document_type[1]"] == "CCrmDocumentDeal"


def test_contact_get_and_add_in_the_documented_format(rest: Rest, installed: Portal) -> None:
    """``crm.contact.get``: every value a string (ids too), multifields as lists; a deal's
    ``CONTACT_ID`` reads its person; missing → 400 "Not found"; a bad id → 400."""
    contact_id = installed.add_contact("Анна", "Петрова", PHONE=[
        {"ID": "1", "VALUE_TYPE": "WORK", "VALUE": "+79990001122", "TYPE_ID": "PHONE"}])  # fmt: skip
    got = rest("crm.contact.get", id=contact_id).json()["result"]
    assert got["ID"] == str(contact_id) and got["NAME"] == "Анна"
    assert got["LAST_NAME"] == "Петрова" and got["SECOND_NAME"] == ""
    assert got["HAS_PHONE"] == "Y" and got["PHONE"][0]["VALUE"] == "+79990001122"
    assert {"ASSIGNED_BY_ID", "DATE_CREATE", "COMPANY_ID", "LEAD_ID", "OPENED"} <= set(got)
    assert all(isinstance(got[k], str) for k in ("ID", "NAME", "ASSIGNED_BY_ID", "DATE_CREATE"))
    added = rest("crm.contact.add", fields={"NAME": "Олег"}).json()["result"]
    assert rest("crm.contact.get", ID=added).json()["result"]["NAME"] == "Олег"
    deal_id = rest("crm.deal.add", fields={"TITLE": "Стрижка", "CONTACT_ID": contact_id}).json()
    batch = rest(
        "batch",
        cmd={"deal": f"crm.deal.get?ID={deal_id['result']}",
             "contact": "crm.contact.get?ID=$result[deal][CONTACT_ID]"},
    ).json()["result"]  # fmt: skip
    assert batch["result"]["contact"]["NAME"] == "Анна"
    missing = rest("crm.contact.get", id=99999)
    assert missing.status_code == 400
    assert missing.json() == {"error": "", "error_description": "Not found"}
    assert rest("crm.contact.get", id="abc").status_code == 400
