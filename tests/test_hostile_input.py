"""Hostile input against every inbound route: never a 500, always the one error shape, nothing
written. Property-based (hypothesis) over malformed bracket keys, wrong types, huge bodies,
unknown events, and another portal's ``member_id`` with a valid token of a different portal.

The routes are discovered from the app's URL map, so a surface added later is covered too.
"""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import given
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import func
from sqlalchemy import select

from b24app.bitrix.payload import encode_php_form
from b24app.storage.models import Base
from b24app.storage.portals import InstallAuth
from b24app.storage.portals import upsert_install
from tests.conftest import FIXTURES

# Routes that Bitrix24 (not a person) posts to; GET pages and health are excluded.
SKIP_PREFIXES = ("/static", "/health", "/metrics")


def inbound_routes(app) -> list[str]:  # type: ignore[no-untyped-def]
    routes = []
    for rule in app.url_map.iter_rules():
        if "POST" not in rule.methods or rule.rule.startswith(SKIP_PREFIXES):
            continue
        # fill path arguments with a plausible value (robot code, export table…)
        path = rule.rule
        for arg in rule.arguments:
            path = path.replace(f"<{arg}>", "x").replace(f"<path:{arg}>", "x")
            path = path.replace(f"<string:{arg}>", "x").replace(f"<int:{arg}>", "1")
        routes.append(path)
    return sorted(set(routes))


def row_counts(services) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with services.db() as session:
        return {
            t.name: session.scalar(select(func.count()).select_from(t)) or 0
            for t in Base.metadata.sorted_tables
            if t.name != "rest_log"
        }


def queued_jobs(services) -> int:  # type: ignore[no-untyped-def]
    return sum(q.count for q in services.queues.values())


@pytest.fixture
def two_portals(services):  # type: ignore[no-untyped-def]
    """Portal A and portal B with their own application tokens."""
    with services.db() as session:
        for member, token in (
            ("a" * 32, "token-of-portal-a-0001"),
            ("b" * 32, "token-of-portal-b-0002"),
        ):
            upsert_install(
                session,
                InstallAuth(member_id=member, domain=f"{member[:4]}.bitrix24.ru",
                            client_endpoint=f"https://{member[:4]}.bitrix24.ru/rest/",
                            application_token=token, access_token="x" * 32,
                            refresh_token="y" * 32),
            )  # fmt: skip
    return {"a": ("a" * 32, "token-of-portal-a-0001"), "b": ("b" * 32, "token-of-portal-b-0002")}


def _assert_clean_4xx(response) -> None:  # type: ignore[no-untyped-def]
    assert 400 <= response.status_code < 500, (response.status_code, response.get_data()[:300])
    if response.mimetype == "application/json":
        body = response.get_json()
        assert body["code"] == response.status_code and body["message"]


# Non-ASCII digits (str.isdigit() is true for them, int() accepts some) and letters too.
NON_ASCII_DIGITS = "²³¹٠١٢۰۱০১߀०੦௦๐႐𝟎𝟘０"
keys = st.text(
    alphabet=string.ascii_letters + string.digits + "[]_%&=" + NON_ASCII_DIGITS + "яЁ",
    min_size=1, max_size=40,
)  # fmt: skip
bracket_keys = st.builds(
    lambda head, parts: head + "".join(f"[{p}]" for p in parts),
    st.sampled_from(["auth", "data", "document_id", "PLACEMENT_OPTIONS", "properties", "x"]),
    st.lists(st.text(alphabet=string.digits + NON_ASCII_DIGITS + "ab_", max_size=4), max_size=10),
)
values = st.text(max_size=200)
forms = st.dictionaries(st.one_of(keys, bracket_keys), values, max_size=30)
# JSON nested deeper than any real PLACEMENT_OPTIONS (up to 50 000 levels).
deep_json = st.one_of(
    st.builds(
        lambda depth, opener, tail: opener * depth + tail,
        st.integers(min_value=1, max_value=50_000),
        st.sampled_from(["[", '{"a":', '[{"ID":']),
        st.sampled_from(["", "1", "]" * 3, "}"]),
    ),
    # balanced, valid JSON (a list, so never a usable PLACEMENT_OPTIONS object)
    st.integers(min_value=1, max_value=50_000).map(lambda depth: "[" * depth + "]" * depth),
)


@hsettings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(form=forms, route_index=st.integers(min_value=0, max_value=10_000))
def test_random_forms_never_500_and_write_nothing(
    app, services, two_portals, form, route_index
) -> None:
    """Arbitrary bracket-key soup on any inbound route: 4xx, no row, no job."""
    client = app.test_client()
    routes = inbound_routes(app)
    route = routes[route_index % len(routes)]
    before, jobs = row_counts(services), queued_jobs(services)
    response = client.post(route, data=encode_php_form(form) if form else "x",
                           content_type="application/x-www-form-urlencoded")  # fmt: skip
    _assert_clean_4xx(response)
    assert row_counts(services) == before and queued_jobs(services) == jobs


