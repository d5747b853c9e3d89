"""Issue 19 item 1: every list of the settings page has a count limit and every item a size
limit. One portal's settings are read by jobs on workers shared by all portals (40 000
assistant synonyms made one message cost 28 s), so an oversized list is the page's 400
naming the field, and nothing is saved."""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import ValidationError
from sqlalchemy import func
from sqlalchemy import select

from b24app.assistant.service import script_of
from b24app.placements import settings_form
from b24app.placements.trust import issue_token
from b24app.placements.trust import Viewer
from b24app.settings import DEFAULTS
from b24app.settings import save_settings
from b24app.storage.models import PortalSettings
from b24app.storage.portals import InstallAuth
from b24app.storage.portals import upsert_install


@pytest.fixture
def admin(app: Any, services: Any) -> dict[str, Any]:
    """An installed portal, its admin's page session and the page's form as shown."""
    with services.db() as session:
        portal = upsert_install(session, InstallAuth(member_id="m" * 32, domain="x.bitrix24.ru",
                                                     application_token="app-token-0001"))  # fmt: skip
        portal_id = portal.id
    viewer = Viewer(portal_id=portal_id, member_id="m" * 32, domain="x.bitrix24.ru", user_id=1,
                    is_admin=True, lang="en")  # fmt: skip
    form = {k: "" if v is None else str(v)
            for k, v in settings_form.settings_to_form(DEFAULTS).items() if v is not False}  # fmt: skip
    form["t"] = issue_token(app.config["SECRET_KEY"], viewer)
    return {"portal_id": portal_id, "form": form}


def _stored(services: Any) -> int:
    with services.db() as session:
        return session.scalar(select(func.count()).select_from(PortalSettings)) or 0


def _service_line(code: str, synonyms: int) -> str:
    return (
        f"{code}; Услуга; Service; {', '.join(f'syn{code}{i}' for i in range(synonyms))}; 60; 100"
    )


def _lines(n: int, make: Any) -> str:
    return "\n".join(make(i) for i in range(n))


def _day(i: int) -> str:
    return f"{2026 + i // 365:04d}-{1 + i // 28 % 12:02d}-{1 + i % 28:02d}"


# (form field, oversized value, the field the error names)
OVERSIZED = [
    ("days_off", _lines(367, _day), "holidays.extra_days_off"),
    ("workdays", _lines(367, _day), "holidays.extra_workdays"),
    ("ai_sources", _lines(101, lambda i: f"*|SRC{i}"), "ai_rules.source_ids"),
    ("ai_utm", _lines(101, lambda i: f"utm{i}"), "ai_rules.utm_sources"),
    ("ai_markers", _lines(101, lambda i: f"#m{i}"), "ai_rules.markers"),
    ("offsets", ", ".join(f"{i + 1}h" for i in range(6)), "reminders.offsets"),
    ("appt_offsets", ", ".join(f"{i + 1}h" for i in range(6)), "appointments.offsets"),
    ("appt_channels", "chat, workflow, todo, chat", "appointments.channels"),
    ("asst_lines", ", ".join(str(i + 1) for i in range(51)), "assistant.lines"),
    ("asst_services", _lines(51, lambda i: _service_line(f"s{i}", 1)), "assistant.services"),
    ("asst_services", _service_line("nails", 21), "assistant.services.0.synonyms"),
    # 11 services of 19 synonyms: each within its limit, 209 in all
    ("asst_services", _lines(11, lambda i: _service_line(f"s{i}", 19)), "assistant.services"),
    ("asst_services", "nails; " + "Н" * 101 + "; Nails; ногти; 60; 100",
     "assistant.services.0.name.ru"),
    ("asst_services", "nails; Ногти; Nails; ногти, " + "n" * 65 + "; 60; 100",
     "assistant.services.0.synonyms.1"),
]  # fmt: skip


@pytest.mark.parametrize(("field", "value", "named"), OVERSIZED)
def test_an_oversized_list_is_a_400_naming_the_field_and_nothing_is_saved(
    app: Any, services: Any, admin: dict[str, Any], field: str, value: str, named: str
) -> None:
    form = dict(admin["form"], **{field: value})
    response = app.test_client().post("/app/settings", data=form)
    assert response.status_code == 400, response.get_data(as_text=True)[:500]
    assert named + ":" in response.get_data(as_text=True)
    assert _stored(services) == 0


def test_the_page_as_shown_still_saves(app: Any, services: Any, admin: dict[str, Any]) -> None:
    """The limits leave the defaults (and a full allowance of each list) valid."""
    form = dict(admin["form"], days_off=_lines(366, _day),
                asst_services=_lines(10, lambda i: _service_line(f"s{i}", 20)),
                asst_lines=", ".join(str(i + 1) for i in range(50)))  # fmt: skip
    response = app.test_client().post("/app/settings", data=form)
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    assert _stored(services) == 1


def test_a_deal_stage_map_of_too_many_pipelines_is_400(
    app: Any, services: Any, admin: dict[str, Any]
) -> None:
    form = dict(admin["form"], deal_stages_shown="1")
    form.update({f"deal_stage_{p}_qualified": "NEW" for p in range(101)})
    response = app.test_client().post("/app/settings", data=form)
    assert response.status_code == 400
    assert "deal_stage_map:" in response.get_data(as_text=True) and _stored(services) == 0


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({"holidays": {"extra_days_off": ["x"] * 100_000}},
         {"holidays": {"extra_days_off": ["at most 366 items"]}}),
        ({"working_hours": {"mon": ["09:00"] * 50_000}},
         {"working_hours": {"mon": {"value": ["at most 2 items"]}}}),
        ({"working_hours": {f"d{i}": None for i in range(1000)}},
         {"working_hours": ["at most 7 items"]}),
        ({"reminders": {"templates": {f"t{i}": {"ru": "x"} for i in range(21)}}},
         {"reminders": {"templates": ["at most 20 items"]}}),
        ({"assistant": {"services": [{"code": "a", "name": {"ru": "A"},
                                      "synonyms": [f"s{i}" for i in range(40_000)]}]}},
         {"assistant": {"services": {0: {"synonyms": ["at most 20 items"]}}}}),
        ({"deal_stage_map": {"1": {f"s{i}": "X" for i in range(5)}}},
         {"deal_stage_map": {"1": {"value": ["at most 4 items"]}}}),
    ],
)  # fmt: skip
def test_the_schema_counts_before_reading_items(
    services: Any, admin: dict[str, Any], changes: dict[str, Any], errors: dict[str, Any]
) -> None:
    """One error naming the field, not one per item (100 000 bad dates were 100 000 errors)."""
    with services.db() as session, pytest.raises(ValidationError) as info:
        save_settings(session, admin["portal_id"], changes)
    assert info.value.messages == errors
    assert _stored(services) == 0


def test_services_stored_before_the_limits_are_cut_when_read() -> None:
    """A document saved before issue 19 (40 000 synonyms) is matched within the limits."""
    stored = {"assistant": {"services": [
        {"code": f"s{i}", "name": {"ru": f"S{i}"}, "synonyms": [f"w{i}_{j}" for j in range(1000)]}
        for i in range(200)
    ]}}  # fmt: skip
    script, _assistant = script_of(stored, "ru")
    assert len(script.services) == 50
    assert max(len(s.synonyms) for s in script.services) == 20
    assert sum(len(s.synonyms) for s in script.services) == 200
