"""The snapshot normaliser reads crm.item (camelCase) and crm.lead (UPPER_CASE) answers alike."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from b24app.leads.snapshot import normalise_lead
from b24app.leads.snapshot import parse_time
from b24app.leads.snapshot import uf_camel_name
from tests.conftest import FIXTURES


def _fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())["result"]


def test_crm_item_answer_is_normalised() -> None:
    """crm.item.get: camelCase, numbers as numbers, times converted to naive UTC."""
    snap = normalise_lead(_fixture("crm_item_get_lead.json")["item"])
    assert snap.lead_id == 250
    assert snap.status_id == "IN_PROCESS"
    assert snap.status_semantic == "P"
    assert snap.assigned_by_id == 1
    assert snap.source_id == "TRADE_SHOW"
    assert snap.source_description == "Exhibition about admins"
    assert snap.opportunity == Decimal("999.90")
    assert snap.currency_id == "USD"
    assert snap.created_at == dt.datetime(2024, 7, 22, 16, 0, 8)
    assert snap.modified_at == dt.datetime(2024, 7, 22, 16, 0, 8)


def test_crm_lead_answer_is_normalised() -> None:
    """crm.lead.get: UPPER_CASE strings give the same snapshot fields."""
    snap = normalise_lead(_fixture("crm_lead_get.json"))
    assert snap.lead_id == 123
    assert snap.status_id == "IN_PROCESS"
    assert snap.assigned_by_id == 1
    assert snap.opportunity == Decimal("0.00")
    assert snap.currency_id == "EUR"
    assert snap.created_at == dt.datetime(2024, 5, 23, 16, 18, 25)
    assert snap.utm_source == ""


def test_both_styles_agree_on_the_same_lead() -> None:
    """The same lead in both shapes gives equal snapshots (UF field under both names)."""
    upper = {
        "ID": "7", "TITLE": "Стрижка", "STATUS_ID": "NEW", "STATUS_SEMANTIC_ID": "P",
        "ASSIGNED_BY_ID": "3", "SOURCE_ID": "2|TELEGRAM", "UTM_SOURCE": "ai_bot",
        "OPPORTUNITY": "1500.00", "CURRENCY_ID": "RUB", "DATE_CREATE": "2025-01-10T12:00:00+03:00",
        "DATE_MODIFY": "2025-01-10T12:05:00+03:00", "MOVED_TIME": "2025-01-10T12:00:00+03:00",
        "IM": [{"ID": "1", "VALUE": "imol|telegrambot|2|67|21", "VALUE_TYPE": "OPENLINE"}],
        "UF_CRM_B24APP_AI": "AI-lead · Telegram",
    }  # fmt: skip
    camel = {
        "id": 7, "title": "Стрижка", "stageId": "NEW", "stageSemanticId": "P",
        "assignedById": 3, "sourceId": "2|TELEGRAM", "utmSource": "ai_bot",
        "opportunity": 1500.0, "currencyId": "RUB", "createdTime": "2025-01-10T12:00:00+03:00",
        "updatedTime": "2025-01-10T12:05:00+03:00", "movedTime": "2025-01-10T12:00:00+03:00",
        "fm": [{"id": 1, "valueType": "OPENLINE", "value": "imol|telegrambot|2|67|21", "typeId": "IM"}],
        "ufCrmB24appAi": "AI-lead · Telegram",
    }  # fmt: skip
    a = normalise_lead(upper, "UF_CRM_B24APP_AI")
    b = normalise_lead(camel, "UF_CRM_B24APP_AI")
    assert a == b
    assert a.ai_field_value == "AI-lead · Telegram"
    assert a.im_values == ("imol|telegrambot|2|67|21",)
    assert a.modified_at == dt.datetime(2025, 1, 10, 9, 5)


def test_a_lead_without_id_is_refused() -> None:
    """An answer without a positive id is not a lead."""
    with pytest.raises(ValueError):
        normalise_lead({"TITLE": "x", "ID": "0"})


@pytest.mark.parametrize("value", ["", None, "not a date", 5])
def test_empty_or_bad_times_are_none(value: object) -> None:
    """Bitrix24's empty dates ("") and garbage parse to None."""
    assert parse_time(value) is None


def test_uf_camel_name() -> None:
    """UF names as crm.item spells them without useOriginalUfNames."""
    assert uf_camel_name("UF_CRM_B24APP_AI") == "ufCrmB24appAi"
    assert uf_camel_name("UF_CRM_1720019876534") == "ufCrm_1720019876534"


def test_normalise_lead_reads_both_generations_and_the_lead_field() -> None:
    """normalise_lead: the crm.item and crm.lead answers of one lead give the same snapshot."""
    item = {"id": 9, "stageId": "NEW", "sourceId": "CALL", "UF_CRM_B24APP_AI": "AI-lead · VK",
            "updatedTime": "2025-02-01T10:00:00+03:00"}  # fmt: skip
    lead = {"ID": "9", "STATUS_ID": "NEW", "SOURCE_ID": "CALL", "UF_CRM_B24APP_AI": "AI-lead · VK",
            "DATE_MODIFY": "2025-02-01T10:00:00+03:00"}  # fmt: skip
    one, two = normalise_lead(item, "UF_CRM_B24APP_AI"), normalise_lead(lead, "UF_CRM_B24APP_AI")
    assert one == two
    assert (one.lead_id, one.ai_field_value) == (9, "AI-lead · VK")
    assert one.modified_at == dt.datetime(2025, 2, 1, 7, 0)
