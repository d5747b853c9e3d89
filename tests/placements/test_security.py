"""Issue 10 on the framed pages: costly settings refused on save, hidden settings for
non-admins, session token out of URLs, impossible custom periods."""

from __future__ import annotations

from typing import Any

import pytest

from b24app.settings import DEFAULTS
from b24app.settings import load_settings
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
