"""The framed pages: trust (application token, OAuth-server check, session tokens), the
dashboard, the lead tab, settings (admin only), ROI and CSV — fed the emulator's real frame
payloads (query + form split, ``PLACEMENT_OPTIONS`` as a JSON string)."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from b24app.settings import load_settings
from b24app.storage.models import CampaignCost
from b24app.storage.models import Journey
from b24app.storage.models import JourneyStageChange
from b24app.storage.models import Portal
from b24app.storage.models import PortalStatus
from b24app.storage.models import Timer
from b24app.storage.models import utc_now
from tests.placements.conftest import crm_items
from tests.placements.conftest import register_portal


def _session(token: str) -> dict[str, str]:
    """The header a page's scripts send the session token in (never the URL)."""
    return {"X-B24App-Session": token}


def _token(response: Any) -> str:
    match = re.search(r'name="t" value="([^"]+)"', response.get_data(as_text=True))
    assert match, "the page carries no session token"
    return match.group(1)


def seed_leads(services: Any, portal_id: int, n: int, *, campaign: str = "spring") -> None:
    now = utc_now() - dt.timedelta(hours=2)
    with services.db() as s:
        for i in range(1, n + 1):
            s.add(
                Journey(
                    portal_id=portal_id, lead_id=i, created_at=now, source_id="WEB",
                    utm_campaign=campaign, channel="chat", assigned_by_id=1,
                    first_reply_at=now + dt.timedelta(seconds=90), is_ai=i % 2 == 0,
                    confirmed_at=now if i <= 2 else None,
                )
            )  # fmt: skip


# -- trust --------------------------------------------------------------------------------


def test_dashboard_opens_for_a_verified_frame(framed, services) -> None:
    """A real CRM_ANALYTICS_MENU POST renders the dashboard, frameable by the portal only."""
    seed_leads(services, framed.portal_id, 3)
    response = framed.open("/app/dashboard", "CRM_ANALYTICS_MENU", {})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert re.search(r'id="kpi-leads".*?class="value">3<', html, re.S)
    assert "Входящие заявки" in html
    csp = response.headers["Content-Security-Policy"]
    assert f"http://{framed.emu_portal.domain}" in csp and "frame-ancestors" in csp
    assert "X-Frame-Options" not in response.headers


def test_main_app_page_is_the_dashboard_in_english(framed) -> None:
    """PLACEMENT=DEFAULT at /app/ with LANG=en renders the English dashboard."""
    response = framed.open("/app/", "DEFAULT", None, lang="en")
    assert response.status_code == 200
    assert "Incoming leads" in response.get_data(as_text=True)


def test_wrong_application_token_is_403(framed) -> None:
    """APPLICATION_TOKEN of no installation → 403, no page."""
    response = framed.open("/app/dashboard", "CRM_ANALYTICS_MENU", {},
                           form_overrides={"APPLICATION_TOKEN": "f" * 32})  # fmt: skip
    assert response.status_code == 403


@pytest.mark.parametrize("missing", ["member_id", "APPLICATION_TOKEN", "AUTH_ID"])
def test_missing_credentials_are_401(framed, missing) -> None:
    """No member_id / APPLICATION_TOKEN / AUTH_ID → 401."""
    query, form = framed.payload("CRM_ANALYTICS_MENU", {})
    del form[missing]
    assert framed.client.post("/app/dashboard", query_string=query, data=form).status_code == 401


def test_auth_id_of_another_portal_is_403(framed, emulator) -> None:
    """The OAuth server says the AUTH_ID belongs to another member_id → 403, whatever DOMAIN says."""
    other = emulator.create_portal("other", lang="ru")
    _, other_form = other.frame_payload(1, "CRM_ANALYTICS_MENU", {}, "ru")
    response = framed.open("/app/dashboard", "CRM_ANALYTICS_MENU", {},
                           form_overrides={"AUTH_ID": other_form["AUTH_ID"]})  # fmt: skip
    assert response.status_code == 403
    assert "another portal" in response.get_json()["message"]


def test_unknown_auth_id_is_403(framed) -> None:
    """A token the OAuth server does not know → 403."""
    response = framed.open("/app/dashboard", "CRM_ANALYTICS_MENU", {},
                           form_overrides={"AUTH_ID": "0" * 40})  # fmt: skip
    assert response.status_code == 403


def test_positive_verification_is_cached_by_token_hash(framed, services) -> None:
    """A verified AUTH_ID is cached in Redis under a hash (the raw token is nowhere in Redis)."""
    query, form = framed.payload("CRM_ANALYTICS_MENU", {})
    assert framed.client.post("/app/dashboard", query_string=query, data=form).status_code == 200
    keys = services.redis.keys("b24app:frame-auth:*")
    assert len(keys) == 1 and form["AUTH_ID"].encode() not in keys[0]
    assert 0 < services.redis.ttl(keys[0]) <= 300
    assert json.loads(services.redis.get(keys[0])) == {"user_id": 1, "admin": True}


