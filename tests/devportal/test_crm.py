"""CRM methods: paging, start=-1 + >ID, not-found shapes, crm.item, stages, history."""

from __future__ import annotations

import json

from devportal import Portal
from tests.conftest import FIXTURES
from tests.devportal.conftest import Rest


def test_paging_total_next(rest: Rest, installed: Portal) -> None:
    installed.bulk_create_leads(120)
    first = rest("crm.lead.list", order={"ID": "ASC"}).json()
    assert len(first["result"]) == 50 and first["total"] == 120 and first["next"] == 50
    last = rest("crm.lead.list", start=100).json()
    assert len(last["result"]) == 20 and "next" not in last
    expected_keys = set(
        json.loads((FIXTURES / "rest_list_crm_lead_list.json").read_text())["result"][0]
    )
    assert {k for k in expected_keys if not k.startswith("UF_")} <= set(first["result"][0])


def test_start_minus_one_with_id_filter(rest: Rest, installed: Portal) -> None:
    installed.bulk_create_leads(20_000)
    last, seen = 0, 0
    pages = 0
    while True:
        body = rest("crm.lead.list", filter={">ID": last}, order={"ID": "ASC"}, start=-1,
                    select=["ID"]).json()  # fmt: skip
        assert "total" not in body and "next" not in body
        rows = body["result"]
        seen += len(rows)
        pages += 1
        if len(rows) < 50:
            break
        last = int(rows[-1]["ID"])
        if pages > 3:  # O(page) is enough to prove; jump to the end
            last = 19_975
            seen = 19_975
    assert seen == 20_000


def test_filters_and_not_found(rest: Rest, installed: Portal) -> None:
    a = installed.add_lead({"TITLE": "A", "SOURCE_ID": "CALL", "OPPORTUNITY": 500})
    installed.add_lead({"TITLE": "B", "SOURCE_ID": "WEB", "OPPORTUNITY": 1500})
    assert [
        r["TITLE"] for r in rest("crm.lead.list", filter={"@SOURCE_ID": ["CALL"]}).json()["result"]
    ] == ["A"]
    assert [
        r["TITLE"] for r in rest("crm.lead.list", filter={">=OPPORTUNITY": 1000}).json()["result"]
    ] == ["B"]
    assert [
        r["TITLE"] for r in rest("crm.lead.list", filter={"!SOURCE_ID": "CALL"}).json()["result"]
    ] == ["B"]
    desc = rest("crm.lead.list", order={"OPPORTUNITY": "DESC"}).json()["result"]
    assert [r["TITLE"] for r in desc] == ["B", "A"]
    assert rest("crm.lead.get", id=a).json()["result"]["OPPORTUNITY"] == "500.00"
    missing = rest("crm.lead.get", id=9999)
    assert missing.json() == {"error": "", "error_description": "Not found"}
    item_missing = rest("crm.item.get", entityTypeId=1, id=9999).json()
    assert item_missing == json.loads((FIXTURES / "error_crm_item_get_not_found.json").read_text())


def test_crm_item_camel_case_and_user_fields(rest: Rest, installed: Portal) -> None:
    uf = rest(
        "crm.lead.userfield.add", fields={"FIELD_NAME": "B24APP_AI", "USER_TYPE_ID": "string"}
    )
    assert uf.status_code == 200
    dup = rest(
        "crm.lead.userfield.add", fields={"FIELD_NAME": "B24APP_AI", "USER_TYPE_ID": "string"}
    )
    assert dup.status_code == 400
    lead_id = installed.add_lead({"TITLE": "X", "UF_CRM_B24APP_AI": "hot", "ASSIGNED_BY_ID": 2})
    item = rest("crm.item.get", entityTypeId=1, id=lead_id).json()["result"]["item"]
    assert item["id"] == lead_id and item["assignedById"] == 2 and item["stageId"] == "NEW"
    assert item["ufCrmB24appAi"] == "hot" and item["opportunity"] == 0.0
    orig = rest("crm.item.get", entityTypeId=1, id=lead_id, useOriginalUfNames="Y").json()
    assert orig["result"]["item"]["UF_CRM_B24APP_AI"] == "hot"
    updated = rest("crm.item.update", entityTypeId=1, id=lead_id, fields={"stageId": "IN_PROCESS"})
    assert updated.json()["result"]["item"]["stageId"] == "IN_PROCESS"
    listed = rest(
        "crm.item.list", entityTypeId=1, filter={"stageId": "IN_PROCESS"}, select=["id", "title"]
    ).json()
    assert listed["result"]["items"] == [{"id": lead_id, "title": "X"}] and listed["total"] == 1


