"""The REST budget against the emulator's limiter over real HTTP (issue 14): a bucket already
filled by another integration, method time billed per method or per batch, Enterprise
plans. Counts only, no timed assertions (the drain is sped up where it would be slow)."""

from __future__ import annotations

import threading

import pytest

from b24app import context
from b24app.bitrix.budget import bulk_rest
from b24app.bitrix.budget import load_plan
from b24app.bitrix.budget import Priority
from b24app.bitrix.budget import refresh_plan
from b24app.bitrix.budget import urgent_rest
from b24app.bitrix.client import BitrixClient
from b24app.bitrix.errors import RateLimited
from b24app.config import Settings
from b24app.storage.portals import DbTokenStore
from devportal import DevPortal
from devportal import Portal
from tests.bitrix.conftest import Sleeps
from tests.bitrix.test_client_emulator import client_for
from tests.bitrix.test_client_emulator import connect
from tests.bitrix.test_client_emulator import run_parallel
from tests.waiting import deadline_seconds


def paced_client(
    services: context.Services, portal: Portal, settings: Settings, sleeps: Sleeps
) -> BitrixClient:
    """A client whose pauses are recorded, not taken; waits over 5 s raise RateLimited."""
    return BitrixClient(
        portal.member_id, DbTokenStore(services.sessions), services.redis, settings,
        sleep=sleeps, max_operating_wait=5.0,
    )  # fmt: skip


def test_emulator_prefilled_bucket_refuses_the_overflow(emulator: DevPortal) -> None:
    """The emulator's model: another integration used 40 of 50 slots."""
    portal = emulator.create_portal("pre", rate=0.01, burst=50)
    portal.bucket.prefill(40)
    assert [portal.bucket.take() for _ in range(11)] == [True] * 10 + [False]


def test_shared_bucket_already_40_of_50_full(
    services: context.Services, emulator: DevPortal, settings: Settings
) -> None:
    """48 calls from 4 workers into a bucket another integration filled to 40/50: after
    the first QUERY_LIMIT_EXCEEDED the client assumes the bucket full and paces from there,
    so only a handful are refused (target ≤ 5) and every call succeeds.

    The drain is 5/s instead of 2/s so the test takes seconds; the arithmetic is the same.
    The bucket is filled the moment every worker is ready (a barrier's action), and the
    client's own bucket lets its first 38 calls go at once: the emulator refuses unless
    the workers need over 5 s for them (28 units of drain), a stall far beyond CI's.
    """
    portal = emulator.create_portal("shared", rate=5, burst=50)
    connect(services, portal)
    fast = settings.replace(rest_rate=5.0, rest_burst=50)
    assert client_for(services, portal, fast).bucket.burst == 38  # the margin above
    start = threading.Barrier(4, action=lambda: portal.bucket.prefill(40),
                              timeout=deadline_seconds())  # fmt: skip

    def worker(i: int) -> int:
        b24 = client_for(services, portal, fast)
        start.wait()
        for _ in range(12):
            b24.call("user.current")
        return 12

    results, errors = run_parallel(4, worker)
    assert errors == [] and sum(results) == 48
    refused = len(emulator.calls(portal=portal, error="QUERY_LIMIT_EXCEEDED"))
    assert 1 <= refused <= 5


def test_enterprise_plan_read_from_app_info(
    services: context.Services, emulator: DevPortal, settings: Settings
) -> None:
    """An Enterprise portal's licence gives its client the 5 / 250 bucket; a standard
    portal keeps 2 / 50 — per portal, not one global setting."""
    big = emulator.create_portal("big", license="ru_ent250")
    small = emulator.create_portal("small", license="ru_pro")
    assert (big.bucket.rate, big.bucket.burst) == (5.0, 250)
    for portal in (big, small):
        connect(services, portal)
        refresh_plan(client_for(services, portal, settings))
    assert load_plan(services.redis, big.member_id).license == "ru_ent250"  # type: ignore[union-attr]
    assert client_for(services, big, settings).bucket.rate == 5.0
    assert client_for(services, big, settings).bucket.burst == 248 - 250 // 5  # background client
    assert client_for(services, small, settings).bucket.rate == 2.0
    assert client_for(services, small, settings).bucket.burst == 48 - 50 // 5