def test_index_only_forms_on_every_route_are_a_clean_4xx(app, services, two_portals) -> None:  # type: ignore[no-untyped-def]
    """``0=a&1=b``: a form whose field names are indices (it once parsed to a list: 500)."""
    client = app.test_client()
    before, jobs = row_counts(services), queued_jobs(services)
    for route in inbound_routes(app):
        response = client.post(route, data="0=a&1=b",
                               content_type="application/x-www-form-urlencoded")  # fmt: skip
        _assert_clean_4xx(response)
    assert row_counts(services) == before and queued_jobs(services) == jobs


@hsettings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(options=deep_json, route_index=st.integers(min_value=0, max_value=10_000))
def test_deep_placement_options_never_500(app, services, two_portals, options, route_index) -> None:
    """PLACEMENT_OPTIONS nested up to 50 000 levels, with portal A's real credentials, on
    every inbound route: 4xx (RecursionError was a 500 before authentication)."""
    member, token = two_portals["a"]
    routes = inbound_routes(app)
    route = routes[route_index % len(routes)]
    form = {"member_id": member, "APPLICATION_TOKEN": token, "AUTH_ID": "x" * 32,
            "PLACEMENT": "CRM_LEAD_DETAIL_TAB", "PLACEMENT_OPTIONS": options}  # fmt: skip
    before = row_counts(services)
    _assert_clean_4xx(app.test_client().post(route, data=form))
    assert row_counts(services) == before


@pytest.mark.parametrize(
    "body",
    [
        "auth[\u00b2]=1",
        "auth[\u0660]=1",
        "auth[member_id]=x&auth[\u0661]=1&auth[0]=2",
        "data[FIELDS][\u09e7]=5",
        "a[0]=1&a[01]=2",
        "PLACEMENT_OPTIONS=" + "[" * 50_000,
        "PLACEMENT_OPTIONS=" + '{"a":' * 5_000 + "1" + "}" * 5_000,
    ],
)
def test_non_ascii_indices_and_deep_json_are_4xx_without_a_traceback(
    app, services, two_portals, caplog, body
) -> None:
    """Issue 10 item 4: these were 500s (ValueError in the form parser, RecursionError in
    PLACEMENT_OPTIONS) on every POST route; now 4xx and no traceback in the log."""
    client = app.test_client()
    for route in inbound_routes(app):
        response = client.post(route, data=body.encode(),
                               content_type="application/x-www-form-urlencoded")  # fmt: skip
        _assert_clean_4xx(response)
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]
    assert queued_jobs(services) == 0


@pytest.mark.parametrize(
    "body, content_type",
    [
        ('{"event": "ONCRMLEADADD"}', "application/json"),
        ("a" * 400_000, "application/x-www-form-urlencoded"),
        ("auth[member_id]=" + "x" * 300_000, "application/x-www-form-urlencoded"),
        ("&".join(f"k{i}=v" for i in range(5000)), "application/x-www-form-urlencoded"),
        ("a" + "[b]" * 50 + "=1", "application/x-www-form-urlencoded"),
        ("%ff%fe=%00", "application/x-www-form-urlencoded"),
    ],
)
def test_wrong_type_huge_or_deep_bodies_are_4xx(
    app, services, two_portals, body, content_type
) -> None:
    """JSON instead of a form, oversized, too many fields, too deep, bad bytes: 4xx everywhere."""
    client = app.test_client()
    before = row_counts(services)
    for route in inbound_routes(app):
        _assert_clean_4xx(client.post(route, data=body, content_type=content_type))
    assert row_counts(services) == before and queued_jobs(services) == 0


def _event_form(member_id: str, token: str, event: str = "ONCRMLEADADD") -> dict[str, str]:
    form = json.loads((FIXTURES / "oncrmleadadd_event.form.json").read_text())
    form.update({"event": event, "auth[member_id]": member_id, "auth[application_token]": token})
    return form


def test_another_portals_member_id_with_a_valid_token_is_refused(
    app, services, two_portals
) -> None:
    """Portal A's genuine token presented under portal B's member_id is 403 on every route."""
    client = app.test_client()
    member_b = two_portals["b"][0]
    token_a = two_portals["a"][1]
    event = _event_form(member_b, token_a)
    robot = json.loads((FIXTURES / "robot_handler_call_lead.DERIVED.form.json").read_text())
    robot.update({"auth[member_id]": member_b, "auth[application_token]": token_a})
    placement = json.loads((FIXTURES / "placement_crm_lead_detail_tab.DERIVED.json").read_text())
    placement_form = dict(placement["form"], member_id=member_b, APPLICATION_TOKEN=token_a)
    before = row_counts(services)
    for route in inbound_routes(app):
        if route.startswith("/install/") and route != "/install/events":
            continue  # the installer is verified against the OAuth server instead
        for form in (event, robot, placement_form):
            response = client.post(route, data=form, query_string=placement["query"])
            assert response.status_code in (400, 401, 403), (route, response.status_code)
    assert row_counts(services) == before and queued_jobs(services) == 0


@pytest.mark.parametrize("event", ["ONCRMCONTACTADD", "ONSOMETHINGELSE", "", "ONAPPINSTALL" * 20])
def test_unknown_events_are_400(app, services, two_portals, event: str) -> None:
    """An event the app did not bind is refused, even with valid credentials."""
    member, token = two_portals["a"]
    response = app.test_client().post("/handlers/events", data=_event_form(member, token, event))
    assert response.status_code == 400
    assert queued_jobs(services) == 0
