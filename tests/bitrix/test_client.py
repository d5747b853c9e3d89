"""The REST client against ``responses`` fakes: envelopes, errors, retries, refresh,
redirects, batch, paging and the masked REST log."""

from __future__ import annotations

import json
import threading
import time
from typing import Any
from urllib.parse import parse_qsl

import pytest
import requests
import responses
from responses import matchers
from responses.registries import OrderedRegistry

from b24app import context
from b24app import metrics
from b24app.bitrix.client import BitrixClient
from b24app.bitrix.client import encode_command
from b24app.bitrix.errors import AccessDenied
from b24app.bitrix.errors import already_exists
from b24app.bitrix.errors import AuthRevoked
from b24app.bitrix.errors import BitrixError
from b24app.bitrix.errors import NotFound
from b24app.bitrix.errors import PortalUnavailable
from b24app.bitrix.errors import RateLimited
from b24app.bitrix.errors import TransportError
from b24app.bitrix.payload import parse_php_form
from b24app.config import Settings
from b24app.storage.models import Portal
from b24app.storage.models import PortalStatus
from b24app.storage.models import RestLog
from b24app.storage.portals import DbTokenStore
from b24app.storage.portals import get_portal
from tests.bitrix.conftest import ENDPOINT
from tests.bitrix.conftest import fixture
from tests.bitrix.conftest import install_portal
from tests.bitrix.conftest import MEMBER
from tests.bitrix.conftest import OLD_ACCESS
from tests.bitrix.conftest import OLD_REFRESH
from tests.bitrix.conftest import SERVER
from tests.bitrix.conftest import Sleeps
from tests.bitrix.conftest import TOKEN_URL

REFRESHED = fixture("oauth_refresh_response.json")


def ok(result: Any, **extra: Any) -> dict[str, Any]:
    return {"result": result, "time": {"start": 1.0, "finish": 1.0, "duration": 0.0}, **extra}


def body_of(call: Any) -> dict[str, Any]:
    return json.loads(call.request.body)


def limit_hits() -> float:
    return metrics.REST_LIMIT_HITS._value.get()


# -- plain calls and error envelopes ---------------------------------------------------------


def test_call_posts_json_with_auth_and_returns_result(b24: BitrixClient, rsps: Any) -> None:
    """A call is a POST of a JSON body carrying ``auth``, with Accept and a real User-Agent."""
    rsp = rsps.post(
        ENDPOINT + "user.current",
        json=fixture("rest_success_user_current.json"),
        match=[
            matchers.json_params_matcher({"auth": OLD_ACCESS}),
            matchers.header_matcher({"Accept": "application/json"}),
        ],
    )
    result = b24.call("user.current")
    assert result["ID"] == fixture("rest_success_user_current.json")["result"]["ID"]
    assert rsp.calls[0].request.headers["User-Agent"].startswith("b24app/")


def test_call_raw_keeps_total_and_next(b24: BitrixClient, rsps: Any) -> None:
    """``call_raw`` returns the whole envelope of a list page."""
    rsps.post(
        ENDPOINT + "crm.lead.list",
        json=fixture("rest_list_crm_lead_list.json"),
        match=[matchers.json_params_matcher({"start": 0}, strict_match=False)],
    )
    envelope = b24.call_raw("crm.lead.list", {"start": 0})
    assert envelope["total"] == 654
    assert envelope["next"] == 50
    assert len(envelope["result"]) == 2


@pytest.mark.parametrize(
    "name, status",
    [("error_crm_lead_get_not_found.json", 400), ("error_crm_item_get_not_found.json", 400)],
)
def test_not_found_envelopes_raise_not_found(
    b24: BitrixClient, rsps: Any, name: str, status: int
) -> None:
    """The empty-string code of crm.lead.get and NOT_FOUND of crm.item.get are NotFound."""
    rsps.post(ENDPOINT + "crm.lead.get", json=fixture(name), status=status)
    with pytest.raises(NotFound) as info:
        b24.call("crm.lead.get", {"id": 999})
    assert info.value.code == fixture(name)["error"]
    assert info.value.status == status


