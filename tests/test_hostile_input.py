"""Hostile input against every inbound route: never a 500, always the one error shape, nothing
written. Property-based (hypothesis) over malformed bracket keys, wrong types, huge bodies,
unknown events, and another portal's ``member_id`` with a valid token of a different portal.

The routes are discovered from the app's URL map, so a surface added later is covered too.
"""

from __future__ import annotations

import copy
import json
import string
from typing import Any
from urllib.parse import quote
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import func
from sqlalchemy import select

from b24app.bitrix.payload import encode_php_form
from b24app.bitrix.payload import parse_php_form
from b24app.i18n import translate
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
    """Jobs waiting in every queue, in one round trip (the sweep asks thousands of times)."""
    pipe = services.redis.pipeline(transaction=False)
    for queue in services.queues.values():
        pipe.llen(queue.key)
    return sum(pipe.execute())


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


# -- issue 19: every route, every shape, authenticated -----------------------------------------
#
# The forms above mostly fail authentication before anything reads them. Here each route gets a
# payload that passes authentication (portal A's own token, an admin's page session, the
# metrics token) and then one field at a time is replaced by another shape: a scalar, a list,
# a nested mapping, an oversize value, odd keys, a repeated key. The routes come from the URL
# map; a route without a documented payload gets the page session's form.

ROUTE_FIXTURES = {
    "/handlers/events": "oncrmleadadd_event.form.json",
    "/handlers/openlines": "client-loop/onopenlinemessageadd_event.DERIVED.form.json",
    "/handlers/booking": "client-loop/onbookingupdate_event.DERIVED.form.json",
    "/assistant/events": "client-loop/onimbotv2messageadd_openline.DERIVED.form.json",
    "/robots/": "robot_handler_call_lead.DERIVED.form.json",
}
# The installer is verified against the OAuth server, not a stored token: no authenticated
# payload exists without one, so it gets the page form (the soups above cover it too).
PATH_ARGUMENTS = {"table": "summary", "code": "lead_tagger", "filename": "x.css"}
SHAPES = ("scalar", "path_like", "long_word", "list", "mapping", "oversize", "odd_keys", "empty",
          "repeated", "absent")  # fmt: skip
# What an admin's page posts: the settings form, the ROI inputs, a period for every other page.
PERIOD_FORM = {"period": "custom", "from": "2026-01-01", "to": "2026-01-31", "view": "day"}
ROI_FORM = {"leads_before": "100", "conversion_before": "10", "check_before": "2000",
            "leads_after": "120", "conversion_after": "15", "one_off_cost": "1000",
            "monthly_cost": "500", "monthly_savings": "0", "margin": "50", "months": "12"}  # fmt: skip


def every_route(app) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """(method, path) of every rule of the URL map, path arguments filled in."""
    routes = set()
    for rule in app.url_map.iter_rules():
        path = rule.rule
        for arg in rule.arguments:
            value = PATH_ARGUMENTS.get(arg, "x")
            for converter in ("", "path:", "string:", "int:"):
                path = path.replace(f"<{converter}{arg}>", value)
        for method in rule.methods & {"GET", "POST"}:
            routes.add((method, path))
    return sorted(routes)


def _db_fingerprint(services) -> tuple[int, ...]:  # type: ignore[no-untyped-def]
    """Row counts of every table in one statement (the sweep makes thousands of requests)."""
    tables = [t for t in Base.metadata.sorted_tables if t.name != "rest_log"]
    counts = select(*(select(func.count()).select_from(t).scalar_subquery() for t in tables))
    with services.db() as session:
        return tuple(session.execute(counts).one())


@pytest.fixture
def authenticated(app, services, two_portals):  # type: ignore[no-untyped-def]
    """Portal A with the assistant's bot registered, and its admin's page session token."""
    from b24app.placements import settings_form
    from b24app.placements.trust import _cache_key
    from b24app.placements.trust import issue_token
    from b24app.placements.trust import Viewer
    from b24app.settings import DEFAULTS
    from b24app.storage.portals import get_portal

    member, app_token = two_portals["a"]
    with services.db() as session:
        portal = get_portal(session, member)
        assert portal is not None
        portal.registration = {"assistant_bot": {"id": 567, "hash": "x"}}
        # a session not verified yet asks this OAuth server: a closed local port (503), never
        # the internet
        portal.server_endpoint = "http://127.0.0.1:1/rest/"
        # the tabs ask the portal itself whether the viewer may read the item: a closed local
        # port too (the tab then says it could not ask, 503)
        portal.client_endpoint = "http://127.0.0.1:1/rest/"
        portal_id = portal.id
    viewer = Viewer(portal_id=portal_id, member_id=member, domain="aaaa.bitrix24.ru",
                    user_id=1, is_admin=True, lang="ru")  # fmt: skip
    page_token = issue_token(app.config["SECRET_KEY"], viewer)
    page_form = {k: "" if v is None else str(v)
                 for k, v in settings_form.settings_to_form(DEFAULTS).items()
                 if v is not False}  # fmt: skip
    placement = json.loads((FIXTURES / "placement_crm_lead_detail_tab.DERIVED.json").read_text())
    frame_form = dict(placement["form"], member_id=member, APPLICATION_TOKEN=app_token)
    # Bitrix24's word on this AUTH_ID, as the first verification caches it (no OAuth server here)
    services.redis.set(_cache_key(member, frame_form["AUTH_ID"]),
                       json.dumps({"user_id": 1, "admin": True}))  # fmt: skip
    return {"member": member, "app_token": app_token, "page_token": page_token,
            "page_form": page_form, "frame_form": frame_form,
            "frame_query": urlencode(placement["query"])}  # fmt: skip


