"""Issue 10 on the framed pages: costly settings refused on save, hidden settings for
non-admins, session token out of URLs, impossible custom periods."""

from __future__ import annotations

import re
from typing import Any

import pytest

from b24app.settings import DEFAULTS
from b24app.settings import load_settings
from tests.placements.conftest import crm_items
from tests.placements.test_views import _settings_form
from tests.placements.test_views import _token


@pytest.mark.parametrize(
    ("changes", "explained"),
    [
        ({"tpl_ru": "{client_name:>1500000000}"}, "допустимы только подстановки"),
        ({"tpl_en": "Hello {"}, "допустимы только подстановки"),
        ({"tpl_en": "{client_name.__init__}"}, "допустимы только подстановки"),
        ({"ai_sources": "\n".join(f"{n}|X" for n in range(101))}, "не более 100 правил"),
        ({"ai_sources": "*a" * 40}, "до 64 символов"),
    ],
)
def test_costly_settings_are_refused_on_save(
    framed: Any, services: Any, changes, explained
) -> None:
    """A format-spec template or an oversized AI rule list is a 400 with a ru message; nothing
    is stored (issue 10, item 5)."""
    token = _token(framed.open("/app/settings", "DEFAULT", None))
    response = framed.client.post("/app/settings", data=_settings_form(token, **changes))
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and 'id="settings-errors"' in html
    assert explained in html
    with services.db() as s:
        stored = load_settings(s, framed.portal_id)
    assert stored["reminders"] == DEFAULTS["reminders"]
    assert stored["ai_rules"] == DEFAULTS["ai_rules"]


def test_template_error_is_explained_in_english(framed: Any) -> None:
    token = _token(framed.open("/app/settings", "DEFAULT", None, lang="en"))
    response = framed.client.post("/app/settings", data=_settings_form(token, tpl_en="{x!r}"))
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "only the placeholders" in html and "{{ and }}" in html


# -- item 6: the session token never rides in a URL ---------------------------------------

_URL_WITH_TOKEN = re.compile(r"""(?:href|action|src)=["'][^"']*[?&]t=""")


def _pages(framed: Any) -> dict[str, Any]:
    crm_items(framed.emu_portal, "lead", 1)
    token = _token(framed.open("/app/", "DEFAULT", None))
    return {
        "main": framed.open("/app/", "DEFAULT", None),
        "dashboard": framed.client.post("/app/dashboard", data={"t": token, "period": "7d"}),
        "roi": framed.client.post("/app/roi", data={"t": token, "nav": "1"}),
        "settings": framed.client.post("/app/settings", data={"t": token, "nav": "1"}),
        "lead": framed.open("/app/lead-tab", "CRM_LEAD_DETAIL_TAB", {"ID": "1"}),
    }


def test_pages_put_the_session_token_in_no_url(framed: Any) -> None:
    """Navigation, the period picker, the ROI form and the CSV buttons all POST the token in
    the body: no href/action carries ``t=``, the token appears only as a hidden form value."""
    for name, response in _pages(framed).items():
        html = response.get_data(as_text=True)
        assert response.status_code == 200, (name, response.status_code)
        assert not _URL_WITH_TOKEN.search(html), name
        token = _token(response)
        assert html.count(token) == html.count(f'name="t" value="{token}"'), name
        assert 'method="get"' not in html.lower(), name


def test_a_token_in_the_query_string_is_refused(framed: Any) -> None:
    """Even a valid token is not accepted from the URL (it would be in the access log)."""
    token = _token(framed.open("/app/", "DEFAULT", None))
    for path in ("/app/dashboard", "/app/api/dashboard.json", "/app/roi", "/app/settings",
                 "/app/export/summary.csv"):  # fmt: skip
        response = framed.client.get(path, query_string={"t": token})
        assert response.status_code == 400, path
    ok = framed.client.get("/app/api/dashboard.json", headers={"X-B24App-Session": token})
    assert ok.status_code == 200


def test_csv_buttons_are_post_forms_that_download(framed: Any) -> None:
    page = framed.client.post("/app/dashboard", data={"t": _token(framed.open("/app/")),
                                                        "period": "30d"})  # fmt: skip
    html = page.get_data(as_text=True)
    form = re.search(r'<form class="csv-form" method="post" action="([^"]+)">(.*?)</form>', html)
    assert form, "no CSV form"
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form.group(2)))
    response = framed.client.post(form.group(1), data=fields)
    assert response.status_code == 200 and response.mimetype == "text/csv"


# -- item 8: impossible custom periods are a 400 with a message ----------------------------


@pytest.mark.parametrize(
    ("first", "last"),
    [("9999-12-30", "9999-12-31"), ("0001-01-01", "0001-01-02"), ("0001-01-01", "9999-12-31")],
)
def test_extreme_custom_period_is_400_with_a_message(framed: Any, first: str, last: str) -> None:
    token = _token(framed.open("/app/", "DEFAULT", None))
    period = {"period": "custom", "from": first, "to": last}
    page = framed.client.post("/app/dashboard", data={"t": token, **period})
    html = page.get_data(as_text=True)
    assert page.status_code == 400 and 'id="period-error"' in html
    assert "между 01.01.2000 и 31.12.2100" in html and 'id="kpi-cards"' in html
    csv = framed.client.post("/app/export/summary.csv", data={"t": token, **period})
    assert csv.status_code == 400 and "2100" in csv.get_json()["message"]
    api = framed.client.get("/app/api/dashboard.json", query_string=period,
                            headers={"X-B24App-Session": token})  # fmt: skip
    assert api.status_code == 400 and api.get_json()["errors"]
