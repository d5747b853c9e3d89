"""The settings page's appointment section: shown with the defaults, saved, validated."""

from __future__ import annotations

from typing import Any

from b24app.settings import load_settings
from tests.placements.conftest import Framed
from tests.placements.test_views import _settings_form
from tests.placements.test_views import _token


def test_settings_page_saves_the_appointment_section(framed: Any, services: Any) -> None:
    page = framed.open("/app/settings", "DEFAULT", None)
    html = page.get_data(as_text=True)
    assert 'id="settings-appointments"' in html and "chat, workflow, todo" in html
    form = _settings_form(
        _token(page), appt_offsets="24h, 3h", appt_channels="workflow, chat, todo",
        appt_sender="2", appt_template="525", appt_doc_type="DEAL",
        appt_text_param="reminder_text", appt_time_param="appointment_time",
        appt_field_entity="deal", appt_field="UF_CRM_VISIT",
        appt_prompt_ru="1 — да, 2 — нет", appt_prompt_en="1 — yes, 2 — no",
        appt_refill_days="14", appt_refill_offers="3",
    )  # fmt: skip
    assert 'name="appt_refill_days"' in html
    response = framed.client.post("/app/settings", data=form)
    assert response.status_code == 200 and 'id="settings-saved"' in response.get_data(as_text=True)
    with services.db() as session:
        section = load_settings(session, framed.portal_id)["appointments"]
    assert section["offsets"] == ["24h", "3h"]
    assert section["channels"] == ["workflow", "chat", "todo"]
    assert section["workflow"]["template_id"] == 525 and section["sender_user_id"] == 2
    assert section["date_field"] == {"entity": "deal", "field": "UF_CRM_VISIT"}
    assert section["refill"] == {"no_show_days": 14, "no_show_offers": 3}
    bad = framed.client.post("/app/settings", data={**form, "appt_channels": "sms"})
    assert bad.status_code == 400
    too_far = framed.client.post("/app/settings", data={**form, "appt_refill_days": "400"})
    assert too_far.status_code == 400
    with services.db() as session:
        assert load_settings(session, framed.portal_id)["appointments"]["channels"][0] == "workflow"


def test_the_business_process_is_picked_from_the_portals_templates(
    installed_portal: Any, services: Any, client: Any
) -> None:
    """Registration reads the portal's lead/deal templates; the page offers them by name and a
    picked template keeps its own document type (a lead template is never started on a deal)."""
    from b24app.install.service import register_portal
    from b24app.storage.portals import get_portal

    with services.db() as session:
        stored = get_portal(session, installed_portal.member_id)
        assert stored is not None
        framed = Framed(installed_portal, stored.id, client)
    framed.emu_portal.workflow_templates.append(
        {"ID": "700", "NAME": "Контакт: анкета", "MODULE_ID": "crm",
         "ENTITY": "CCrmDocumentContact", "DOCUMENT_TYPE": "CONTACT", "PARAMETERS": {}}
    )  # fmt: skip
    services.bitrix(installed_portal.member_id).call(
        "crm.deal.userfield.add",
        {"fields": {"FIELD_NAME": "VISIT_AT", "USER_TYPE_ID": "datetime",
                    "LIST_COLUMN_LABEL": {"ru": "Дата визита", "en": "Visit"}}},
    )  # fmt: skip
    register_portal(services, framed.emu_portal.member_id)
    with services.db() as session:
        stored = get_portal(session, framed.emu_portal.member_id)
        assert stored is not None
        templates = stored.registration["workflow_templates"]
    assert [(t["id"], t["document_type"]) for t in templates] == [(526, "LEAD"), (525, "DEAL")]
    assert "reminder_text" in templates[0]["params"]

    page = framed.open("/app/settings", "DEFAULT", None)
    html = page.get_data(as_text=True)
    assert '<select name="appt_template" id="appt-template"' in html
    assert "SMS-напоминание (лид) (лид, #526)" in html and "#700" not in html
    # The appointment time: the portal's writable date fields by name, lead and deal.
    assert '<select name="appt_date_choice" id="appt-date-field"' in html
    assert '<option value="deal:UF_CRM_VISIT_AT">Дата визита (UF_CRM_VISIT_AT)</option>' in html
    assert "deal:DATE_CREATE" not in html  # read-only: not an appointment the business sets
    form = _settings_form(
        _token(page), appt_offsets="24h, 2h", appt_channels="chat, workflow, todo",
        appt_template="526", appt_doc_type="DEAL", appt_text_param="reminder_text",
        appt_time_param="appointment_time", appt_date_choice="deal:UF_CRM_VISIT_AT",
    )  # fmt: skip
    response = framed.client.post("/app/settings", data=form)
    assert response.status_code == 200
    with services.db() as session:
        workflow = load_settings(session, framed.portal_id)["appointments"]["workflow"]
    assert workflow["template_id"] == 526 and workflow["document_type"] == "LEAD"
    with services.db() as session:
        date_field = load_settings(session, framed.portal_id)["appointments"]["date_field"]
    assert date_field == {"entity": "deal", "field": "UF_CRM_VISIT_AT"}
    shown = framed.open("/app/settings", "DEFAULT", None).get_data(as_text=True)
    assert '<option value="526" selected>' in shown
    assert '<option value="deal:UF_CRM_VISIT_AT" selected>' in shown


def test_the_outcome_question_is_chosen_on_the_settings_page(framed: Any, services: Any) -> None:
    page = framed.open("/app/settings", "DEFAULT", None)
    html = page.get_data(as_text=True)
    assert 'name="appt_outcome_ask"' in html and "мастера — сообщением с кнопками" in html
    form = _settings_form(
        _token(page), appt_offsets="24h", appt_channels="chat, todo", appt_doc_type="DEAL",
        appt_text_param="reminder_text", appt_time_param="appointment_time",
        appt_outcome_ask="task", appt_outcome_length="45", appt_outcome_grace="15",
    )  # fmt: skip
    assert framed.client.post("/app/settings", data=form).status_code == 200
    with services.db() as session:
        outcome = load_settings(session, framed.portal_id)["appointments"]["outcome"]
    assert outcome == {"ask": "task", "length_minutes": 45, "grace_minutes": 15}
    bad = framed.client.post("/app/settings", data={**form, "appt_outcome_ask": "sms"})
    assert bad.status_code == 400