@pytest.mark.parametrize("path", ["/app/", "/app/dashboard", "/app/settings", "/app/roi",
                                  "/app/export/summary.csv", "/app/api/dashboard.json"])  # fmt: skip
def test_bare_get_is_401(client, path) -> None:
    """A GET without a session token (like BI_ANALYTICS_MENU's bare GET) → 401."""
    assert client.get(path).status_code == 401


def test_session_token_changes_period_and_is_portal_bound(framed, services, emulator) -> None:
    """The page's token serves follow-ups for its own portal only; a forged one is 401."""
    seed_leads(services, framed.portal_id, 3)
    other = emulator.create_portal("other", lang="ru")
    other_id = register_portal(services, other)
    seed_leads(services, other_id, 9)
    token = _token(framed.open("/app/dashboard", "CRM_ANALYTICS_MENU", {}))
    page = framed.client.post("/app/dashboard", data={"t": token, "period": "7d"})
    assert page.status_code == 200
    assert re.search(r'id="kpi-leads".*?class="value">3<', page.get_data(as_text=True), re.S)
    data = framed.client.get("/app/api/dashboard.json", headers=_session(token)).get_json()
    assert data["total"]["leads"] == 3
    forged = token.replace(token.split(".")[0], token.split(".")[0][:-2] + "xx")
    assert framed.client.post("/app/dashboard", data={"t": forged}).status_code == 401
    other_query, other_form = other.frame_payload(1, "CRM_ANALYTICS_MENU", {}, "ru")
    other_token = _token(
        framed.client.post("/app/dashboard", query_string=other_query, data=other_form)
    )
    other_data = framed.client.get("/app/api/dashboard.json", headers=_session(other_token))
    assert other_data.get_json()["total"]["leads"] == 9


def test_uninstalled_portal_token_is_refused(framed, services) -> None:
    """After uninstall a still-valid session token no longer opens anything (403)."""
    token = _token(framed.open("/app/dashboard", "CRM_ANALYTICS_MENU", {}))
    with services.db() as s:
        s.get(Portal, framed.portal_id).status = PortalStatus.UNINSTALLED
    assert framed.client.post("/app/dashboard", data={"t": token}).status_code == 403


def test_reauth_required_portal_shows_the_reinstall_page(framed, services) -> None:
    """A portal whose refresh token was revoked gets a clear 'reinstall' page for the admin."""
    with services.db() as s:
        s.get(Portal, framed.portal_id).status = PortalStatus.REAUTH_REQUIRED
    html = framed.open("/app/dashboard", "CRM_ANALYTICS_MENU", {}).get_data(as_text=True)
    assert 'id="reauth"' in html and "переустановите" in html


# -- lead tab -----------------------------------------------------------------------------