def test_statuses_semantics_and_stage_history(rest: Rest, installed: Portal) -> None:
    rows = rest("crm.status.list", filter={"ENTITY_ID": "STATUS"}).json()["result"]
    sem = {r["STATUS_ID"]: r["SEMANTICS"] for r in rows}
    assert sem == {
        "NEW": None,
        "IN_PROCESS": None,
        "PROCESSED": None,
        "CONVERTED": "S",
        "JUNK": "F",
    }
    rest(
        "crm.status.add",
        fields={"ENTITY_ID": "STATUS", "STATUS_ID": "B24APP_CAME", "NAME": "Пришёл", "SORT": 40},
    )
    rest(
        "crm.status.add",
        fields={
            "ENTITY_ID": "STATUS",
            "STATUS_ID": "B24APP_NO_SHOW",
            "NAME": "Не пришёл",
            "SORT": 70,
        },
    )
    sem = {
        r["STATUS_ID"]: r["SEMANTICS"]
        for r in rest("crm.status.list", filter={"ENTITY_ID": "STATUS"}).json()["result"]
    }
    assert sem["B24APP_CAME"] is None and sem["B24APP_NO_SHOW"] == "F"
    sources = [
        r["STATUS_ID"]
        for r in rest("crm.status.list", filter={"ENTITY_ID": "SOURCE"}).json()["result"]
    ]
    assert "1|OPENLINE" in sources and "WEBFORM" in sources

    lead_id = installed.add_lead({"TITLE": "S"})
    installed.update_lead(lead_id, {"STATUS_ID": "IN_PROCESS"})
    installed.update_lead(lead_id, {"STATUS_ID": "CONVERTED"})
    items = rest("crm.stagehistory.list", entityTypeId=1, filter={"OWNER_ID": lead_id},
                 order={"ID": "ASC"}).json()["result"]["items"]  # fmt: skip
    assert [(i["TYPE_ID"], i["STATUS_ID"], i["STATUS_SEMANTIC_ID"]) for i in items] == [
        (1, "NEW", "P"),
        (2, "IN_PROCESS", "P"),
        (3, "CONVERTED", "S"),
    ]
    assert set(items[0]) == {
        "ID",
        "TYPE_ID",
        "OWNER_ID",
        "CREATED_TIME",
        "STATUS_ID",
        "STATUS_SEMANTIC_ID",
    }
    after = rest(
        "crm.stagehistory.list", entityTypeId=1, filter={">ID": items[0]["ID"]}, start=-1
    ).json()
    assert "total" not in after and len(after["result"]["items"]) == 2


def test_notifications_comments_tasks_options(rest: Rest, installed: Portal) -> None:
    lead_id = installed.add_lead({"TITLE": "N"})
    rest("im.notify.system.add", USER_ID=2, MESSAGE="SLA!", TAG="sla-1")
    rest("im.notify.system.add", USER_ID=2, MESSAGE="SLA again", TAG="sla-1")
    assert [n["removed"] for n in installed.notifications] == [True, False]
    rest(
        "crm.timeline.comment.add",
        fields={"ENTITY_ID": lead_id, "ENTITY_TYPE": "lead", "COMMENT": "hi"},
    )
    assert installed.timeline_comments[0]["COMMENT"] == "hi"
    task = rest("tasks.task.add", fields={"TITLE": "Call back", "RESPONSIBLE_ID": 2,
                                          "UF_CRM_TASK": [f"L_{lead_id}"]}).json()  # fmt: skip
    assert task["result"]["task"]["responsibleId"] == "2"
    assert rest("crm.activity.todo.add", ownerTypeId=1, ownerId=lead_id,
                deadline="2026-12-01T10:00:00").json()["result"]["id"] > 0  # fmt: skip
    rest("app.option.set", options={"settings": "v1"})
    assert rest("app.option.get", option="settings").json()["result"] == "v1"


def test_a_user_reads_only_the_items_they_may_read(installed: Portal) -> None:
    """Admin: every lead and deal. User 2: only those assigned to them, until granted the kind;
    refused with the documented crm.item.get error (and crm.lead/deal.get's "Access denied")."""
    mine = installed.add_lead({"TITLE": "Mine", "ASSIGNED_BY_ID": 2})
    theirs = installed.add_lead({"TITLE": "Theirs", "ASSIGNED_BY_ID": 3})
    deal = installed.add_deal({"TITLE": "Deal", "ASSIGNED_BY_ID": 3})
    admin = Rest(installed, installed.tokens_for(1).access_token)
    user = Rest(installed, installed.tokens_for(2).access_token)
    for lead in (mine, theirs):
        assert admin("crm.item.get", entityTypeId=1, id=lead).status_code == 200
    assert admin("crm.item.get", entityTypeId=2, id=deal).json()["result"]["item"]["id"] == deal
    assert user("crm.item.get", entityTypeId=1, id=mine).json()["result"]["item"]["id"] == mine
    assert user("crm.lead.get", id=mine).json()["result"]["TITLE"] == "Mine"
    denied = {"error": "ACCESS_DENIED",
              "error_description": "You do not have permission to view this item"}  # fmt: skip
    for entity_type_id, item in ((1, theirs), (2, deal)):
        refused = user("crm.item.get", entityTypeId=entity_type_id, id=item)
        assert refused.status_code == 400 and refused.json() == denied
    for method, item in (("crm.lead.get", theirs), ("crm.deal.get", deal)):
        assert user(method, id=item).json() == {"error": "", "error_description": "Access denied"}
    missing = user("crm.item.get", entityTypeId=1, id=9999).json()
    assert missing["error"] == "NOT_FOUND"  # not found comes first
    installed.grant_crm_read(2, "deal")
    assert user("crm.item.get", entityTypeId=2, id=deal).status_code == 200
    assert user("crm.item.get", entityTypeId=1, id=theirs).json() == denied