def test_error_with_http_200_is_an_error(b24: BitrixClient, rsps: Any) -> None:
    """An envelope with an ``error`` key raises even when the HTTP status is 200."""
    rsps.post(
        ENDPOINT + "placement.bind",
        json={"error": "ERROR_PLACEMENT_NOT_FOUND", "error_description": "Placement not found"},
        status=200,
    )
    with pytest.raises(BitrixError) as info:
        b24.call("placement.bind", {"PLACEMENT": "NOPE", "HANDLER": "https://x/"})
    assert info.value.code == "ERROR_PLACEMENT_NOT_FOUND"
    assert info.value.status == 200


def test_access_denied_is_not_retried(b24: BitrixClient, rsps: Any, sleeps: Sleeps) -> None:
    """bizproc.event.send with an expired event token: 403 ACCESS_DENIED, one request only."""
    rsp = rsps.post(
        ENDPOINT + "bizproc.event.send",
        json=fixture("error_bizproc_event_send_access_denied.json"),
        status=403,
    )
    with pytest.raises(AccessDenied):
        b24.call("bizproc.event.send", fixture("request_bizproc_event_send.json"))
    assert rsp.call_count == 1
    assert sleeps == []


# -- retries --------------------------------------------------------------------------------


@responses.activate(registry=OrderedRegistry)
def test_query_limit_then_success_is_retried(b24: BitrixClient, sleeps: Sleeps) -> None:
    """503 QUERY_LIMIT_EXCEEDED, 503, then 200: the call succeeds after two paced retries."""
    before = limit_hits()
    limit = fixture("error_query_limit_exceeded.json")
    responses.post(ENDPOINT + "crm.lead.get", json=limit, status=503)
    responses.post(ENDPOINT + "crm.lead.get", json=limit, status=503)
    responses.post(ENDPOINT + "crm.lead.get", json=fixture("crm_lead_get.json"), status=200)
    fills: list[int] = []
    fill = b24.bucket.fill
    b24.bucket.fill = lambda: (fills.append(1), fill())[1]  # type: ignore[method-assign]
    assert b24.call("crm.lead.get", {"id": 1})["ID"]
    assert len(responses.calls) == 3
    # No blind back-off: each refusal sets the shared bucket full and the retry waits on it.
    assert len(fills) == 2 and all(s > 0 for s in sleeps)
    assert limit_hits() == before + 2


def test_query_limit_retries_are_bounded(
    services: context.Services, fast_settings: Settings, store: DbTokenStore, sleeps: Sleeps,
    rsps: Any,
) -> None:  # fmt: skip
    """After ``rest_max_retries`` the limit surfaces as RateLimited."""
    b24 = BitrixClient(MEMBER, store, services.redis, fast_settings.replace(rest_max_retries=2),
                       sleep=sleeps)  # fmt: skip
    rsp = rsps.post(ENDPOINT + "crm.lead.get", json=fixture("error_query_limit_exceeded.json"),
                    status=503)  # fmt: skip
    with pytest.raises(RateLimited):
        b24.call("crm.lead.get", {"id": 1})
    assert rsp.call_count == 3


@responses.activate(registry=OrderedRegistry)
def test_network_error_and_500_are_retried(b24: BitrixClient, sleeps: Sleeps) -> None:
    """A dropped connection and a 500 are retried with back-off."""
    responses.post(ENDPOINT + "user.current", body=requests.ConnectionError("reset"))
    responses.post(
        ENDPOINT + "user.current",
        json={"error": "INTERNAL_SERVER_ERROR", "error_description": "boom"},
        status=500,
    )
    responses.post(ENDPOINT + "user.current", json=fixture("rest_success_user_current.json"))
    assert b24.call("user.current")["ID"]
    assert len(sleeps) == 2


