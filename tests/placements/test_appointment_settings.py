"""The settings page's appointment section: shown with the defaults, saved, validated."""

from __future__ import annotations

from typing import Any

from b24app.settings import load_settings
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
    )  # fmt: skip
    response = framed.client.post("/app/settings", data=form)
    assert response.status_code == 200 and 'id="settings-saved"' in response.get_data(as_text=True)
    with services.db() as session:
        section = load_settings(session, framed.portal_id)["appointments"]
    assert section["offsets"] == ["24h", "3h"]
    assert section["channels"] == ["workflow", "chat", "todo"]
    assert section["workflow"]["template_id"] == 525 and section["sender_user_id"] == 2
    assert section["date_field"] == {"entity": "deal", "field": "UF_CRM_VISIT"}
    bad = framed.client.post("/app/settings", data={**form, "appt_channels": "sms"})
    assert bad.status_code == 400
    with services.db() as session:
        assert load_settings(session, framed.portal_id)["appointments"]["channels"][0] == "workflow"
