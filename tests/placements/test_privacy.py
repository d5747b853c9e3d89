"""The client's consent in the CRM tab, its recording by an employee, and the export and
erasure of a client's data by an administrator, over real HTTP from the emulator
(placements/views.py ``consent``, ``privacy/*``; b24app/consent/privacy.py)."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import requests
from sqlalchemy import select

from b24app.consent.contact import Contact
from b24app.consent.records import record_opt_out
from b24app.context import Services
from b24app.storage.models import Appointment
from b24app.storage.models import AssistantDialog
from b24app.storage.models import AssistantTurn
from b24app.storage.models import ConsentKind
from b24app.storage.models import ConsentRecord
from b24app.storage.models import Journey
from b24app.storage.models import Portal
from tests.appointments.conftest import make_journey
from tests.appointments.conftest import utc_now
from tests.placements.conftest import crm_items

CHAT = 9101


def seed_client(services: Services, portal_id: int, contact_id: int) -> None:
    """A deal journey with an appointment (the client's name), an assistant dialog (what the
    client typed) and a «СТОП» the client wrote."""
    journey = make_journey(services, portal_id, deal_id=801, contact_id=contact_id)
    with services.db() as session:
        session.add(Appointment(
            portal_id=portal_id, journey_id=journey, deal_id=801, contact_id=contact_id,
            client_name="Анна Петрова", service="Маникюр", chat_id=CHAT,
            starts_at=utc_now() + dt.timedelta(days=3),
        ))  # fmt: skip
        dialog = AssistantDialog(
            portal_id=portal_id, chat_id=str(CHAT), dialog_id=f"chat{CHAT}", bot_id=1,
            deal_id=801, contact_id=contact_id, client_user_id=77,
            slots={"name": "Анна", "phone": "+79161234567"},
        )  # fmt: skip
        session.add(dialog)
        session.flush()
        session.add(AssistantTurn(dialog_id=dialog.id, message_id=1, state_before="new",
                                  state_after="service", reply="Здравствуйте, Анна!",
                                  received_at=utc_now()))  # fmt: skip
        record_opt_out(session, portal_id, Contact(contact_id=contact_id, chat_id=CHAT),
                       source="chat", channel="telegrambot", text="СТОП")  # fmt: skip


def tab(portal: Any, user_id: int | None = None) -> requests.Response:
    page = portal.open_placement("CRM_DEAL_DETAIL_TAB", {"ID": "801"}, user_id=user_id)
    assert page.status_code == 200
    return page


def form_of(page: requests.Response, **extra: str) -> dict[str, str]:
    token = re.search(r'name="t" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    key = re.search(r'data-journey-key="(-?\d+)"', page.text).group(1)  # type: ignore[union-attr]
    return {"t": token, "key": key, "entity": "deal", "entity_id": "801", **extra}


def test_tab_consent_export_and_erase(
    emulator: Any, installed_portal: Any, services: Services
) -> None:
    """The tab shows the opt-out; an employee records a consent (with the text shown); the
    admin's export holds the client's data; erase removes the name, the conversation and
    the consent, and keeps the appointment, the journey and the opt-out."""
    with services.db() as session:
        portal_id = session.scalars(
            select(Portal.id).where(Portal.member_id == installed_portal.member_id)
        ).one()
    contact = installed_portal.add_contact("Анна", "Петрова")
    crm_items(installed_portal, "deal", 801, assigned_by=2)  # user 2 reads it, not an admin
    seed_client(services, portal_id, contact)
    page = tab(installed_portal)
    assert 'id="lead-consent"' in page.text and "клиент отписался" in page.text
    assert "Реклама и повторные приглашения: нет согласия" in page.text
    assert "СТОП" in page.text and "telegrambot" in page.text

    recorded = requests.post(emulator.app_url("/app/consent"), data=form_of(page), timeout=10)
    assert recorded.status_code == 200 and 'id="consent-recorded"' in recorded.text
    assert "Реклама и повторные приглашения: есть согласие" in recorded.text
    assert "Напоминания о записях: отправляются" in recorded.text  # a consent lifts the stop
    with services.db() as session:
        consent = session.scalars(
            select(ConsentRecord).where(ConsentRecord.kind == ConsentKind.ADVERTISING)
        ).one()
        assert consent.source == "tab" and consent.recorded_by == 1
        assert consent.text.startswith("Согласен(на) получать") and consent.contact_id == contact

    exported = requests.post(emulator.app_url("/app/privacy/export"), data=form_of(page),
                             timeout=10)  # fmt: skip
    assert exported.status_code == 200 and "attachment" in exported.headers["Content-Disposition"]
    data = json.loads(exported.text)
    assert data["appointments"][0]["client_name"] == "Анна Петрова"
    assert data["assistant_dialogs"][0]["slots"]["phone"] == "+79161234567"
    assert data["assistant_dialogs"][0]["turns"][0]["reply"] == "Здравствуйте, Анна!"
    assert sorted(c["kind"] for c in data["consents"]) == ["advertising", "opt_out"]

    refused = requests.post(emulator.app_url("/app/privacy/erase"), timeout=10,
                            data=form_of(tab(installed_portal, user_id=2), confirm="yes"))  # fmt: skip
    assert refused.status_code == 403
    unconfirmed = requests.post(emulator.app_url("/app/privacy/erase"), data=form_of(page),
                                timeout=10)  # fmt: skip
    assert unconfirmed.status_code == 400
    erased = requests.post(emulator.app_url("/app/privacy/erase"),
                           data=form_of(page, confirm="yes"), timeout=10)  # fmt: skip
    assert erased.status_code == 200 and "Данные клиента удалены" in erased.text
    with services.db() as session:
        assert session.scalars(select(AssistantDialog)).all() == []
        assert session.scalars(select(AssistantTurn)).all() == []
        (appt,) = session.scalars(select(Appointment)).all()
        assert appt.client_name is None and appt.service == "Маникюр" and appt.chat_id == CHAT
        assert len(session.scalars(select(Journey)).all()) == 1
        kinds = [(r.kind, r.source, r.text) for r in session.scalars(
            select(ConsentRecord).order_by(ConsentRecord.id))]  # fmt: skip
    # the client's own «СТОП» stands again once the consent is gone (without one, erase
    # records an opt-out of its own): no message goes to an erased client
    assert kinds == [("opt_out", "chat", "")]
    again = json.loads(requests.post(emulator.app_url("/app/privacy/export"),
                                     data=form_of(page), timeout=10).text)  # fmt: skip
    assert again["assistant_dialogs"] == [] and again["appointments"][0]["client_name"] is None


def test_admin_sets_the_consent_text_and_the_reinvitation(framed: Any, services: Services) -> None:
    """The settings page shows the consent text and the re-invitation; a save stores them,
    a bad number of days is refused with nothing stored."""
    from b24app.settings import load_settings
    from tests.placements.test_views import _settings_form
    from tests.placements.test_views import _token

    page = framed.open("/app/settings", "DEFAULT", None)
    html = page.get_data(as_text=True)
    assert 'id="settings-consent"' in html and "Согласен(на) получать" in html
    form = _settings_form(_token(page), consent_text_ru="Согласна на рассылку салона",
                          consent_text_en="I agree", consent_reinvite="on",
                          consent_reinvite_days="10")  # fmt: skip
    saved = framed.client.post("/app/settings", data=form)
    assert saved.status_code == 200, saved.get_data(as_text=True)
    with services.db() as session:
        consent = load_settings(session, framed.portal_id)["consent"]
    assert consent == {"text": {"ru": "Согласна на рассылку салона", "en": "I agree"},
                       "reinvite": {"enabled": True, "after_days": 10}}  # fmt: skip
    bad = framed.client.post("/app/settings", data={**form, "consent_reinvite_days": "0"})
    assert bad.status_code == 400
    with services.db() as session:
        assert load_settings(session, framed.portal_id)["consent"]["reinvite"]["after_days"] == 10