def test_timeouts_exhausted_raise_transport_error(
    services: context.Services, fast_settings: Settings, store: DbTokenStore, sleeps: Sleeps,
    rsps: Any,
) -> None:  # fmt: skip
    """With no answer at all the call ends in TransportError (no token in the message)."""
    b24 = BitrixClient(MEMBER, store, services.redis, fast_settings.replace(rest_max_retries=1),
                       sleep=sleeps)  # fmt: skip
    rsps.post(ENDPOINT + "user.current", body=requests.Timeout("read timed out"))
    with pytest.raises(TransportError) as info:
        b24.call("user.current")
    assert OLD_ACCESS not in str(info.value)


def test_operation_time_limit_waits_until_reset(
    b24: BitrixClient, services: context.Services, sleeps: Sleeps
) -> None:
    """429 OPERATION_TIME_LIMIT: wait until ``operating_reset_at``, shared via Redis, then retry.

    The sleeps are fake; what real time passes (a stall included) is measured around the
    call and only widens the lower bound by that much."""
    reset_in = 30.0  # under the client's 60 s cap for an in-call wait
    before = time.time()
    reset_at = before + reset_in
    body = {**fixture("error_operation_time_limit.json"),
            "time": {"operating_reset_at": reset_at, "operating": 480}}  # fmt: skip
    with responses.RequestsMock(registry=OrderedRegistry) as mock:
        mock.post(ENDPOINT + "crm.lead.list", json=body, status=429)
        mock.post(ENDPOINT + "crm.lead.list", json=ok([]))
        assert b24.call("crm.lead.list") == []
    # Another worker sees the block too: it lasts in Redis until operating_reset_at.
    left = services.redis.pttl(f"b24app:oplimit:{MEMBER}:crm.lead.list") / 1000  # < 0: gone
    now = time.time()
    assert reset_in - (now - before) - 0.01 <= sum(sleeps) <= reset_in
    assert reset_at - 0.01 <= now + max(left, 0.0) <= reset_at + (now - before) + 0.01


def test_operation_time_limit_beyond_cap_raises(b24: BitrixClient, rsps: Any) -> None:
    """A 10-minute block is not slept through in a job: RateLimited with retry_after."""
    before = time.time()
    body = {**fixture("error_operation_time_limit.json"),
            "time": {"operating_reset_at": before + 600}}  # fmt: skip
    rsps.post(ENDPOINT + "crm.lead.list", json=body, status=429)
    with pytest.raises(RateLimited) as info:
        b24.call("crm.lead.list")
    took = time.time() - before  # real time, a stall included: the answer is that much less
    assert 600 - took - 0.01 <= (info.value.retry_after or 0) <= 600 + 0.01
    # The next call to the same method is refused before any request is made.
    with pytest.raises(RateLimited):
        b24.call("crm.lead.list")


# -- tokens ---------------------------------------------------------------------------------


@responses.activate(registry=OrderedRegistry)
def test_expired_token_refreshes_once_and_retries(b24: BitrixClient, store: DbTokenStore) -> None:
    """401 expired_token → refresh at the portal's OAuth server → the same call again."""
    responses.post(
        ENDPOINT + "crm.lead.get", json=fixture("error_expired_token.json"), status=401,
        match=[matchers.json_params_matcher({"auth": OLD_ACCESS}, strict_match=False)],
    )  # fmt: skip
    oauth = responses.get(
        TOKEN_URL,
        json=REFRESHED,
        match=[matchers.query_param_matcher({
            "grant_type": "refresh_token", "client_id": b24.settings.client_id,
            "client_secret": b24.settings.client_secret, "refresh_token": OLD_REFRESH,
        })],
    )  # fmt: skip
    retry = responses.post(
        ENDPOINT + "crm.lead.get", json=fixture("crm_lead_get.json"),
        match=[matchers.json_params_matcher({"auth": REFRESHED["access_token"]}, strict_match=False)],
    )  # fmt: skip
    assert b24.call("crm.lead.get", {"id": 1})["ID"]
    assert oauth.call_count == 1 and retry.call_count == 1
    stored = store.load(MEMBER)
    assert stored is not None
    assert stored.access_token == REFRESHED["access_token"]
    assert stored.refresh_token == REFRESHED["refresh_token"]
    assert stored.version == 2