def test_emulator_blocks_a_method_over_its_time_budget(
    services: context.Services, emulator: DevPortal, settings: Settings
) -> None:
    """The emulator bills server time per method and answers 429 OPERATION_TIME_LIMIT with
    ``operating_reset_at`` once over the limit; other methods are unaffected."""
    portal = emulator.create_portal("optime", operating_limit=100.0)
    connect(services, portal)
    portal.operating.costs["crm.item.list"] = 60.0
    b24 = client_for(services, portal, settings.replace(rest_max_retries=0))
    first = b24.call_raw("crm.item.list", {"entityTypeId": 1})
    assert first["time"]["operating"] == pytest.approx(60.0)
    assert first["time"]["operating_reset_at"] > first["time"]["finish"]
    portal.operating.add("crm.item.list", 60.0)  # another app of ours used the rest
    b24.meter.redis.delete(b24.meter.key)  # our client did not see it
    with pytest.raises(RateLimited) as caught:
        b24.call("crm.item.list", {"entityTypeId": 1})
    assert caught.value.retry_after and caught.value.retry_after > 60
    assert len(emulator.calls(portal=portal, error="OPERATION_TIME_LIMIT")) == 1
    assert b24.call("user.current")["ID"]


def test_client_slows_down_before_the_time_limit(
    services: context.Services, emulator: DevPortal, settings: Settings, sleeps: Sleeps
) -> None:
    """Each call bills 40 s of a 480 s budget: the client reads ``time.operating`` and stops
    (RateLimited, so the job comes back after the reset) before the portal ever answers
    OPERATION_TIME_LIMIT."""
    portal = emulator.create_portal("pace")
    connect(services, portal)
    portal.operating.costs["crm.item.list"] = 40.0
    b24 = paced_client(services, portal, settings, sleeps)
    made = 0
    with pytest.raises(RateLimited) as caught:
        for _ in range(20):
            b24.call("crm.item.list", {"entityTypeId": 1})
            made += 1
    assert 6 <= made < 12  # paced from 240 s on, well before 480 s
    assert caught.value.retry_after and caught.value.retry_after > 60
    assert emulator.calls(portal=portal, error="OPERATION_TIME_LIMIT") == []


@pytest.mark.parametrize("billing", ["commands", "batch"])
def test_batch_time_is_accounted_either_way(
    services: context.Services,
    emulator: DevPortal,
    settings: Settings,
    sleeps: Sleeps,
    billing: str,
) -> None:
    """Whether the portal bills a batch to ``batch`` (JS SDK's view) or to its commands
    (the docs'), the client paces the batch before OPERATION_TIME_LIMIT."""
    portal = emulator.create_portal(f"bill-{billing}", batch_billing=billing)
    connect(services, portal)
    portal.operating.costs["crm.item.list"] = 20.0
    b24 = paced_client(services, portal, settings, sleeps)
    commands = {
        "a": ("crm.item.list", {"entityTypeId": 1}),
        "b": ("crm.item.list", {"entityTypeId": 1}),
    }
    made = 0
    with pytest.raises(RateLimited):
        for _ in range(20):
            b24.batch(commands)
            made += 1
    assert 5 <= made < 12
    assert emulator.calls(portal=portal, error="OPERATION_TIME_LIMIT") == []
    assert emulator.calls(portal=portal, error="OPERATION_TIME_LIMIT", in_batch=True) == []
    assert b24.meter.get("batch" if billing == "batch" else "crm.item.list") is not None


def test_urgent_call_passes_a_bucket_that_bulk_reads_saturated(
    services: context.Services, emulator: DevPortal, settings: Settings, sleeps: Sleeps
) -> None:
    """Bulk reads stop short of the reserve; a robot answer inside ``urgent_rest`` goes at
    once while the next bulk read waits for the drain."""
    portal = emulator.create_portal("prio", rate=20, burst=50)
    connect(services, portal)
    # Our bucket drains slowly (one slot per 2 s), so no slot frees up by itself between
    # the steps of the test, however slow the machine.
    fast = settings.replace(rest_rate=0.5, rest_burst=50)
    b24 = paced_client(services, portal, fast, sleeps)
    bulk_limit = b24.bucket.burst - b24.bucket.reserve
    assert b24.bucket.reserve > 0
    while b24.bucket.acquire(priority=Priority.BULK) == 0:
        pass
    assert b24.bucket.level() >= bulk_limit - 1
    with urgent_rest():
        assert b24.call("user.current")["ID"]
    assert sleeps == []
    with bulk_rest():
        assert b24.call("user.current")["ID"]
    assert sleeps  # the bulk read waited


def test_priorities_can_be_switched_off(
    services: context.Services, emulator: DevPortal, settings: Settings
) -> None:
    """``rest_priorities=False`` (the bench's "before"): no reserve, first come first served."""
    portal = emulator.create_portal("noprio")
    connect(services, portal)
    b24 = client_for(services, portal, settings.replace(rest_priorities=False))
    assert b24.bucket.reserve == 0
    with urgent_rest():
        assert b24._priority() == Priority.NORMAL