def test_lead_tab_shows_the_timeline(framed, services) -> None:
    """CRM_LEAD_DETAIL_TAB with {"ID": "5"}: created, first reply, stage moves, fired timers."""
    crm_items(framed.emu_portal, "lead", 5)
    created = dt.datetime(2026, 11, 2, 7, 0)
    with services.db() as s:
        s.add(Journey(portal_id=framed.portal_id, lead_id=5, created_at=created, is_ai=True,
                   ai_channel="telegram", channel="chat", source_id="TELEGRAM", stage="confirmed",
                   first_reply_at=created + dt.timedelta(seconds=250)))  # fmt: skip
        s.add(JourneyStageChange(portal_id=framed.portal_id, journey_key=5, status_id="B24APP_CONFIRMED",
                              stage="confirmed", changed_at=created + dt.timedelta(hours=1)))  # fmt: skip
        s.add(Timer(portal_id=framed.portal_id, journey_key=5, policy="first_reply", level="remind",
                    due_at=created + dt.timedelta(minutes=3), state="fired", job_id="j1",
                    fired_at=created + dt.timedelta(minutes=3)))  # fmt: skip
    response = framed.open(
        "/app/lead-tab", "CRM_LEAD_DETAIL_TAB", {"ID": "5", "URI": "/crm/lead/details/5/"}
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "02.11.2026 10:00" in html  # Moscow time
    assert "ИИ-лид" in html and "telegram" in html and "Чат" in html
    assert "4\u00a0мин 10\u00a0с" in html  # 250 s, over the 3-minute policy
    assert 'id="lead-first-reply" class="bad"' in html
    assert "Запись подтверждена (B24APP_CONFIRMED)" in html
    assert "Первый ответ — напоминание" in html


def test_lead_tab_for_an_unknown_lead_explains(framed) -> None:
    """A lead not yet in the journal gets a friendly message, not an error."""
    crm_items(framed.emu_portal, "lead", 77)
    response = framed.open("/app/lead-tab", "CRM_LEAD_DETAIL_TAB", {"ID": "77"})
    assert response.status_code == 200 and 'id="lead-missing"' in response.get_data(as_text=True)


@pytest.mark.parametrize("options", [{}, {"ID": "abc"}, {"ID": "-3"}])
def test_lead_tab_needs_a_lead_id(framed, options) -> None:
    """PLACEMENT_OPTIONS without a valid positive ID → 400."""
    assert framed.open("/app/lead-tab", "CRM_LEAD_DETAIL_TAB", options).status_code == 400


def test_placement_options_must_be_json(framed) -> None:
    """A PLACEMENT_OPTIONS that is not a JSON object → 400."""
    response = framed.open("/app/lead-tab", "CRM_LEAD_DETAIL_TAB", {"ID": "1"},
                           form_overrides={"PLACEMENT_OPTIONS": "{not json"})  # fmt: skip
    assert response.status_code == 400


# -- settings -----------------------------------------------------------------------------


def _settings_form(token: str, **changes: str) -> dict[str, str]:
    form = {
        "t": token, "time_zone": "Asia/Yekaterinburg", "owner_user_id": "4",
        "wh_mon": "10:00-20:00", "wh_tue": "10:00-20:00", "wh_wed": "", "wh_thu": "10:00-20:00",
        "wh_fri": "10:00-20:00", "wh_sat": "", "wh_sun": "", "country": "RU", "days_off": "2026-12-31",
        "workdays": "", "sla_first_reply_enabled": "on", "sla_first_reply_minutes": "5",
        "sla_first_reply_escalate": "20", "sla_confirmation_enabled": "on",
        "sla_confirmation_minutes": "15", "sla_confirmation_escalate": "30",
        "sla_confirmation_working_time": "on", "sla_callback_minutes": "10",
        "sla_callback_escalate": "40", "sla_timeline_comment": "on", "ai_sources": "*|TELEGRAM\n*|VK",
        "ai_utm": "ai_bot", "ai_markers": "#ai", "business_name": "Салон Ромашка",
        "offsets": "24h, 2h", "tpl_ru": "{client_name}, ждём вас {date} в {time}",
        "tpl_en": "{client_name}, see you {date} at {time}", "costs": "spring;2026-11;3 000,50\nvk;2026-10;1200",
        "target_no_show": "10", "target_conversion": "20,5", "target_reply": "2",
        "reports_enabled": "on", "daily_at": "08:30", "weekly_day": "fri", "weekly_at": "18:00",
    }  # fmt: skip
    form.update(changes)
    return form


def test_admin_saves_settings_and_costs(framed, services) -> None:
    """An admin's save stores the settings document and replaces the campaign costs."""
    token = _token(framed.open("/app/settings", "DEFAULT", None))
    response = framed.client.post("/app/settings", data=_settings_form(token))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert 'id="settings-saved"' in response.get_data(as_text=True)
    with services.db() as s:
        stored = load_settings(s, framed.portal_id)
        costs = {(c.utm_campaign, c.month): c.cost for c in s.scalars(select(CampaignCost))}
    assert stored["time_zone"] == "Asia/Yekaterinburg" and stored["owner_user_id"] == 4
    assert stored["sla"]["first_reply"] == {
        "enabled": True,
        "minutes": 5,
        "escalate_minutes": 20,
        "working_time": False,
    }
    assert stored["sla"]["callback"]["enabled"] is False
    assert stored["working_hours"]["wed"] is None and stored["working_hours"]["mon"] == [
        "10:00",
        "20:00",
    ]
    assert stored["targets"]["conversion_min_pct"] == 20.5
    assert stored["reports"]["weekly_day"] == "fri"
    assert stored["ai_rules"]["source_ids"] == ["*|TELEGRAM", "*|VK"]
    assert costs == {
        ("spring", "2026-11"): Decimal("3000.50"),
        ("vk", "2026-10"): Decimal("1200.00"),
    }


@pytest.mark.parametrize(
    "changes",
    [{"sla_first_reply_escalate": "2"}, {"time_zone": "Mars/Olympus"}, {"daily_at": "25:00"},
     {"costs": "spring;November;100"}, {"target_no_show": "abc"}],
)  # fmt: skip
def test_invalid_settings_show_errors_and_store_nothing(framed, services, changes) -> None:
    """Any invalid field → 400 with the errors listed; neither settings nor costs change."""
    with services.db() as s:
        s.add(
            CampaignCost(
                portal_id=framed.portal_id, utm_campaign="old", month="2026-01", cost=Decimal(1)
            )
        )
    token = _token(framed.open("/app/settings", "DEFAULT", None))
    response = framed.client.post("/app/settings", data=_settings_form(token, **changes))
    assert response.status_code == 400
    assert 'id="settings-errors"' in response.get_data(as_text=True)
    with services.db() as s:
        assert load_settings(s, framed.portal_id)["time_zone"] == "Europe/Moscow"
        assert [c.utm_campaign for c in s.scalars(select(CampaignCost))] == ["old"]


def test_non_admin_sees_nothing_of_the_settings_and_cannot_save(framed, services) -> None:
    """user.admin says no for user 2: a friendly 403 page with nothing of the settings (no
    form, no campaign costs, no templates; issue 10 item 9); a save is 403, nothing stored."""
    with services.db() as s:
        s.add(CampaignCost(portal_id=framed.portal_id, utm_campaign="secret_campaign",
                           month="2026-01", cost=Decimal(777)))  # fmt: skip
    page = framed.open("/app/settings", "DEFAULT", None, user_id=2)
    html = page.get_data(as_text=True)
    assert page.status_code == 403 and 'id="notice"' in html
    assert "только администратор портала" in html
    for hidden in ('id="settings-', "secret_campaign", "777", "{client_name}", 'id="nav-settings"'):
        assert hidden not in html, hidden
    nav = framed.client.post("/app/settings", data={"t": _token(page), "nav": "1"})
    assert nav.status_code == 403 and "secret_campaign" not in nav.get_data(as_text=True)
    header = framed.client.get("/app/settings", headers=_session(_token(page)))
    assert header.status_code == 403 and 'id="settings-' not in header.get_data(as_text=True)
    response = framed.client.post("/app/settings", data=_settings_form(_token(page)))
    assert response.status_code == 403
    with services.db() as s:
        assert load_settings(s, framed.portal_id)["time_zone"] == "Europe/Moscow"


def test_posted_admin_flag_is_ignored(framed, services) -> None:
    """A non-admin cannot become admin by posting a flag: only the signed token counts."""
    page = framed.open("/app/settings", "DEFAULT", None, user_id=2)
    form = _settings_form(_token(page), is_admin="1", admin="Y", IS_ADMIN="Y")
    assert framed.client.post("/app/settings", data=form).status_code == 403


# -- ROI and CSV --------------------------------------------------------------------------


def test_roi_page_shows_the_worked_example(framed) -> None:
    """The issue's inputs give +37 500 ₽ a month, 7,1 % and 210,3 % on the page."""
    token = _token(framed.open("/app/", "DEFAULT", None))
    params = {"t": token, "leads_before": "200", "conversion_before": "20", "check_before": "1 500",
              "leads_after": "260", "conversion_after": "25", "check_after": "1500",
              "one_off_cost": "25000", "monthly_cost": "10000", "months": "12"}  # fmt: skip
    html = framed.client.post("/app/roi", data=params).get_data(as_text=True)
    assert "+37\u202f500\u00a0₽" in html
    assert "7,1\u00a0%" in html and "210,3\u00a0%" in html
    bad = framed.client.post("/app/roi", data={**params, "conversion_after": "140"})
    assert bad.status_code == 400 and 'id="roi-errors"' in bad.get_data(as_text=True)


def test_csv_export_of_every_table(framed, services) -> None:
    """Each table downloads as ; CSV with a BOM; formula-like text is neutralised; unknown → 404."""
    seed_leads(services, framed.portal_id, 4, campaign="=HYPERLINK(1)")
    with services.db() as s:
        s.add(CampaignCost(portal_id=framed.portal_id, utm_campaign="=HYPERLINK(1)",
                           month=utc_now().strftime("%Y-%m"), cost=Decimal(0)))  # fmt: skip
    token = _token(framed.open("/app/dashboard", "CRM_ANALYTICS_MENU", {}))
    for table in ("summary", "trend", "sources", "campaigns", "channels", "employees", "ai"):
        response = framed.client.post(f"/app/export/{table}.csv", data={"t": token, "period": "7d"})
        assert response.status_code == 200 and response.mimetype == "text/csv"
        assert response.get_data(as_text=True).startswith("\ufeff")
    campaigns = framed.client.post("/app/export/campaigns.csv", data={"t": token}).get_data(
        as_text=True
    )
    lines = campaigns.lstrip("\ufeff").splitlines()
    assert lines[0].split(";")[0] == "Кампания (utm_campaign)"
    assert lines[1].split(";")[:3] == ["'=HYPERLINK(1)", "4", "2"]
    summary = framed.client.get("/app/export/summary.csv", headers=_session(token)).get_data(
        as_text=True
    )
    assert summary.splitlines()[1].split(";")[2] == "4"
    assert framed.client.post("/app/export/secrets.csv", data={"t": token}).status_code == 404