@responses.activate(registry=OrderedRegistry)
def test_invalid_token_also_refreshes(b24: BitrixClient) -> None:
    """401 invalid_token (not in the docs, sent by real portals) is refreshed like expired."""
    responses.post(ENDPOINT + "user.current", json=fixture("error_invalid_token.json"), status=401)
    responses.get(TOKEN_URL, json=REFRESHED)
    responses.post(ENDPOINT + "user.current", json=fixture("rest_success_user_current.json"))
    assert b24.call("user.current")["ID"]


@pytest.mark.parametrize(
    "name, status",
    [("oauth_error_invalid_grant.json", 400), ("oauth_error_wrong_client.json", 200)],
)
def test_revoked_grant_marks_portal_and_stops(
    b24: BitrixClient, services: context.Services, rsps: Any, name: str, status: int
) -> None:
    """invalid_grant / wrong_client: AuthRevoked, portal flagged, later calls make no request."""
    rsps.post(ENDPOINT + "user.current", json=fixture("error_expired_token.json"), status=401)
    oauth = rsps.get(TOKEN_URL, json=fixture(name), status=status)
    with pytest.raises(AuthRevoked):
        b24.call("user.current")
    assert oauth.call_count == 1
    with services.db() as session:
        portal = get_portal(session, MEMBER)
        assert portal is not None and portal.status == PortalStatus.REAUTH_REQUIRED
    with pytest.raises(PortalUnavailable):
        b24.call("user.current")  # rsps would raise ConnectionError on any request


@pytest.mark.parametrize("status", [PortalStatus.UNINSTALLED, PortalStatus.REAUTH_REQUIRED])
def test_unavailable_portal_makes_no_call(
    b24: BitrixClient, services: context.Services, rsps: Any, status: str
) -> None:
    """Uninstalled or re-auth-required portals raise PortalUnavailable without any request."""
    with services.db() as session:
        session.query(Portal).filter_by(member_id=MEMBER).update({"status": status})
    with pytest.raises(PortalUnavailable):
        b24.call("user.current")
    assert len(rsps.calls) == 0


def test_unknown_portal_is_unavailable(
    services: context.Services, fast_settings: Settings, rsps: Any
) -> None:
    """A member_id we never saw: PortalUnavailable."""
    b24 = BitrixClient("nope", DbTokenStore(services.sessions), services.redis, fast_settings)
    with pytest.raises(PortalUnavailable):
        b24.call("user.current")


def test_plain_http_endpoint_is_refused(
    services: context.Services, fast_settings: Settings, rsps: Any
) -> None:
    """A non-https client_endpoint never receives a token (unless loopback + allowed)."""
    install_portal(services, "m-http", client_endpoint="http://evil.example/rest/")
    b24 = BitrixClient("m-http", DbTokenStore(services.sessions), services.redis, fast_settings)
    with pytest.raises(PortalUnavailable) as info:
        b24.call("user.current")
    assert info.value.code == "INSECURE_ENDPOINT"


