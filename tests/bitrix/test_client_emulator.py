"""The REST client against the portal emulator over real HTTP (``devportal``).

These exercise what ``responses`` cannot: a real OAuth server rotating refresh tokens, the
portal's own leaky bucket, and ``$result[…]`` substitution inside ``batch``.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from b24app import context
from b24app.bitrix.client import BitrixClient
from b24app.bitrix.errors import AuthRevoked
from b24app.bitrix.errors import PortalUnavailable
from b24app.config import Settings
from b24app.storage.models import PortalStatus
from b24app.storage.portals import DbTokenStore
from b24app.storage.portals import get_portal
from devportal import DevPortal
from devportal import Portal
from tests.bitrix.conftest import install_portal


def connect(services: context.Services, portal: Portal) -> None:
    """Install the app on the emulated portal (API-only: no app server needed) and store the
    admin's token pair as the installer would."""
    portal.install(installer_path=None, event_handler_path=None)
    pair = portal.tokens_for()
    install_portal(
        services,
        portal.member_id,
        client_endpoint=portal.client_endpoint,
        server_endpoint=portal.server_endpoint,
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
    )


def client_for(
    services: context.Services, portal: Portal, settings: Settings | None = None
) -> BitrixClient:
    return BitrixClient(
        portal.member_id,
        DbTokenStore(services.sessions),
        services.redis,
        settings or services.settings,
        log_sink=services.rest_log_sink,
    )


def run_parallel(n: int, target: Any) -> tuple[list[Any], list[BaseException]]:
    results: list[Any] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results.append(target(i))
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results, errors


def test_parallel_expired_calls_refresh_once(
    services: context.Services, emulator: DevPortal, portal: Portal
) -> None:
    """10 workers call with an expired token at once: the OAuth server sees exactly one
    refresh, all 10 calls succeed, and the stored refresh token is the live (newest) one."""
    connect(services, portal)
    portal.expire_tokens()
    results, errors = run_parallel(10, lambda i: client_for(services, portal).call("user.current"))
    assert errors == []
    assert len(results) == 10
    assert emulator.token_refreshes(portal) == 1
    # The stored refresh token is the live one: the next expiry refreshes fine.
    portal.expire_tokens()
    assert client_for(services, portal).call("user.current")["ID"] == "1"
    assert emulator.token_refreshes(portal) == 2


def test_burst_of_200_calls_never_surfaces_query_limit(
    services: context.Services, emulator: DevPortal, settings: Settings
) -> None:
    """200 calls from 8 workers; portal and client bucket both at 20 req/s, burst 50.

    Scaled from the real 2 req/s / burst 50 (75 s for 200 calls) to 20 req/s (7.5 s): the
    arithmetic is the same, only the drain is 10× faster. See the ``slow`` test for 2/50.
    """
    portal = emulator.create_portal("burst", rate=20, burst=50)
    connect(services, portal)
    fast = settings.replace(rest_rate=20.0, rest_burst=50)

    def worker(i: int) -> int:
        b24 = client_for(services, portal, fast)
        for _ in range(25):
            b24.call("user.current")
        return 25

    results, errors = run_parallel(8, worker)
    assert errors == [] and sum(results) == 200
    assert emulator.calls(portal=portal, error="QUERY_LIMIT_EXCEEDED") == []
    assert emulator.http_requests(portal) == 200


@pytest.mark.slow
def test_burst_at_the_real_2_per_second_limit(
    services: context.Services, emulator: DevPortal, portal: Portal
) -> None:
    """The documented figures, 2 req/s burst 50 on both sides: 60 calls from 4 threads (10
    past the burst, ~5 s) and the portal never refuses one."""
    connect(services, portal)

    def worker(i: int) -> int:
        b24 = client_for(services, portal)
        for _ in range(15):
            b24.call("user.current")
        return 15

    results, errors = run_parallel(4, worker)
    assert errors == [] and sum(results) == 60
    assert emulator.calls(portal=portal, error="QUERY_LIMIT_EXCEEDED") == []


def test_fast_export_of_20000_leads_takes_9_requests(
    services: context.Services, emulator: DevPortal, portal: Portal
) -> None:
    """The chained-batch fast export reads 20,000 leads (with ID gaps) in ≤ 10 HTTP requests;
    page-by-page ``crm.lead.list`` needs ``total / 50`` = 400."""
    connect(services, portal)
    ids = portal.bulk_create_leads(20_050)
    for lead_id in ids[100:150]:  # gaps in the ID sequence
        portal.delete_lead(lead_id)
    b24 = client_for(services, portal)
    total = b24.call_raw("crm.lead.list", {"select": ["ID"]})["total"]
    assert total == 20_000
    before = emulator.http_requests(portal)
    rows = list(b24.iter_fast("crm.lead.list", {"select": ["ID", "TITLE"]}))
    requests_made = emulator.http_requests(portal) - before
    got = [int(r["ID"]) for r in rows]
    assert got == sorted(set(ids) - set(ids[100:150]))
    assert requests_made <= 10
    assert total // 50 >= 40 * requests_made


def test_query_limit_from_the_portal_is_retried(
    services: context.Services, emulator: DevPortal, portal: Portal
) -> None:
    """Two injected 503 QUERY_LIMIT_EXCEEDED answers are absorbed by back-off."""
    connect(services, portal)
    emulator.inject_fault("query_limit", count=2, portal=portal.slug)
    b24 = client_for(services, portal)
    b24.backoff_base = 0.01
    assert b24.call("user.current")["ID"] == "1"
    assert len(emulator.calls(portal=portal, error="QUERY_LIMIT_EXCEEDED")) == 2


def test_revoked_grant_stops_the_portal(
    services: context.Services, emulator: DevPortal, portal: Portal
) -> None:
    """invalid_grant on refresh: AuthRevoked once, then PortalUnavailable without requests."""
    connect(services, portal)
    portal.revoke_grant()
    portal.expire_tokens()
    b24 = client_for(services, portal)
    with pytest.raises(AuthRevoked):
        b24.call("user.current")
    with services.db() as session:
        row = get_portal(session, portal.member_id)
        assert row is not None and row.status == PortalStatus.REAUTH_REQUIRED
    before = emulator.http_requests(portal)
    with pytest.raises(PortalUnavailable):
        b24.call("user.current")
    assert emulator.http_requests(portal) == before


def test_batch_of_120_commands_against_the_portal(
    services: context.Services, emulator: DevPortal, portal: Portal
) -> None:
    """120 crm.lead.get commands: 3 HTTP requests, every result under its command id."""
    connect(services, portal)
    ids = portal.bulk_create_leads(120)
    b24 = client_for(services, portal)
    before = emulator.http_requests(portal)
    result = b24.batch({f"l{i}": ("crm.lead.get", {"id": i}) for i in ids})
    assert emulator.http_requests(portal) - before == 3
    assert {k: int(v["ID"]) for k, v in result.results.items()} == {f"l{i}": i for i in ids}
    assert result.errors == {}