def _bases(method: str, path: str, auth: dict[str, Any]) -> list[tuple[dict[str, str], str]]:
    """Payloads of ``path`` that pass its authentication: (flat form keys, query string)."""
    for prefix, name in ROUTE_FIXTURES.items():
        if path.startswith(prefix):
            form = json.loads((FIXTURES / name).read_text())
            form.update({"auth[member_id]": auth["member"],
                         "auth[application_token]": auth["app_token"]})  # fmt: skip
            return [({k: str(v) for k, v in form.items()}, "")]
    if path.startswith("/app/settings"):
        page = dict(auth["page_form"])
    else:
        page = dict(ROI_FORM) if path.startswith("/app/roi") else dict(PERIOD_FORM)
    if method == "POST" and path.startswith("/app/"):
        # a framed open from Bitrix24 (verified once, then cached) and the page's own post
        return [
            (dict(auth["frame_form"]), auth["frame_query"]),
            ({"t": auth["page_token"], **page}, ""),
        ]
    return [(page, "")]


def _node_paths(tree: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every field of a nested form, containers included (``data``, ``data[DATA]``…)."""
    items = (
        tree.items()
        if isinstance(tree, dict)
        else enumerate(tree)
        if isinstance(tree, list)
        else ()
    )
    paths = []
    for key, value in items:
        paths.append((*prefix, str(key)))
        paths.extend(_node_paths(value, (*prefix, str(key))))
    return paths


def _replace(tree: Any, path: tuple[str, ...], value: Any) -> Any:
    """A copy of ``tree`` with the node at ``path`` replaced (``_ABSENT``: removed)."""
    tree = copy.deepcopy(tree)
    node = tree
    for part in path[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):  # a list keeps its length (no gap in the indices)
        node[int(path[-1])] = value if value is not _ABSENT else ""
    elif value is _ABSENT:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return tree


_ABSENT = object()


def _shape_value(shape: str, text: str = "x") -> Any:
    return {
        "scalar": text,
        # a directory of the tz database (and of many file trees): ZoneInfo raised OSError
        "path_like": "Europe",
        "long_word": "A" * 256,
        "list": [text, text + "2"],
        "mapping": {"a": {"b": text}},
        "oversize": text * (100_000 // max(len(text), 1) + 1),
        "odd_keys": {"x y": text, "é": text, "-1": text, "00": text},
        "empty": "",
        "absent": _ABSENT,
    }[shape]


def _field_name(path: tuple[str, ...]) -> str:
    return path[0] + "".join(f"[{p}]" for p in path[1:])


def _hostile_request(
    client: Any, method: str, route: str, body: str, query: str, auth: dict[str, Any]
) -> Any:
    headers = {"Authorization": "Bearer test-metrics-token"}
    if "t=" not in body and "AUTH_ID=" not in body:
        headers["X-B24App-Session"] = auth["page_token"]
    if method == "GET":
        return client.get(route, query_string=body, headers=headers)
    return client.post(route, data=body, query_string=query, headers=headers,
                       content_type="application/x-www-form-urlencoded")  # fmt: skip


TAB_ROUTES = ("/app/lead-tab", "/app/deal-tab")


# What a request was checked to have left as it was (row counts, queued jobs; None: not
# checked): the next request of a sweep starts from it instead of reading it again.
Unchanged = tuple[tuple[int, ...] | None, int | None]


def _assert_not_5xx_and_clean(response, services, before, jobs, what) -> Unchanged:  # type: ignore[no-untyped-def]
    if response.status_code == 503 and what[2] == "AUTH_ID":
        return None, None  # another session: Bitrix24's OAuth server must verify it, and it is down
    if response.status_code == 503 and what[1] in TAB_ROUTES:
        # the tab asks Bitrix24 whether this user may read the item, and it is down: the
        # page says so (tab.unconfirmed), with nothing of the item
        page = response.get_data(as_text=True)
        assert any(translate(lang, "tab.unconfirmed_title") in page for lang in ("ru", "en")), what
        return None, None
    assert response.status_code < 500, (what, response.status_code, response.get_data()[:300])
    if not 400 <= response.status_code < 500:
        return None, None
    if response.mimetype == "application/json":
        body = response.get_json()
        assert body["code"] == response.status_code and body["message"], what
    assert _db_fingerprint(services) == before, ("a 4xx wrote rows", what)
    if response.mimetype != "application/json":  # (a refused page may refresh its names)
        return before, None
    assert queued_jobs(services) == jobs, ("a 4xx queued a job", what)
    return before, jobs


def _mutated_body(base: dict[str, str], path: tuple[str, ...], shape: str, text: str = "x") -> str:
    tree = parse_php_form(base.items())
    if shape == "repeated":
        field = next(
            (k for k in base if k == _field_name(path) or k.startswith(_field_name(path) + "[")),
            None,
        )
        extra = f"&{quote(field or _field_name(path))}={quote(text)}"
        return encode_php_form(tree) + extra
    return encode_php_form(_replace(tree, path, _shape_value(shape, text)))


def test_every_field_of_every_route_in_every_shape_is_never_a_500(
    app, services, authenticated
) -> None:
    """Each field of an authenticated payload, on every route of the URL map, replaced by each
    shape in turn: never a 5xx; a 4xx writes nothing and queues nothing (issue 19 item 2:
    ``chat``/``connector`` as a scalar or list on /handlers/openlines were 500s)."""
    client = app.test_client()
    failures = []
    known: Unchanged = (None, None)  # nothing runs between two requests but the app
    for method, route in every_route(app):
        for base, query in _bases(method, route, authenticated):
            for path in _node_paths(parse_php_form(base.items())):
                for shape in SHAPES:
                    body = _mutated_body(base, path, shape)
                    before = known[0] if known[0] is not None else _db_fingerprint(services)
                    jobs = known[1] if known[1] is not None else queued_jobs(services)
                    response = _hostile_request(client, method, route, body, query, authenticated)
                    what = (method, route, _field_name(path), shape)
                    try:
                        known = _assert_not_5xx_and_clean(response, services, before, jobs, what)
                    except AssertionError as exc:
                        known = (None, None)
                        failures.append(str(exc)[:300])
    assert not failures, "\n".join(failures[:40])


hostile_values = st.recursive(
    st.text(max_size=50) | st.builds(lambda n: "ж" * n, st.integers(1_000, 120_000)),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(alphabet=string.ascii_letters + "_-é ²0", min_size=1, max_size=6),
                      children, max_size=4),
    max_leaves=12,
)  # fmt: skip


@hsettings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=hostile_values, pick=st.integers(min_value=0, max_value=10_000))
def test_random_shapes_in_authenticated_payloads_never_500(
    app, services, authenticated, value, pick
) -> None:
    """A random value of any shape in one field of each route's authenticated payload."""
    client = app.test_client()
    for method, route in every_route(app):
        variants = _bases(method, route, authenticated)
        base, query = variants[pick % len(variants)]
        tree = parse_php_form(base.items())
        paths = _node_paths(tree)
        path = paths[pick % len(paths)]
        try:
            body = encode_php_form(_replace(tree, path, value))
        except ValueError:
            continue
        before, jobs = _db_fingerprint(services), queued_jobs(services)
        response = _hostile_request(client, method, route, body, query, authenticated)
        _assert_not_5xx_and_clean(response, services, before, jobs,
                                  (method, route, _field_name(path)))  # fmt: skip


@pytest.mark.parametrize("part", ["chat", "connector", "message"])
@pytest.mark.parametrize("shape", ["scalar", "list"])
def test_openline_parts_of_another_shape_are_400(app, services, authenticated, part, shape) -> None:  # type: ignore[no-untyped-def]
    """Issue 19 item 2: ``data[DATA][0][chat]`` (or ``connector``) sent as a scalar or a list
    with valid credentials was a 500 (``.get`` on a str); now a 400 and nothing queued."""
    base, _query = _bases("POST", "/handlers/openlines", authenticated)[0]
    body = _mutated_body(base, ("data", "DATA", "0", part), shape)
    response = app.test_client().post("/handlers/openlines", data=body,
                                      content_type="application/x-www-form-urlencoded")  # fmt: skip
    assert response.status_code == 400, response.get_data()[:300]
    assert response.get_json()["code"] == 400 and queued_jobs(services) == 0


@pytest.mark.parametrize("zone", ["Europe", "America", "A" * 256, "../../../etc/passwd", "UTC/x"])
def test_a_time_zone_that_is_no_zone_is_400_and_saves_nothing(
    app, services, authenticated, zone
) -> None:  # type: ignore[no-untyped-def]
    """Issue 19 item 2: ``time_zone=Europe`` (a directory of the tz database) raised
    IsADirectoryError and a 256-character name OSError: 500s. Now the page's 400 naming the
    field, and nothing saved."""
    from b24app.storage.models import PortalSettings

    form = {"t": authenticated["page_token"], **authenticated["page_form"], "time_zone": zone}
    response = app.test_client().post("/app/settings", data=form)
    assert response.status_code == 400
    assert "time_zone" in response.get_data(as_text=True)
    with services.db() as session:
        assert session.scalar(select(func.count()).select_from(PortalSettings)) == 0