def test_concurrent_expired_calls_refresh_once(
    services: context.Services, fast_settings: Settings, store: DbTokenStore
) -> None:
    """10 threads hit an expired token at once: one refresh reaches the OAuth server, all 10
    succeed, and the stored refresh token is the newest one issued."""
    lock = threading.Lock()
    issued: list[dict[str, Any]] = []
    live = {OLD_ACCESS}

    def oauth(request: Any) -> tuple[int, dict[str, str], str]:
        time.sleep(0.2)  # a slow OAuth server widens the race window
        with lock:
            n = len(issued)
            pair = {**REFRESHED, "access_token": f"access-{n}", "refresh_token": f"refresh-{n}"}
            issued.append(pair)
            live.clear()
            live.add(pair["access_token"])  # rotation: the old access token dies
        return 200, {}, json.dumps(pair)

    def rest(request: Any) -> tuple[int, dict[str, str], str]:
        token = json.loads(request.body)["auth"]
        with lock:
            alive = token in live and token != OLD_ACCESS
        if not alive:
            return 401, {}, json.dumps(fixture("error_expired_token.json"))
        return 200, {}, json.dumps(ok({"ID": "1"}))

    results: list[Any] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(10)

    def worker() -> None:
        # One client per thread: as if each were its own RQ worker process.
        b24 = BitrixClient(MEMBER, DbTokenStore(services.sessions), services.redis,
                           fast_settings)  # fmt: skip
        barrier.wait()
        try:
            results.append(b24.call("user.current"))
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    with responses.RequestsMock() as mock:
        mock.add_callback(responses.GET, TOKEN_URL, callback=oauth)
        mock.add_callback(responses.POST, ENDPOINT + "user.current", callback=rest)
        threads = [threading.Thread(target=worker) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert errors == []
    assert len(results) == 10
    assert len(issued) == 1
    stored = store.load(MEMBER)
    assert stored is not None and stored.refresh_token == issued[-1]["refresh_token"]


# -- redirects -------------------------------------------------------------------------------


def test_redirect_is_reposted_and_endpoint_updated(
    b24: BitrixClient, store: DbTokenStore, rsps: Any
) -> None:
    """A moved portal 302s: the client re-POSTs the same body to Location and stores the new
    client_endpoint, instead of letting requests turn the POST into a GET."""
    new = "https://renamed.bitrix24.com/rest/"
    _app_info_says(rsps, "renamed.bitrix24.com")
    rsps.post(ENDPOINT + "crm.lead.add", status=302, headers={"Location": new + "crm.lead.add"})
    moved = rsps.post(
        new + "crm.lead.add",
        json=fixture("rest_success_crm_lead_add.json"),
        match=[matchers.json_params_matcher({"fields": {"TITLE": "X"}}, strict_match=False)],
    )
    assert b24.call("crm.lead.add", {"fields": {"TITLE": "X"}})
    assert moved.calls[0].request.method == "POST"
    stored = store.load(MEMBER)
    assert stored is not None and stored.client_endpoint == new
    assert stored.access_token == OLD_ACCESS


def _app_info_says(rsps: Any, domain: str, member_id: str = MEMBER) -> Any:
    """The trusted OAuth server's app.info naming ``domain`` as the portal's address."""
    return rsps.get(
        SERVER + "app.info",
        json={"result": {"client_id": "local.test.app", "install": {
            "member_id": member_id, "domain": domain,
            "client_endpoint": f"https://{domain}/rest/", "installed": True}}},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("location", "app_info_domain", "app_info_member"),
    [
        ("https://evil.example/rest/crm.lead.add", "portal.bitrix24.com", MEMBER),
        ("https://evil.example/rest/crm.lead.add", "evil.example", "f" * 32),
        ("https://other.bitrix24.com/rest/crm.lead.add", "portal.bitrix24.com", MEMBER),
    ],
)
def test_redirect_elsewhere_is_refused_and_nothing_stored(
    b24: BitrixClient, store: DbTokenStore, rsps: Any, caplog: pytest.LogCaptureFixture,
    location: str, app_info_domain: str, app_info_member: str,
) -> None:  # fmt: skip
    """A redirect to a host the OAuth server does not name as this portal's (issue 10,
    hardening): refused and logged; the token is not sent there, the endpoint is kept."""
    _app_info_says(rsps, app_info_domain, app_info_member)
    rsps.post(ENDPOINT + "crm.lead.add", status=302, headers={"Location": location})
    with caplog.at_level("WARNING"), pytest.raises(PortalUnavailable) as info:
        b24.call("crm.lead.add", {"fields": {"TITLE": "X"}})
    assert info.value.code == "REDIRECT_REFUSED"
    assert not [c for c in rsps.calls if c.request.url.startswith(location.rsplit("/", 1)[0])]
    stored = store.load(MEMBER)
    assert stored is not None and stored.client_endpoint == ENDPOINT
    assert any("refused a redirect" in r.getMessage() for r in caplog.records)
    assert OLD_ACCESS not in caplog.text


def test_redirect_on_the_same_host_needs_no_confirmation(
    b24: BitrixClient, store: DbTokenStore, rsps: Any
) -> None:
    new = "https://portal.bitrix24.com/rest/v2/"
    rsps.post(ENDPOINT + "user.current", status=301, headers={"Location": new + "user.current"})
    rsps.post(new + "user.current", json=fixture("rest_success_user_current.json"))
    assert b24.call("user.current")
    stored = store.load(MEMBER)
    assert stored is not None and stored.client_endpoint == new


# -- batch ----------------------------------------------------------------------------------


def test_batch_parses_sections(b24: BitrixClient, rsps: Any) -> None:
    """Results, totals and the ``[]`` empty sections of the documented success answer."""
    rsp = rsps.post(ENDPOINT + "batch", json=fixture("batch_response_success.json"))
    result = b24.batch({
        "get_user": ("user.current", None),
        "get_department": ("department.get", {"ID": "$result[get_user][UF_DEPARTMENT][0]"}),
    })  # fmt: skip
    assert result.results["get_user"]["ID"] == "1"
    assert result.totals == {"get_department": 1}
    assert result.errors == {} and result.next == {}
    sent = body_of(rsp.calls[0])
    assert sent["cmd"] == fixture("request_batch.json")["cmd"] | {
        "get_department": "department.get?ID=%24result%5Bget_user%5D%5BUF_DEPARTMENT%5D%5B0%5D"
    }
    assert sent["halt"] == 0


@pytest.mark.parametrize(
    "name, failed",
    [
        ("batch_response_error_halt0.json", {"get_user", "get_department"}),
        ("batch_response_error_halt1.json", {"get_user"}),
    ],
)
def test_batch_errors_with_empty_result(
    b24: BitrixClient, rsps: Any, name: str, failed: set[str]
) -> None:
    """``result: []`` with per-command errors: results empty, errors keyed by command id."""
    rsps.post(ENDPOINT + "batch", json=fixture(name))
    result = b24.batch(
        {"get_user": ("user.current", None), "get_department": ("department.get", {"ID": 1})},
        halt=name.endswith("halt1.json"),
    )
    assert result.results == {}
    assert set(result.errors) == failed
    error = result.error("get_user")
    assert error is not None and error.code == "insufficient_scope"
    assert isinstance(error, AccessDenied)


def test_batch_of_120_commands_takes_3_requests(b24: BitrixClient, rsps: Any) -> None:
    """Commands are chunked 50 + 50 + 20; every command's result comes back under its id."""

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        cmd = json.loads(request.body)["cmd"]
        assert len(cmd) <= 50
        results = {}
        for key, text in cmd.items():
            _method, _, query = text.partition("?")
            results[key] = parse_php_form(parse_qsl(query))["id"]
        return 200, {}, json.dumps(ok({"result": results, "result_error": [],
                                       "result_total": [], "result_next": []}))  # fmt: skip

    rsps.add_callback(responses.POST, ENDPOINT + "batch", callback=answer)
    commands = {f"c{i}": ("crm.lead.get", {"id": i}) for i in range(120)}
    result = b24.batch(commands)
    assert len(rsps.calls) == 3
    assert result.results == {f"c{i}": str(i) for i in range(120)}


def test_encode_command_uses_php_brackets() -> None:
    """Batch commands are ``method?`` + http_build_query with bracket keys."""
    text = encode_command("crm.lead.list", {"filter": {">ID": 5}, "select": ["ID", "TITLE"]})
    method, _, query = text.partition("?")
    assert method == "crm.lead.list"
    assert parse_qsl(query) == [("filter[>ID]", "5"), ("select[0]", "ID"), ("select[1]", "TITLE")]
    assert encode_command("user.current", None) == "user.current"


# -- paging ---------------------------------------------------------------------------------


def _leads(ids: list[int]) -> list[dict[str, str]]:
    return [{"ID": str(i), "TITLE": f"Lead {i}"} for i in ids]


def test_list_all_follows_next(b24: BitrixClient, rsps: Any) -> None:
    """Standard paging: start=0, 50, 100 until no ``next``."""
    ids = list(range(1, 121))

    def page(request: Any) -> tuple[int, dict[str, str], str]:
        start = json.loads(request.body)["start"]
        rows = _leads(ids[start : start + 50])
        extra = {"total": len(ids)}
        if start + 50 < len(ids):
            extra["next"] = start + 50
        return 200, {}, json.dumps(ok(rows, **extra))

    rsps.add_callback(responses.POST, ENDPOINT + "crm.lead.list", callback=page)
    rows = list(b24.list_all("crm.lead.list", {"select": ["ID"]}))
    assert [int(r["ID"]) for r in rows] == ids
    assert [body_of(c)["start"] for c in rsps.calls] == [0, 50, 100]


def test_iter_fast_chains_pages_in_one_batch(b24: BitrixClient, rsps: Any) -> None:
    """120 leads with gaps in their IDs: one batch request; page k filters on the last ID of
    page k-1 via ``$result[p{k-1}][49][ID]``; commands after the short page are ignored."""
    ids = list(range(3, 3 + 3 * 120, 3))  # gaps: 3, 6, 9, …

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        cmd = json.loads(request.body)["cmd"]
        results: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        for key, text in cmd.items():
            _method, _, query = text.partition("?")
            params = parse_php_form(parse_qsl(query))
            assert params["start"] == "-1" and params["order"] == {"ID": "ASC"}
            bound = params["filter"][">ID"]
            if bound.startswith("$result["):  # what the portal substitutes
                prev = bound[len("$result[") : bound.index("]")]
                page = results.get(prev)
                if page is None or len(page) < 50:
                    errors[key] = {"error": "", "error_description": "unresolved"}
                    continue
                bound = page[49]["ID"]
            results[key] = _leads([i for i in ids if i > int(bound)][:50])
        return 200, {}, json.dumps(ok({"result": results, "result_error": errors or [],
                                       "result_total": [], "result_next": []}))  # fmt: skip

    rsps.add_callback(responses.POST, ENDPOINT + "batch", callback=answer)
    rows = list(
        b24.iter_fast("crm.lead.list", {"select": ["TITLE"], "filter": {"STATUS_ID": "NEW"}})
    )
    assert [int(r["ID"]) for r in rows] == ids
    assert len(rsps.calls) == 1
    cmd = body_of(rsps.calls[0])["cmd"]
    assert len(cmd) == 50
    second = parse_php_form(parse_qsl(cmd["p1"].partition("?")[2]))
    assert second["filter"] == {"STATUS_ID": "NEW", ">ID": "$result[p0][49][ID]"}
    assert second["select"] == ["TITLE", "ID"]


def test_iter_fast_one_page_per_request(b24: BitrixClient, rsps: Any) -> None:
    """``batch_pages=1``: plain ``>ID`` paging, one request per page, stops at a short page."""
    ids = list(range(1, 76))

    def page(request: Any) -> tuple[int, dict[str, str], str]:
        bound = int(json.loads(request.body)["filter"][">ID"])
        return 200, {}, json.dumps(ok(_leads([i for i in ids if i > bound][:50])))

    rsps.add_callback(responses.POST, ENDPOINT + "crm.lead.list", callback=page)
    rows = list(b24.iter_fast("crm.lead.list", batch_pages=1))
    assert [int(r["ID"]) for r in rows] == ids
    assert len(rsps.calls) == 2


# -- the REST log ---------------------------------------------------------------------------


@responses.activate(registry=OrderedRegistry)
def test_log_rows_mask_tokens_and_truncate(
    b24: BitrixClient, log_rows: list[dict[str, Any]]
) -> None:
    """Every HTTP exchange is logged in RestLog shape; no token appears; bodies are cut to 4 KB."""
    responses.post(ENDPOINT + "crm.lead.list", json=fixture("error_expired_token.json"), status=401)
    responses.get(TOKEN_URL, json=REFRESHED)
    big = _leads(list(range(1, 51))) * 10
    responses.post(ENDPOINT + "crm.lead.list", json=ok(big, total=500, next=50))
    b24.call("crm.lead.list", {"filter": {"TITLE": "x"}, "auth": "sneaky", "access_token": "leak"})
    assert [r["method"] for r in log_rows] == ["crm.lead.list", "oauth.token", "crm.lead.list"]
    assert set(log_rows[0]) == {"member_id", "method", "request", "status_code", "response",
                                "error", "duration_ms"}  # fmt: skip
    assert log_rows[0]["error"] == "expired_token" and log_rows[0]["status_code"] == 401
    assert log_rows[2]["error"] is None and len(log_rows[2]["response"]) <= 4096 + 20
    everything = json.dumps(log_rows)
    for secret in (OLD_ACCESS, OLD_REFRESH, REFRESHED["access_token"],
                   REFRESHED["refresh_token"], "leak", b24.settings.client_secret):  # fmt: skip
        assert secret not in everything
    RestLog(**log_rows[0])  # the row fits the model


def test_log_sink_failure_does_not_break_the_call(
    services: context.Services, fast_settings: Settings, store: DbTokenStore, rsps: Any
) -> None:
    """A broken log sink is logged and ignored."""

    def broken(row: dict[str, Any]) -> None:
        raise RuntimeError("db down")

    b24 = BitrixClient(MEMBER, store, services.redis, fast_settings, log_sink=broken)
    rsps.post(ENDPOINT + "user.current", json=ok({"ID": "1"}))
    assert b24.call("user.current") == {"ID": "1"}


def test_services_client_writes_rest_log_rows(
    services: context.Services, store: DbTokenStore, rsps: Any
) -> None:
    """``Services.bitrix`` wires the sink to the rest_log table."""
    services.settings = services.settings.replace(allow_insecure_endpoints=False)
    rsps.post(ENDPOINT + "user.current", json=ok({"ID": "1"}))
    services.bitrix(MEMBER).call("user.current")
    with services.db() as session:
        rows = session.query(RestLog).all()
        assert [(r.method, r.status_code) for r in rows] == [("user.current", 200)]
        assert OLD_ACCESS not in rows[0].request


# -- error helpers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"error": "ERROR_HANDLER_ALREADY_EXIST", "error_description": "Handler already exists!"},
        {"error": "", "error_description": "Unable to set event handler"},
        {"error": "ERROR_ACTIVITY_ALREADY_INSTALLED", "error_description": "Activity or Robot already installed!"},
        {"error": "ERROR_CORE", "error_description": "Unable to set placement handler: Handler already binded"},
        {"error": "ERROR_CORE", "error_description": "Field UF_CRM_LEAD_TAG already exists"},
    ],
)  # fmt: skip
def test_already_exists_predicate(body: dict[str, str]) -> None:
    """Install steps that were done before are recognised in all their spellings."""
    assert already_exists(body)
    from b24app.bitrix.errors import from_envelope

    assert from_envelope(body, 400).already_exists


def test_other_errors_are_not_already_exists() -> None:
    assert not already_exists({"error": "ACCESS_DENIED", "error_description": "Access denied!"})
    assert not already_exists(fixture("error_event_bind_event_not_found.json"))
