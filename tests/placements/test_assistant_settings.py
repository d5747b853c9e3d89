"""The assistant's section of the settings page: shown with its defaults, saved (enabled,
lines, script, hand-off, Booking resource), invalid services refused with nothing stored."""

from __future__ import annotations

from b24app.assistant.settings_form import services_from_text
from b24app.assistant.settings_form import services_to_text
from b24app.settings import DEFAULTS
from b24app.settings import load_settings
from tests.placements.test_views import _settings_form
from tests.placements.test_views import _token

SERVICES = "manicure; Маникюр; Manicure; ногти, nails; 90; 2500\npeel; Пилинг; Peel; ; 45;"


def test_services_text_round_trip() -> None:
    parsed = services_from_text(SERVICES)
    assert parsed[0] == {"code": "manicure", "name": {"ru": "Маникюр", "en": "Manicure"},
                         "synonyms": ["ногти", "nails"], "duration": "90", "price": "2500"}  # fmt: skip
    assert parsed[1]["synonyms"] == [] and parsed[1]["price"] is None
    text = services_to_text(DEFAULTS["assistant"]["services"])
    assert text.splitlines()[0] == "manicure; Маникюр; Manicure; ногти, маник, nails; 60; 2500"


def test_page_shows_the_assistant_section(framed) -> None:  # type: ignore[no-untyped-def]
    html = framed.open("/app/settings", "DEFAULT", None).get_data(as_text=True)
    assert 'id="assistant-settings"' in html and "ИИ-ассистент в Открытых линиях" in html
    assert "manicure; Маникюр; Manicure" in html


def test_admin_saves_the_assistant(framed, services) -> None:  # type: ignore[no-untyped-def]
    token = _token(framed.open("/app/settings", "DEFAULT", None))
    form = _settings_form(token, asst_enabled="on", asst_lines="1, 3", asst_greeting="Привет!",
                          asst_q_service="Что делаем?", asst_q_when="", asst_q_contact="",
                          asst_services=SERVICES, asst_handoff="queue", asst_queue_id="3",
                          asst_resource_id="7", asst_hold_minutes="20",
                          asst_dialogs_per_hour="", asst_horizon_days="90")  # fmt: skip
    response = framed.client.post("/app/settings", data=form)
    assert response.status_code == 200, response.get_data(as_text=True)
    with services.db() as s:
        stored = load_settings(s, framed.portal_id)["assistant"]
    assert stored["enabled"] is True and stored["model"] is False
    assert stored["lines"] == ["1", "3"] and stored["greeting"] == "Привет!"
    assert stored["questions"]["service"] == "Что делаем?"
    assert [x["code"] for x in stored["services"]] == ["manicure", "peel"]
    assert stored["services"][0]["duration"] == 90 and stored["services"][0]["price"] == 2500
    assert (stored["handoff"], stored["queue_id"], stored["booking_resource_id"]) == ("queue", 3, 7)
    # the holds' limits; an empty field keeps the default
    assert (stored["hold_minutes"], stored["dialogs_per_hour"], stored["horizon_days"]) == (
        20, 30, 90)  # fmt: skip


def test_invalid_service_is_refused(framed, services) -> None:  # type: ignore[no-untyped-def]
    token = _token(framed.open("/app/settings", "DEFAULT", None))
    form = _settings_form(token, asst_services="Bad Code!; X; X; ; 60; 1")
    response = framed.client.post("/app/settings", data=form)
    assert response.status_code == 400
    with services.db() as s:
        assert load_settings(s, framed.portal_id)["assistant"] == DEFAULTS["assistant"]


def test_dashboard_shows_the_assistant_panel(framed, services) -> None:  # type: ignore[no-untyped-def]
    from b24app.storage.models import AssistantDialog

    html = framed.open("/app/dashboard", "CRM_ANALYTICS_MENU", {}).get_data(as_text=True)
    assert 'id="assistant-kpis"' not in html  # no dialogs yet: no panel
    with services.db() as s:
        s.add(AssistantDialog(portal_id=framed.portal_id, chat_id="1", dialog_id="chat1",
                              bot_id=5, state="handoff", handoff_reason="sensitive", slots={},
                              turns=1))  # fmt: skip
    html = framed.open("/app/dashboard", "CRM_ANALYTICS_MENU", {}).get_data(as_text=True)
    assert 'id="assistant-kpis"' in html
    assert "медицинский или юридический вопрос: 1" in html
